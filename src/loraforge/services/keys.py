"""API keys and accounts: issue, authenticate, list, revoke."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from loraforge.domain.entities import Account, ApiKey, Principal
from loraforge.domain.errors import NotFound, RateLimited, Unauthenticated
from loraforge.ports import Clock, IdFactory, UnitOfWorkFactory

KEY_PREFIX = "lf_"
_INVALID = "Missing or invalid API key."


PREFIX_LEN = 12  # "lf_" + 9 random characters: the lookup handle, safe to show
# What ``create`` issues: the prefix and token_urlsafe(32), i.e. 43 URL-safe base64 characters.
_KEY_SHAPE = re.compile(re.escape(KEY_PREFIX) + r"[A-Za-z0-9_-]{43}")


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
        self._failed = _RecentSet(size=10_000, ttl_s=600.0)

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
        # Cheap rejections first, so a client spraying bad keys costs no database work:
        # anything not shaped like an issued key costs neither a hash nor a lookup, and a
        # well-formed key that failed recently costs a hash and a dict lookup.
        if not plaintext or not _KEY_SHAPE.fullmatch(plaintext):
            raise Unauthenticated(_INVALID)
        digest = hash_key(plaintext)
        cached = self._cached(digest)
        if cached is not None:
            return cached
        if self._failed.seen(digest):
            raise Unauthenticated(_INVALID)
        with self._uow() as uow:
            candidates = uow.api_keys.find_by_prefix(plaintext[:PREFIX_LEN])
        # Look up by the public prefix, then compare the secret part in constant time.
        for key, stored in candidates:
            if hmac.compare_digest(stored, digest) and key.active:
                principal = Principal(account_id=key.account_id, key_id=key.id)
                self._remember(digest, principal)
                return principal
        # Unknown or revoked: neither can become valid again (keys are random, revocation is
        # final), so remembering the failure can never refuse a good key.
        self._failed.add(digest)
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
    """Counts failed authentications per name (a client address, a key prefix) in a sliding
    window; a name with too many is over the limit (429 for its failures, see ``http.deps``)."""

    def __init__(
        self, *, max_failures: int, window_s: float = 60.0, max_names: int = 10_000
    ) -> None:
        self._max = max_failures
        self._window = window_s
        self._max_names = max_names
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def check(self, *names: str) -> None:
        """Raise ``RateLimited`` when any of ``names`` is over the limit."""
        with self._lock:
            waits = [self._wait(name) for name in names]
        retry_after = max((w for w in waits if w is not None), default=None)
        if retry_after is not None:
            raise RateLimited("Too many failed authentications.", retry_after=retry_after)

    def record_failure(self, *names: str) -> None:
        with self._lock:
            now = time.monotonic()
            for name in names:
                # Only the newest ``max`` failures matter: memory per name stays bounded while a
                # client keeps failing, and its lockout keeps running from its latest failures.
                self._failures[name] = [*self._recent(name), now][-self._max :]
            if len(self._failures) > self._max_names:  # bound memory under a spray of names
                self._failures = {c: f for c, f in self._failures.items() if self._live(f)}
                for stale in list(self._failures)[: len(self._failures) - self._max_names]:
                    del self._failures[stale]  # oldest-touched first (dict order)

    def _wait(self, name: str) -> int | None:
        recent = self._recent(name)
        if len(recent) < self._max:
            return None
        return int(recent[0] + self._window - time.monotonic()) + 1

    def _recent(self, name: str) -> list[float]:
        # Only names with recent failures keep an entry: successful callers cost nothing.
        recent = self._live(self._failures.pop(name, []))
        if recent:
            self._failures[name] = recent
        return recent

    def _live(self, failures: list[float]) -> list[float]:
        cutoff = time.monotonic() - self._window
        return [t for t in failures if t > cutoff]


class _RecentSet:
    """A bounded set whose members expire: the digests of keys that recently failed."""

    def __init__(self, *, size: int, ttl_s: float) -> None:
        self._size = size
        self._ttl = ttl_s
        self._items: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def seen(self, item: str) -> bool:
        with self._lock:
            expires = self._items.get(item)
            return expires is not None and expires > time.monotonic()

    def add(self, item: str) -> None:
        with self._lock:
            self._items.pop(item, None)
            self._items[item] = time.monotonic() + self._ttl
            while len(self._items) > self._size:
                self._items.popitem(last=False)
