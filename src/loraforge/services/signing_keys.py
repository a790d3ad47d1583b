"""The server's Ed25519 signing key: made once, stored in the database, shared by every process.

Whichever process needs the key first makes one and inserts it; the table admits one, so when
two processes start at once (PostgreSQL: concurrent inserts of the one slot) the loser's insert
is dropped and both read back the winner's key. The private key is kept readable in the
database, like the accounts' webhook secrets: whoever can read the database can sign.
"""

from __future__ import annotations

import threading

from loraforge.domain.provenance import SigningKey, key_id
from loraforge.ports import Clock, Signer, UnitOfWorkFactory


class SigningKeyService:
    def __init__(self, *, uow: UnitOfWorkFactory, signer: Signer, clock: Clock) -> None:
        self._uow = uow
        self._signer = signer
        self._clock = clock
        self._lock = threading.Lock()
        self._key: SigningKey | None = None

    def current(self) -> SigningKey:
        """The stored key, made and stored on first use; kept in memory once read."""
        with self._lock:
            if self._key is None:
                self._key = self._load_or_make()
            return self._key

    def sign(self, data: bytes) -> tuple[str, bytes]:
        """The key id and the Ed25519 signature of ``data``."""
        key = self.current()
        return key.id, self._signer.sign(key.private, data)

    def public_pem(self) -> str:
        return self._signer.public_pem(self.current().public)

    def _load_or_make(self) -> SigningKey:
        with self._uow() as uow:
            stored = uow.signing_keys.get()
        if stored is not None:
            return stored
        private, public = self._signer.generate()
        made = SigningKey(
            id=key_id(public), private=private, public=public, created_at=self._clock.now()
        )
        with self._uow(write=True) as uow:
            uow.signing_keys.add_if_absent(made)
            uow.commit()
        with self._uow() as uow:
            winner = uow.signing_keys.get()
        assert winner is not None, "a signing key was just stored"
        return winner
