from __future__ import annotations

import base64

from tests import imagefactory


def png_data_url(w: int = 48, h: int = 40) -> str:
    return "data:image/png;base64," + base64.b64encode(imagefactory.png(w, h)).decode()


def png_base64(w: int = 48, h: int = 40) -> str:
    return base64.b64encode(imagefactory.png(w, h)).decode()
