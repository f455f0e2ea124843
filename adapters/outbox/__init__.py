"""Embedded message senders: outgoing e-mails and operator cards as files in an outbox folder.

``<outbox>/mail/*.eml`` are MIME messages any mail client opens; ``<outbox>/teams/*.json`` are the
bodies a Teams Workflows webhook would receive. One file per idempotency key, never overwritten.
"""

from adapters.outbox.folder import safe_file_stem
from adapters.outbox.mail import IDEMPOTENCY_HEADER, OutboxMailer
from adapters.outbox.teams import OutboxOperatorChannel, workflows_message

__all__ = [
    "IDEMPOTENCY_HEADER",
    "OutboxMailer",
    "OutboxOperatorChannel",
    "safe_file_stem",
    "workflows_message",
]
