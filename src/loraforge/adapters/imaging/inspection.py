"""``ImageInspector`` on OpenCV and imagehash: the numbers the dataset check judges.

Measured once per training image on its display variant, reduced first to 512 px on the long
side (a JPEG is decoded at a reduced scale directly): focus and exposure do not need more, the
face cascade finds the faces that matter in a training picture at that size, and an inspection
costs a few milliseconds rather than the upload's decode again.

OpenCV 4.x headless is pinned below 5: its wheel ships the Haar cascades (``cv2.data``), the
5.x wheel does not.
"""

from __future__ import annotations

import io
import threading
from typing import TYPE_CHECKING

from PIL import Image

from loraforge.domain.dataset import ImageQuality
from loraforge.domain.errors import ImageRejected

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

INSPECT_SIDE = 512
DARK_BELOW = 16
BRIGHT_ABOVE = 239
_CASCADE = "haarcascade_frontalface_default.xml"
# A face smaller than this share of the short side is background, not the subject (a
# full-length portrait's face is about a tenth of the frame). Larger minimum faces and coarser
# scale steps make the cascade several times cheaper than its defaults.
_MIN_FACE_SHARE = 0.08
_SCALE_STEP = 1.2


class OpenCvInspector:
    """Thread-safe: each thread gets its own cascade (OpenCV's detector keeps state)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def inspect(self, data: bytes) -> ImageQuality:
        # Imported on the first inspection, not at start-up: OpenCV, numpy and imagehash's
        # scipy cost ~0.5 s and ~50 MB in every process, and only workers measure images.
        import cv2
        import imagehash
        import numpy as np

        grey = _grey(data)
        phash = str(imagehash.phash(Image.fromarray(grey)))
        sharpness = float(cv2.Laplacian(grey, cv2.CV_64F).var())
        luma = float(grey.mean())
        pixels = grey.size
        dark = float(np.count_nonzero(grey < DARK_BELOW)) / pixels
        bright = float(np.count_nonzero(grey > BRIGHT_ABOVE)) / pixels
        return ImageQuality(phash, sharpness, luma, dark, bright, self._faces(grey))

    def _faces(self, grey: NDArray[np.uint8]) -> int:
        import cv2

        cascade = getattr(self._local, "cascade", None)
        if cascade is None:
            cascade = cv2.CascadeClassifier(_cascade_path())
            if cascade.empty():
                raise RuntimeError(f"OpenCV's {_CASCADE} did not load")
            self._local.cascade = cascade
        side = max(1, int(min(grey.shape) * _MIN_FACE_SHARE))
        found = cascade.detectMultiScale(
            grey, scaleFactor=_SCALE_STEP, minNeighbors=5, minSize=(side, side)
        )
        return len(found)


def _cascade_path() -> str:
    """Where the wheel put the cascade (``cv2.data``, a package OpenCV's stubs do not list)."""
    from cv2 import data as cascades

    return str(cascades.haarcascades) + _CASCADE


def _grey(data: bytes) -> NDArray[np.uint8]:
    """The picture in grey at ``INSPECT_SIDE`` px on its long side (never enlarged)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.draft("L", (INSPECT_SIDE, INSPECT_SIDE))
            if image.mode in ("RGBA", "LA", "PA", "P"):
                # Transparency is white here, as the trainer sees it, not black.
                rgba = image.convert("RGBA")
                flat = Image.new("RGB", rgba.size, "white")
                flat.paste(rgba, mask=rgba.getchannel("A"))
                grey = flat.convert("L")
            else:
                grey = image.convert("L")
    except Exception as exc:  # the display variant is ours: a failure here is a broken blob
        raise ImageRejected("The image could not be read for the dataset check.") from exc
    grey.thumbnail((INSPECT_SIDE, INSPECT_SIDE), Image.Resampling.LANCZOS, reducing_gap=2.0)
    import numpy as np

    return np.asarray(grey, dtype=np.uint8)
