"""The ``loraforge`` command line (Typer + Rich)."""
