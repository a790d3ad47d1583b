"""A training's sample sheet: every sample in one PNG grid, each labelled (issue 13 §2).

Rows are sample steps and columns prompts (the caller orders the cells). Every cell is
``cell`` pixels square (samples are scaled to it, so labels fit however small the base model's
pictures are) above a ``LABEL_HEIGHT`` strip with its label in Pillow's default font, cut
with an ellipsis where it does not fit.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

from PIL import Image, ImageDraw, ImageFont

from loraforge.domain.samples import SheetCell

CELL = 256
LABEL_HEIGHT = 40
BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
PADDING = 4


def sheet_size(count: int, columns: int, *, cell: int = CELL) -> tuple[int, int]:
    """The sheet's (width, height) for ``count`` cells in rows of ``columns``."""
    rows = -(-count // columns)
    return columns * cell, rows * (cell + LABEL_HEIGHT)


class PillowSampleSheets:
    def __init__(self, *, cell: int = CELL) -> None:
        self._cell = cell

    def render(self, cells: Sequence[SheetCell], *, columns: int) -> bytes:
        if not cells or columns < 1:
            raise ValueError("a sample sheet needs at least one cell")
        size = self._cell
        sheet = Image.new("RGB", sheet_size(len(cells), columns, cell=size), BACKGROUND)
        draw = ImageDraw.Draw(sheet)
        font = ImageFont.load_default()
        for n, cell in enumerate(cells):
            row, column = divmod(n, columns)
            left, top = column * size, row * (size + LABEL_HEIGHT)
            with Image.open(io.BytesIO(cell.image)) as opened:
                picture = opened.convert("RGB").resize((size, size), Image.Resampling.LANCZOS)
            sheet.paste(picture, (left, top))
            for line_no, line in enumerate(_lines(draw, font, cell.label, size - 2 * PADDING)):
                draw.text((left + PADDING, top + size + PADDING + line_no * 16), line, INK, font)
        buffer = io.BytesIO()
        sheet.save(buffer, format="PNG", compress_level=6)
        return buffer.getvalue()


def _lines(
    draw: ImageDraw.ImageDraw,
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
    text: str,
    width: int,
) -> list[str]:
    """``text`` in at most two lines of ``width`` pixels, the second cut with an ellipsis."""
    lines: list[str] = []
    rest = text
    while rest and len(lines) < 2:
        cut = len(rest)
        while cut > 1 and draw.textlength(rest[:cut], font=font) > width:
            cut -= 1
        if len(lines) == 1 and cut < len(rest):  # the last line: end with an ellipsis
            while cut > 1 and draw.textlength(rest[:cut] + "…", font=font) > width:
                cut -= 1
            lines.append(rest[:cut] + "…")
            break
        lines.append(rest[:cut])
        rest = rest[cut:].lstrip()
    return lines
