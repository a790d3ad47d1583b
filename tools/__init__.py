"""Development tools: code that builds what loraforge ships, never imported by the server.

``tools`` lives beside ``src/`` and is not packaged: an installed loraforge carries their
results (the tiny model's weights), not them. ruff, mypy and the tests cover it like ``src``.
"""
