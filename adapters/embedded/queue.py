"""``InProcessQueue``: the work queue on one machine, a plain FIFO in memory.

Locally each command drains the queue before it exits, so nothing waits in memory between
commands; in Azure the Storage queue (with its poison queue) takes this place.
"""

from __future__ import annotations

import threading
from collections import deque

from flows.service import Message


class InProcessQueue:
    def __init__(self) -> None:
        self._messages: deque[Message] = deque()
        self._lock = threading.Lock()

    def put(self, message: Message) -> None:
        with self._lock:
            self._messages.append(message)

    def get(self) -> Message | None:
        with self._lock:
            return self._messages.popleft() if self._messages else None

    def done(self, message: Message) -> None:
        """Nothing to acknowledge: a message leaves the deque when it is taken."""

    def __len__(self) -> int:
        return len(self._messages)
