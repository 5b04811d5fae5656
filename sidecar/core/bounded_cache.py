"""A small least-recently-used map, for the parsed keys and verified secrets the core keeps."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    """A small least-recently-used map. Not thread-safe by design: the sidecar runs its
    core on one event loop, and a lost update only costs a recomputation."""

    __slots__ = ("_data", "maxsize")

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self._data: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._data.get(key)
        if value is not None:
            self._data.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._data[key] = value
        self._data.move_to_end(key)
        while len(self._data) > self.maxsize:
            self._data.popitem(last=False)

    def clear(self) -> None:
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


class Memo(Generic[K, V]):
    """The answers of a pure function of one key, kept until `maxsize` are held and then all
    forgotten at once. For the hot path's memos (a peer's trust, a header name's verdict, a
    target's URL): a hit is one dict lookup, cheaper than the LRU's reordering; a key longer
    than `max_key_chars` is computed and not kept, so a client cannot fill the memo with
    large keys."""

    __slots__ = ("_data", "_function", "max_key_chars", "maxsize")

    def __init__(self, function: Callable[[K], V], maxsize: int,
                 max_key_chars: int = 256) -> None:
        self._function = function
        self.maxsize = maxsize
        self.max_key_chars = max_key_chars
        self._data: dict[K, V] = {}

    def __call__(self, key: K, size: int = 0) -> V:
        """The function's answer for `key`; `size` is the key's length in characters."""
        found = self._data.get(key)
        if found is not None:
            return found
        value = self._function(key)
        if size <= self.max_key_chars:
            if len(self._data) >= self.maxsize:
                self._data.clear()
            self._data[key] = value
        return value

    def __len__(self) -> int:
        return len(self._data)
