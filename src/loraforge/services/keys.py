"""API keys and accounts: issue, authenticate, list, revoke."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from loraforge.domain.entities import Account, ApiKey, Principal
from loraforge.domain.errors import NotFound, RateLimited, Unauthenticated
from loraforge.ports import Clock, IdFactory, UnitOfWorkFactory

KEY_PREFIX = "lf_"
_INVALID = "Missing or invalid API key."


PREFIX_LEN = 12  # "lf_" + 9 random characters: the lookup handle, safe to show


def hash_key(plaintext: str) -> str:
    # Keys carry 256 bits of entropy, so a fast hash suffices: there is nothing to brute-force.
    return hashlib.sha256(plaintext.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    plaintext: str  # shown once, never stored


class KeyService:
    def __init__(
        self,
        *,
        uow: UnitOfWorkFactory,
        clock: Clock,
        new_id: IdFactory,
        cache_s: float = 0.0,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._new_id = new_id
        # Successful checks are remembered briefly (keyed by the hash, never the key): every
        # request authenticates, and the lookup was a third of a list request's database work.
        self._cache_s = cache_s
        self._cache: dict[str, tuple[Principal, float]] = {}
        self._cache_lock = threading.Lock()

    def create(self, *, name: str, account_id: str | None = None) -> IssuedKey:
        """Issue a key; without ``account_id`` a new account is opened for it."""
        now = self._clock.now()
        plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
        with self._uow(write=True) as uow:
            if account_id is None:
                account_id = self._new_id()
                uow.accounts.add(Account(id=account_id, name=name, created_at=now))
            elif uow.accounts.get(account_id) is None:
                raise NotFound(f"No account {account_id}.")
            key = ApiKey(
                id=self._new_id(),
                account_id=account_id,
                name=name,
                prefix=plaintext[:PREFIX_LEN],
                created_at=now,
            )
            uow.api_keys.add(key, key_hash=hash_key(plaintext))
            uow.commit()
        return IssuedKey(key=key, plaintext=plaintext)

    def authenticate(self, plaintext: str | None) -> Principal:
        if not plaintext or not plaintext.startswith(KEY_PREFIX) or len(plaintext) > 200:
            raise Unauthenticated(_INVALID)
        digest = hash_key(plaintext)
        cached = self._cached(digest)
        if cached is not None:
            return cached
        with self._uow() as uow:
            candidates = uow.api_keys.find_by_prefix(plaintext[:PREFIX_LEN])
        # Look up by the public prefix, then compare the secret part in constant time.
        for key, stored in candidates:
            if hmac.compare_digest(stored, digest) and key.active:
                principal = Principal(account_id=key.account_id, key_id=key.id)
                self._remember(digest, principal)
                return principal
        raise Unauthenticated(_INVALID)

    def _cached(self, digest: str) -> Principal | None:
        if self._cache_s <= 0:
            return None
        with self._cache_lock:
            entry = self._cache.get(digest)
        if entry is None or entry[1] < time.monotonic():
            return None
        return entry[0]

    def _remember(self, digest: str, principal: Principal) -> None:
        if self._cache_s <= 0:
            return
        with self._cache_lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[digest] = (principal, time.monotonic() + self._cache_s)

    def list(self) -> list[ApiKey]:
        with self._uow() as uow:
            return uow.api_keys.list()

    def revoke(self, key_id: str) -> ApiKey:
        with self._uow(write=True) as uow:
            key = uow.api_keys.get(key_id)
            if key is None:
                raise NotFound(f"No API key {key_id}.")
            if key.revoked_at is None:
                key.revoked_at = self._clock.now()
                uow.api_keys.update(key)
                uow.commit()
        with self._cache_lock:  # effective at once in this process
            self._cache = {d: e for d, e in self._cache.items() if e[0].key_id != key_id}
        return key


class FailureLimiter:
    """Counts failed authentications per client in a sliding minute; too many → 429."""

    def __init__(self, *, max_failures: int, window_s: float = 60.0) -> None:
        self._max = max_failures
        self._window = window_s
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def check(self, client: str) -> None:
        with self._lock:
            recent = self._recent(client)
            if len(recent) >= self._max:
                retry_after = int(recent[0] + self._window - time.monotonic()) + 1
                raise RateLimited("Too many failed authentications.", retry_after=retry_after)

    def record_failure(self, client: str) -> None:
        with self._lock:
            self._failures[client] = [*self._recent(client), time.monotonic()]
            if len(self._failures) > 10_000:  # bound memory under a spray of clients
                self._failures = {c: f for c, f in self._failures.items() if self._live(f)}

    def _recent(self, client: str) -> list[float]:
        # Only clients with recent failures keep an entry: successful callers cost nothing.
        recent = self._live(self._failures.pop(client, []))
        if recent:
            self._failures[client] = recent
        return recent

    def _live(self, failures: list[float]) -> list[float]:
        cutoff = time.monotonic() - self._window
        return [t for t in failures if t > cutoff]
