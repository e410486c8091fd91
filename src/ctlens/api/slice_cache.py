"""The service's memory of rendered slice PNGs (:class:`SliceCache`): least recently used first out, bounded in bytes.

A viewer asks for the same slices again and again (scrolling back, switching window or overlay), and a rendered
slice never changes: its pixels follow from the stored content (named by its SHA-256), the slice index, the window
and the overlay. Entries are keyed by :func:`slice_key`, which puts the content's SHA-256 first (so every slice of a
content can be dropped at once when it is deleted, :meth:`SliceCache.drop`) and the calling API key's id second:
a key is only ever answered from slices rendered for its own study (the route checks that the study is the
caller's before it looks here), and one key cannot learn from answer times which contents another key viewed.

The bound counts each PNG's bytes plus a fixed per-entry overhead (:data:`ENTRY_OVERHEAD`), so a cache of small
slices cannot grow past it either; a PNG larger than the whole bound is not kept.

Example:
    >>> cache = SliceCache(max_bytes=1000)
    >>> mine, theirs = slice_key("sha", "key1", 0, "lung", "none"), slice_key("sha", "key2", 0, "lung", "none")
    >>> cache.put(mine, b"x" * 300)
    >>> cache.get(mine) == b"x" * 300, cache.get(theirs)
    (True, None)
    >>> cache.put(slice_key("sha", "key1", 1, "lung", "none"), b"y" * 600)   # over 1000 bytes: slice 0 goes
    >>> len(cache), cache.nbytes <= cache.max_bytes
    (1, True)
"""

from __future__ import annotations

import threading
from collections import OrderedDict

__all__ = ["DEFAULT_MAX_BYTES", "ENTRY_OVERHEAD", "SliceCache", "slice_key"]

DEFAULT_MAX_BYTES = 64 << 20
"""64 MiB: ~300 RGB or ~500 grey 512 x 512 slices (a few studies' worth of scrolling)."""
ENTRY_OVERHEAD = 256
"""Bytes counted per entry on top of its PNG (the key tuple, the dictionary slot, the bytes object's header)."""

SliceKey = tuple[str, str, int, str, str]


def slice_key(sha256: str, owner: str, k: int, window: str, overlay: str) -> SliceKey:
    """The cache key of slice ``k`` of content ``sha256`` drawn for API key ``owner`` with ``window`` and ``overlay``.

    Example:
        >>> slice_key("ab12", "key_1", 3, "lung", "none")
        ('ab12', 'key_1', 3, 'lung', 'none')
    """
    return (str(sha256), str(owner), int(k), str(window), str(overlay))


class SliceCache:
    """A thread-safe LRU of PNG bytes holding at most ``max_bytes`` (PNG bytes + :data:`ENTRY_OVERHEAD` each).

    ``hits`` and ``misses`` count :meth:`get` answers (for benchmarks and metrics).
    """

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self.max_bytes = int(max_bytes)
        self.nbytes = 0
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[tuple, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    @staticmethod
    def _cost(value: bytes) -> int:
        return len(value) + ENTRY_OVERHEAD

    def get(self, key: tuple) -> bytes | None:
        """The PNG stored under ``key`` (now the most recently used), or None."""
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: tuple, value: bytes) -> None:
        """Keep ``value`` under ``key``; the least recently used entries go until the bound holds again."""
        cost = self._cost(value)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self.nbytes -= self._cost(old)
            if cost > self.max_bytes:
                return
            self._items[key] = value
            self.nbytes += cost
            while self.nbytes > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self.nbytes -= self._cost(dropped)

    def drop(self, sha256: str) -> None:
        """Forget every slice of one content (keys whose first element is ``sha256``)."""
        with self._lock:
            for key in [k for k in self._items if k[0] == sha256]:
                self.nbytes -= self._cost(self._items.pop(key))

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._items.clear()
            self.nbytes = 0
