"""The key layout (sidecar.adapters.redis.keys): hashed values, the digest as a Cluster hash tag."""

from __future__ import annotations

import pytest

from sidecar.adapters.redis.keys import cluster_key
from sidecar.adapters.redis.store import RedisStore
from sidecar.ports import store_key
from sidecar.settings import StoreSettings


def test_cluster_refuses_a_hash_tag_in_the_prefix() -> None:
    with pytest.raises(ValueError, match=r"store\.key_prefix"):
        RedisStore.from_settings(StoreSettings(url="redis+cluster://h:1", key_prefix="{app}:"))


def test_cluster_key_layout() -> None:
    plain = store_key("p:", "refresh", "token")
    tagged = cluster_key("p:", "refresh", "token")
    digest = plain.rsplit(":", 1)[1]
    assert tagged == f"p:refresh:{{{digest}}}"
    assert cluster_key("p:", "dpop_jti", "token").endswith(f"{{{digest}}}")
    with pytest.raises(ValueError):
        cluster_key("p:", "{kind}", "token")
