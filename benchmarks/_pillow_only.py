"""The ingest path before libvips, for comparison: every JPEG decoded and resampled by Pillow.

``python -m benchmarks._pillow_only serve --data-dir ... --port ...`` runs ``loraforge serve``
with ``PillowImageProcessor(vips_jpeg=False)`` as its image processor; ``processor()`` gives
the same processor in-process. Nothing else differs from the server ``make bench`` measures.
"""

from __future__ import annotations

import sys
from pathlib import Path

from loraforge.adapters.imaging.pillow_processor import PillowImageProcessor


class PillowOnlyProcessor(PillowImageProcessor):
    def __init__(self, *, max_pixels: int, max_frames: int) -> None:
        super().__init__(max_pixels=max_pixels, max_frames=max_frames, vips_jpeg=False)


def processor(*, max_pixels: int, max_frames: int) -> PillowImageProcessor:
    return PillowOnlyProcessor(max_pixels=max_pixels, max_frames=max_frames)


def serve_argv(data_dir: Path, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "benchmarks._pillow_only",
        "serve",
        "--data-dir",
        str(data_dir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]


def main() -> None:
    from loraforge import bootstrap
    from loraforge.cli.main import app

    # The composition root builds its processor by this name: the old path is the only change.
    setattr(bootstrap, "PillowImageProcessor", PillowOnlyProcessor)  # noqa: B010 (a patch)
    app()


if __name__ == "__main__":
    main()
