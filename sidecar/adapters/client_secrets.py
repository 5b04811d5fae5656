"""Checking a presented client secret against the registry (RFC 6749 §2.3.1).

Two registered forms:
- `client_secret_file`: the secret itself. Compared in constant time: both sides go through
  HMAC with a process-random key first, so even the length of the registered secret does not
  show in the timing (`hmac.compare_digest` alone leaks it).
- `client_secret_hash`: an argon2id PHC string (RFC 9106), parameters inside the string. Only
  argon2id: it is RFC 9106's and OWASP's first choice, argon2-cffi is a well-kept binding of
  the reference implementation, and one scheme means one set of bounds to check at load time.
  PBKDF2 and scrypt strings have no single PHC spelling across tools (Django, passlib and
  Werkzeug each write their own), so accepting them would mean picking a dialect.

A verified hash is slow on purpose (tens of milliseconds, tens of MiB). A busy client must
not pay that on every request, so a *successful* verification is remembered in a bounded LRU,
keyed by HMAC(process key, client id, hash string, secret): the secret itself is never kept,
the key cannot be recomputed from a memory dump without the process key, and a new hash (a
rotated secret, a reloaded registry) is a new key, so nothing stale ever matches. A failed
verification is never remembered. The slow path runs in a worker thread, a few at a time, so a
flood of wrong secrets neither blocks the event loop nor takes unbounded memory.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
from typing import Final

import argon2

from sidecar.core.bounded_cache import BoundedCache
from sidecar.core.clients.model import Client

DEFAULT_CACHE_SIZE: Final = 10_000
DEFAULT_MAX_CONCURRENT_HASHES: Final = 4


class CachingSecretVerifier:
    """The `SecretVerifier` port (sidecar.ports): plain secrets in constant time, argon2id
    hashes in worker threads, a few at a time, successes remembered (module docstring)."""

    def __init__(self, *, cache_size: int = DEFAULT_CACHE_SIZE,
                 max_concurrent_hashes: int = DEFAULT_MAX_CONCURRENT_HASHES) -> None:
        self._key = os.urandom(32)
        self._verified: BoundedCache[bytes, bool] = BoundedCache(cache_size)
        self._hasher = argon2.PasswordHasher()
        self._slots = asyncio.Semaphore(max_concurrent_hashes)
        self.hash_verifications = 0  # slow verifications run, for metrics and tests

    async def verify(self, client: Client, presented: str) -> bool:
        """True when `presented` is the client's registered secret."""
        if client.client_secret is not None:
            return self.matches_plain(client.client_secret, presented)
        if client.client_secret_hash is not None:
            return await self._matches_hash(client.client_id, client.client_secret_hash,
                                            presented)
        return False

    def matches_plain(self, registered: str, presented: str) -> bool:
        return hmac.compare_digest(self._mac(registered.encode("utf-8")),
                                   self._mac(presented.encode("utf-8")))

    async def _matches_hash(self, client_id: str, phc: str, presented: str) -> bool:
        cache_key = self._mac(*(part.encode("utf-8") for part in (client_id, phc, presented)))
        if self._verified.get(cache_key):
            return True
        async with self._slots:
            self.hash_verifications += 1
            ok = await asyncio.to_thread(self._verify_hash, phc, presented)
        if ok:
            self._verified.put(cache_key, True)
        return ok

    def _verify_hash(self, phc: str, presented: str) -> bool:
        try:
            return self._hasher.verify(phc, presented)
        except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
            return False

    def _mac(self, *parts: bytes) -> bytes:
        # Length-prefixed, so ("ab", "c") and ("a", "bc") never collide.
        mac = hmac.new(self._key, digestmod=hashlib.sha256)
        for part in parts:
            mac.update(len(part).to_bytes(4, "big"))
            mac.update(part)
        return mac.digest()

    def clear(self) -> None:
        self._verified.clear()
