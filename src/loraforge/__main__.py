"""``python -m loraforge`` is the ``loraforge`` command."""

from loraforge.cli.main import app

app()
