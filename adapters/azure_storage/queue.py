"""``StorageWorkQueue``: the work queue on an Azure Storage queue, with its poison queue.

In Azure the Functions host takes messages off this queue itself (the queue trigger); this class is
for the bridge's own drain loop (the CLI, a worker outside Functions, tests) and for putting messages
on. Both sides must agree on the text of a message:

- Encoding: the Functions host expects **base64** by default (host.json ``extensions.queues.
  messageEncoding``, ``base64`` unless set to ``none``) and writes base64 through its output bindings.
  ``encoding="base64"`` (the default) matches it; ``"text"`` puts the JSON as it is, for a host set to
  ``none``. Decoding is done here, not by an SDK policy, so that a message that cannot be read is moved
  to the poison queue instead of failing every ``get``.
- Poison: the host moves a message that was dequeued ``maxDequeueCount`` times without success to
  ``<queue>-poison``. ``get`` does the same: a message dequeued more than ``max_dequeue_count`` times
  (or unreadable) goes to the poison queue, unchanged and without expiry, and ``get`` takes the next.
- The poison queue's own trigger (``poison_alert``) keeps the message (``keep_poisoned``: a table,
  ``adapters.azure_storage.poisoned``), then tells operators, and the host deletes it from the poison
  queue once told; ``poisoned_messages`` lists the kept ones and ``requeue_poisoned`` puts them back on
  the work queue, then forgets them (in that order: a crash between the two leaves a copy kept, never
  none). When telling fails, ``poison_again`` puts the message back, hidden for a while: the alert
  is tried again then. What the host still moves on to ``<queue>-poison-poison`` (the trigger failed
  every delivery: the bridge could not be built, or Storage refused the put-back) no trigger watches;
  ``bring_back_poison_poison``, run by the upkeep timer's message, returns it to the poison queue.
  What waits in either, not kept yet, is listed by a peek (``waiting_poisoned``): the first 32 visible
  messages of each, the most one peek returns (Storage queues have no paging for peeks), and about how
  many others there are.

``get`` hides the message for ``visibility_timeout`` seconds; ``done`` deletes it with the pop receipt
kept from ``get`` (the port hands back the ``Message``, not the queue's receipt). A message not acknowledged
in time becomes visible again and is delivered again, which is safe: its runs resume by message id.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
from collections.abc import Collection
from datetime import UTC, datetime
from typing import Literal, NamedTuple

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.storage.queue import QueueClient, QueueMessage
from pydantic import ValidationError

from adapters.azure_storage._errors import storage_errors
from adapters.azure_storage.poisoned import TablePoisonedMessages, identify
from flows.errors import BadInput
from flows.queue_message import Message
from flows.service import PoisonedMessage, UnknownPoisoned

MAX_MESSAGE_BYTES = 64 * 1024  # the service's limit on a message's text
PEEK_LIMIT = 32  # the most messages one peek returns; a peek always starts at the queue's front
log = logging.getLogger(__name__)


class WaitingPoisoned(NamedTuple):
    """What waits in one poison queue, not kept yet: the messages a peek shows, and about how many more
    it does not (beyond the first ``PEEK_LIMIT``, or hidden until their alert is tried again)."""

    queue: str
    listed: list[PoisonedMessage]
    more: int


class StorageWorkQueue:
    """The ``WorkQueue`` on Azure Storage queues (see the module's docstring)."""

    def __init__(
        self,
        queue: QueueClient,
        poison: QueueClient,
        *,
        kept: TablePoisonedMessages,
        poison_poison: QueueClient | None = None,
        encoding: Literal["base64", "text"] = "base64",
        max_dequeue_count: int = 5,
        visibility_timeout: int = 300,
    ) -> None:
        """``queue``, ``poison`` and ``poison_poison`` (the host's poison queue of the poison queue; None
        when its name would be too long for a queue, so the host cannot make it either): clients without
        message encode/decode policies (this class encodes). ``kept``: where poisoned messages are kept
        for an operator."""
        self._queue = queue
        self._poison = poison
        self._kept = kept
        self._poison_poison = poison_poison
        self._encoding = encoding
        self._max_dequeue_count = max_dequeue_count
        self._visibility_timeout = visibility_timeout
        self._receipts: dict[str, dict[str, str]] = {}  # message id -> queue message id -> pop receipt
        self._lock = threading.Lock()

    def put(self, message: Message) -> None:
        content = self._encode(message.model_dump_json())
        if len(content.encode()) > MAX_MESSAGE_BYTES:
            raise BadInput(
                f"message {message.message_id} is {len(content.encode()):,} bytes as queued, over the "
                f"queue's limit of {MAX_MESSAGE_BYTES:,}"
            )
        with storage_errors(f"queue {self._queue.queue_name}: put message {message.message_id}"):
            self._queue.send_message(content)

    def get(self) -> Message | None:
        while True:
            with storage_errors(f"queue {self._queue.queue_name}: get"):
                received = self._queue.receive_message(visibility_timeout=self._visibility_timeout)
            if received is None:
                return None
            message = self._decode(received.content)
            if message is None:
                self._to_poison(received, "it is not a message the bridge can read")
            elif received.dequeue_count is not None and received.dequeue_count > self._max_dequeue_count:
                self._to_poison(received, f"it was dequeued {received.dequeue_count} times")
            else:
                with self._lock:
                    deliveries = self._receipts.setdefault(message.message_id, {})
                    deliveries[received.id] = str(received.pop_receipt)  # a later receipt replaces one
                return message

    def waiting(self) -> bool:
        """Whether a message is visible now (a peek: nothing is taken or hidden). Messages other
        workers hold, or hidden until a redelivery, are not counted, as ``get`` would not take them."""
        with storage_errors(f"queue {self._queue.queue_name}: peek"):
            return bool(self._queue.peek_messages(max_messages=1))

    def done(self, message: Message) -> None:
        """Delete every delivery of this message taken by this instance and not yet acknowledged."""
        with self._lock:
            deliveries = self._receipts.pop(message.message_id, None)
        if deliveries is None:
            raise KeyError(f"message {message.message_id} was not taken from this queue, or is acknowledged")
        for queued_id, pop_receipt in deliveries.items():
            with storage_errors(f"queue {self._queue.queue_name}: delete message {message.message_id}"):
                try:
                    self._queue.delete_message(queued_id, pop_receipt)
                except HttpResponseError as error:
                    if not _receipt_expired(error):
                        raise
                    log.warning(
                        "message %s was hidden for less time than it took (visibility timeout %s s): it "
                        "will be delivered again, and its runs resume",
                        message.message_id,
                        self._visibility_timeout,
                    )

    def poison_again(self, body: bytes, *, hidden_for: int) -> None:
        """Put a poisoned message back on the poison queue, as the poison trigger got it (decoded),
        hidden for ``hidden_for`` seconds and without expiry: its alert could not be posted."""
        name = self._poison.queue_name
        with storage_errors(f"queue {name}: put back a poisoned message"):
            self._poison.send_message(self._content(body), visibility_timeout=hidden_for, time_to_live=-1)

    def keep_poisoned(self, body: bytes) -> PoisonedMessage:
        """Keep a poisoned message's body (as the poison trigger got it, decoded) until an operator
        puts it back: once per body, so the trigger run again keeps no second copy."""
        reason = f"moved to {self._poison.queue_name} by the Functions host after failed deliveries"
        kept, first = self._kept.keep(body, reason=reason)
        if first:
            log.warning(
                "poisoned message %s (type %s, flow %s) kept for an operator: list with 'python -m flows "
                "poisoned', put back with 'poisoned --requeue %s'",
                kept.message_id, kept.type, kept.flow, kept.message_id,
            )  # fmt: skip
        return kept

    def poisoned_messages(self) -> list[PoisonedMessage]:
        """The kept poisoned messages, oldest first (what they were, never their bodies)."""
        return self._kept.listing()

    def requeue_poisoned(self, message_ids: Collection[str] | None = None) -> int:
        """Put kept poisoned messages (these ids, or every one) back on the work queue as they were
        received, each then forgotten: a crash between the two leaves the copy kept, and putting it
        back twice is safe (its runs resume by message id). An id not kept raises ``UnknownPoisoned``
        before any is put back. Returns how many were put back."""
        if message_ids is None:
            rows = self._kept.all_rows()
        else:
            found = self._kept.kept_under(set(message_ids))
            unknown = set(message_ids) - set(found)
            if unknown:
                raise UnknownPoisoned(unknown)
            rows = [row for message_id in dict.fromkeys(message_ids) for row in found[message_id]]
        moved = 0
        for row in rows:
            body = self._kept.body(row)
            if body is None:  # put back by someone else since the listing
                continue
            with storage_errors(f"queue {self._queue.queue_name}: put back a poisoned message"):
                self._queue.send_message(self._content(body))
            self._kept.forget(row)
            moved += 1
        return moved

    def forget_poisoned(self, message_ids: Collection[str]) -> int:
        """Delete the kept copies of these ids without putting them back; how many. An id not kept
        raises ``UnknownPoisoned`` before any is deleted."""
        found = self._kept.kept_under(set(message_ids))
        unknown = set(message_ids) - set(found)
        if unknown:
            raise UnknownPoisoned(unknown)
        rows = [row for message_id in dict.fromkeys(message_ids) for row in found[message_id]]
        for row in rows:
            self._kept.forget(row)
        return len(rows)

    def waiting_poisoned(self) -> list[WaitingPoisoned]:
        """What waits in the poison queue and the one after it, not kept yet, by queue: the first
        ``PEEK_LIMIT`` visible messages as a peek shows them (nothing is taken, hidden or counted as a
        delivery), each under the id it would be kept under, and about how many others the queue holds
        (its approximate count, less those listed). A message hidden until its alert is tried again is
        not visible to a peek: it is among the others. Never a body (it may hold a supplier's contact)."""
        waiting = []
        for queue in (self._poison, self._poison_poison):
            if queue is None:
                continue
            name = queue.queue_name
            with storage_errors(f"queue {name}: peek"):
                try:
                    count = queue.get_queue_properties().approximate_message_count or 0
                    peeked = queue.peek_messages(max_messages=PEEK_LIMIT) if count else []
                except ResourceNotFoundError:  # the host makes it when it first needs it
                    count, peeked = 0, []
            listed = [self._waiting(received, name) for received in peeked]
            waiting.append(WaitingPoisoned(name, listed, max(0, count - len(listed))))
        return waiting

    def _waiting(self, received: QueueMessage, name: str) -> PoisonedMessage:
        message_id, kind, flow = identify(self._body(received.content))
        return PoisonedMessage(
            message_id=message_id,
            type=kind,
            flow=flow,
            reason=f"not kept yet: waiting in {name} (deliveries: its trigger's)",
            poisoned_at=received.inserted_on or datetime.now(UTC),  # Storage always sends it; typed optional
            dequeue_count=received.dequeue_count,
        )

    def bring_back_poison_poison(self) -> list[str]:
        """Move every message of ``<queue>-poison-poison`` back to the poison queue, unchanged and without
        expiry; returns the queue message ids moved. A copy moved twice (a crash between the send and
        the delete) is told twice, never lost."""
        source = self._poison_poison
        if source is None:
            return []
        moved: list[str] = []
        while True:
            with storage_errors(f"queue {source.queue_name}: get"):
                try:
                    batch = list(source.receive_messages(messages_per_page=32, visibility_timeout=60))
                except ResourceNotFoundError:  # the host creates it when it first needs it
                    return moved
            if not batch:
                return moved
            for received in batch:
                with storage_errors(f"queue {source.queue_name}: move message {received.id}"):
                    self._poison.send_message(received.content, time_to_live=-1)
                    source.delete_message(received.id, received.pop_receipt)
                message = self._decode(received.content)
                log.warning(
                    "queue message %s (work message %s) was in %s, which nothing watches (telling "
                    "operators had failed every delivery): moved back to %s, to be told again",
                    received.id,
                    message.message_id if message is not None else "unreadable",
                    source.queue_name,
                    self._poison.queue_name,
                )
                moved.append(str(received.id))

    def _to_poison(self, received: QueueMessage, why: str) -> None:
        name = self._poison.queue_name
        with storage_errors(f"queue {name}: move message {received.id}"):
            try:
                self._poison.send_message(received.content, time_to_live=-1)
            except ResourceNotFoundError:
                self._poison.create_queue()
                self._poison.send_message(received.content, time_to_live=-1)
            self._queue.delete_message(received.id, received.pop_receipt)
        log.warning("queue message %s moved to %s: %s", received.id, name, why)

    def _content(self, body: bytes) -> str:
        """A message's text on a queue, from its body as a trigger gets it (decoded)."""
        if self._encoding == "base64":
            return base64.b64encode(body).decode("ascii")
        return body.decode(errors="replace")

    def _encode(self, text: str) -> str:
        return base64.b64encode(text.encode()).decode("ascii") if self._encoding == "base64" else text

    def _body(self, content: object) -> bytes:
        """A message's body as a trigger gets it, from its text on a queue; text that is not base64
        where base64 is expected stays as it is (unreadable, it is named by its digest)."""
        text = str(content)
        if self._encoding == "base64":
            try:
                return base64.b64decode(text, validate=True)
            except binascii.Error:
                pass
        return text.encode(errors="surrogatepass")

    def _decode(self, content: object) -> Message | None:
        try:
            text = str(content)
            if self._encoding == "base64":
                text = base64.b64decode(text, validate=True).decode()
            return Message.model_validate_json(text)
        except (binascii.Error, UnicodeDecodeError, ValidationError):
            return None


def _receipt_expired(error: HttpResponseError) -> bool:
    """404 (the message is gone, or its receipt is stale) or 400 PopReceiptMismatch."""
    return error.status_code == 404 or getattr(error, "error_code", None) == "PopReceiptMismatch"
