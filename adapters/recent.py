"""``Recent``: a small, thread-safe map that forgets its oldest entries past a size.

The stores keep in it what they learnt from their own round trips (an entity's ETag, a run's order)
so that a later call can skip a read. What is kept is only ever a hint that the service checks
(``If-Match``) or a value that never changes once written; a store works the same with an empty one,
so forgetting is always safe and the size only bounds memory in a long-lived worker.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Recent(Generic[K, V]):
    """The last ``size`` entries put, newest kept; reads do not refresh an entry's age."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()  # a Functions worker may call one store from several threads

    def get(self, key: K) -> V | None:
        with self._lock:
            return self._entries.get(key)

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def forget(self, key: K) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)
