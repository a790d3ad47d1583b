"""``python -m tools.tiny``: pretrain the tiny base model from scratch, reproducibly.

The package ships one (``src/loraforge/adapters/ml/tiny/weights/``); the defaults here are the
shipped model's, so this rebuilds it (byte for byte on the same CPU model and torch build) or
trains a bigger one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

err = Console(stderr=True, soft_wrap=True)
app = typer.Typer(help="Pretrain the built-in tiny base model.", add_completion=False)


@app.command()
def build(
    out: Annotated[Path, typer.Option(help="Folder to write the diffusers pipeline to.")],
    steps: Annotated[int, typer.Option(help="Denoiser pretraining steps.")] = 6000,
    autoencoder_steps: Annotated[
        int | None, typer.Option(help="Autoencoder pretraining steps.")
    ] = 3000,
    seed: Annotated[int, typer.Option(help="Seed; the same seed gives the same model.")] = 0,
    autoencoder_from: Annotated[
        Path | None,
        typer.Option(help="Reuse the vae/ folder of an earlier build instead of training one."),
    ] = None,
) -> None:
    """Pretrain the tiny base model on procedurally drawn, captioned images; print its metrics."""
    # torch and diffusers load here, not at import: --help stays instant.
    from tools.tiny.pretrain import build_tiny

    metrics = build_tiny(
        out,
        steps=steps,
        autoencoder_steps=autoencoder_steps,
        seed=seed,
        autoencoder_from=autoencoder_from,
        log=err.print,
    )
    for name, value in metrics.items():
        typer.echo(f"{name}\t{value}")
