"""``python -m tools.tiny --out DIR``: pretrain the tiny base model (see ``cli``)."""

from tools.tiny.cli import app

app()
