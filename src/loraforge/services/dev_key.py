"""The local development key that ``loraforge serve`` prints: made once, kept in the data dir."""

from __future__ import annotations

from pathlib import Path

from loraforge.domain.errors import Unauthenticated
from loraforge.services.keys import KeyService
from loraforge.services.private_files import read_or_create

DEV_KEY_FILE = "dev-api-key"


def ensure_dev_key(keys: KeyService, data_dir: Path) -> tuple[str, Path, bool]:
    """The development key, stored (mode 0600) in ``data_dir``; a new one when there is none or
    the stored one no longer authenticates.

    Returns the key, the file it is stored in, and whether it was created now.
    """
    path = data_dir / DEV_KEY_FILE
    if path.exists():
        key = path.read_text().strip()
        try:
            keys.authenticate(key)
            return key, path, False
        except Unauthenticated:  # revoked, or made for another database: issue a new one
            path.unlink()
    issued = keys.create(name="local development")
    read_or_create(path, lambda: issued.plaintext)
    return issued.plaintext, path, True
