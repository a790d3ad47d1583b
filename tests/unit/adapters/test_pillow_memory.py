"""Peak memory of one decode stays near the size of the decoded pixels themselves.

A 200 KB PNG can declare 7000 x 7000 RGBA: 196 MB once decoded, which the pixel cap allows.
Converting it and resampling it used to add two more full-size buffers (Pillow premultiplies
a whole RGBA copy to resize it): ~450 MB per decode. Measured as the peak RSS of a fresh
process, the only honest measure: Pillow allocates outside Python's tracemalloc.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from PIL import Image

SIDE = 7000
DECODED = SIDE * SIDE * 4  # bytes of the RGBA pixels: the floor for a full decode

# VmHWM, not ru_maxrss: the latter is inherited from the (large) parent across fork and exec.
MEASURE = """
import io, re, sys
from loraforge.adapters.imaging.pillow_processor import PillowImageProcessor
from loraforge.domain.entities import ALL_FORMATS
data = open(sys.argv[1], "rb").read()
processor = PillowImageProcessor(max_pixels=50_000_000, max_frames=1000)
def peak_kib():
    status = open("/proc/self/status").read()
    return int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1))
before = peak_kib()
result = processor.process(io.BytesIO(data), allowed=ALL_FORMATS)
assert result.width == result.height == int(sys.argv[2])
print(peak_kib() - before)
"""


def test_a_7000_square_rgba_png_peaks_near_its_decoded_size(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.new("RGBA", (SIDE, SIDE), (10, 200, 30, 128)).save(path)  # ~200 KB on disk

    measured = subprocess.run(
        [sys.executable, "-c", MEASURE, str(path), str(SIDE)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    peak_growth = int(measured.stdout.strip()) * 1024

    # The decode itself, plus stripes, the display image and allocator slack: < 1.4x.
    assert peak_growth < 1.4 * DECODED, f"peak grew by {peak_growth / 2**20:.0f} MiB"
