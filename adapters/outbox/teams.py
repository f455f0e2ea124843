"""``OutboxOperatorChannel``: the embedded ``OperatorChannel``, writing each card as Teams would get it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adapters.outbox.folder import OutboxFolder
from adapters.outbox.json_text import indented
from flows.ports import OperatorCard

if TYPE_CHECKING:
    from adapters.outbox.journal import OutboxJournal

ADAPTIVE_CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"


def workflows_message(card: dict[str, Any]) -> dict[str, Any]:
    """The body a Teams Workflows webhook ("post to a channel when a webhook request is received") takes."""
    return {
        "type": "message",
        "attachments": [{"contentType": ADAPTIVE_CARD_CONTENT_TYPE, "content": card}],
    }


class OutboxOperatorChannel:
    """Writes ``<outbox>/teams/<safe key>.json`` once per idempotency key; returns the file's stem.

    A repeated post with the same key writes nothing and returns the same id.
    """

    def __init__(self, outbox: str | os.PathLike[str], *, journal: OutboxJournal | None = None) -> None:
        """``journal``: commit each card there before its file (see ``adapters.outbox.journal``)."""
        self._folder = OutboxFolder(Path(outbox) / "teams", suffix=".json", journal=journal)

    def path_for(self, idempotency_key: str) -> Path:
        return self._folder.path_for(idempotency_key)

    def repair(self) -> list[Path]:
        """Write again the cards a crash lost after they were journaled (see ``OutboxFolder.repair``)."""
        return self._folder.repair()

    def post(self, card: OperatorCard) -> str:
        content = indented(workflows_message(card.card))  # json.dumps(indent=2), at a third of the cost
        path, _ = self._folder.write_once(card.idempotency_key, (content + "\n").encode("utf-8"))
        return path.stem
