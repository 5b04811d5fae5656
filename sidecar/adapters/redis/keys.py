"""Key layout (package docstring, "Keys"): `store_key` on standalone and Sentinel, the digest
as the hash tag on a Cluster."""

from __future__ import annotations

from sidecar.adapters.redis.urls import RedisURL
from sidecar.ports import store_key


def check_prefix(url: RedisURL, prefix: str) -> None:
    if url.deployment == "cluster" and ("{" in prefix or "}" in prefix):
        raise ValueError("store.key_prefix: '{' and '}' are not allowed with redis+cluster:// "
                         "(a hash tag in the prefix would put every key in one slot)")


def cluster_key(prefix: str, kind: str, value: str) -> str:
    """`<prefix><kind>:{<sha256(value)>}`: `store_key` with the digest as the hash tag, so the
    keys of one value share a slot and keys of different values spread over all of them."""
    if "{" in kind or "}" in kind:
        raise ValueError(f"a store kind may not contain '{{' or '}}': {kind!r}")
    head, _, digest = store_key(prefix, kind, value).rpartition(":")
    return f"{head}:{{{digest}}}"
