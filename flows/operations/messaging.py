"""Operations that tell people: e-mails to the supplier and cards to the operators' channel.

The operation looks the case up itself, so addresses and contact details go from the store to the
template and never through a run's inputs or outputs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flows.domain.case import Case
from flows.domain.decisions import accepted_verdicts
from flows.engine.registry import ActionContext
from flows.errors import BadInput
from flows.messages import MessageTemplates
from flows.ports import CaseStore, Mailer, OperatorCard, OperatorChannel, PublicationStore


class MessagingOperations:
    def __init__(
        self,
        templates: MessageTemplates,
        mailer: Mailer,
        channel: OperatorChannel,
        cases: CaseStore,
        publications: PublicationStore,
        case_url: Callable[[str], str | None] = lambda response_id: None,
    ) -> None:
        self._templates = templates
        self._mailer = mailer
        self._channel = channel
        self._cases = cases
        self._publications = publications
        self._case_url = case_url

    def send_mail(
        self, context: ActionContext, template: str, response_id: str, extra: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """E-mail the responder of a case, rendered from a template; once per idempotency key."""
        case = self._case(response_id)
        responder = case.notification.responder if case.notification else case.responder
        if not responder:
            raise BadInput(f"case {response_id} has no responder address to write to")
        email = self._templates.email(
            template,
            self._values(response_id, case, extra),
            to=[responder],
            idempotency_key=context.idempotency_key,
        )
        return {"message_id": self._mailer.send(email), "template": template}

    def post_card(
        self,
        context: ActionContext,
        template: str,
        response_id: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Post an Adaptive Card to the operators' channel; once per idempotency key."""
        values = (
            self._values(response_id, self._case(response_id), extra) if response_id else dict(extra or {})
        )
        card: OperatorCard = self._templates.card(template, values, idempotency_key=context.idempotency_key)
        return {"post_id": self._channel.post(card), "template": template}

    def _case(self, response_id: str) -> Case:
        """The case, read once per message: its context and its address come from the same read."""
        case = self._cases.get(response_id)
        if case is None:
            raise BadInput(f"no case for response {response_id!r}")
        return case

    def _values(self, response_id: str, case: Case, extra: dict[str, Any] | None) -> dict[str, Any]:
        values: dict[str, Any] = {
            "case": case.model_dump(mode="json"),
            "problems": list(case.problems),
            "case_url": self._case_url(response_id),
        }
        # Only a case with an entry asks for the publication: one that has none yet (every
        # acknowledgement) spares a query.
        if case.cpl_entry_id and (stored := self._publications.latest()) is not None:
            entry = stored.publication.by_id().get(case.cpl_entry_id)
            values["entry"] = entry.model_dump(mode="json") if entry else None
            # What an operator accepted for the load: the supplier is told it loaded other than notified.
            accepted = accepted_verdicts(case, entry, stored.publication)
            values["accepted"] = [verdict.model_dump(mode="json") for verdict in accepted]
        values.update(extra or {})
        return values
