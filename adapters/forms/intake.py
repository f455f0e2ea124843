"""Form intake: a response, as Power Automate or a SharePoint list gives it, to the canonical notification.

Both shapes map through the ``FormDefinition`` onto ``EmergencyNotification``; the domain's rules do the
checking, and every field they refuse is reported at once in an ``IntakeRejection``, in words a supplier
can act on. Who may notify for which supplier is the domain's ``SupplierRegister``'s to say; ``authorise``
turns its answer into the same kind of rejection.

Answers to question ids the form definition does not know are not read. They do not refuse a response
that is otherwise complete (a question added to the form before the definition is updated must not
stop intake), but they are logged, ids only, and a required answer found missing names them: a
mistyped id loses no answer silently. SharePoint items carry columns of their own (``Title``, ...),
so unknown columns are not reported.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from adapters.forms.definition import RESPONSE_METADATA, FormDefinition
from flows.domain.notification import EmergencyNotification, visible_text
from flows.domain.suppliers import SupplierRegister
from flows.errors import BadInput

RejectionKind = Literal["invalid", "unauthorised"]
log = logging.getLogger(__name__)
_MAX_REASON = 300
_SHOWN_UNKNOWN = 3  # unknown question ids named in a rejection (each cut to 40 characters)
_PLAIN_WORDS = {  # pydantic's error types, by family, in words a supplier reads
    "missing": "missing",
    "string_type": "should be text, not {kind}",
    "string_too_long": "is too long (more than {max_length} characters)",
    "int": "is not a whole number: {shown}",
    "greater_than_equal": "must be at least {ge}: {shown}",
    "less_than_equal": "must be at most {le:,}: {shown}",
    "date": "is not a date (like 2026-11-30): {shown}",
    "datetime": "is not a date and time (like 2026-11-19T10:02:11Z): {shown}",
    "enum": "should be one of {expected}, not {shown}",
}


@dataclass(frozen=True)
class FieldProblem:
    """Why one field of a response cannot be accepted; ``question`` is what the supplier saw."""

    field: str
    question: str
    reason: str

    def __str__(self) -> str:
        label = self.field if self.question == self.field else f"{self.question} ({self.field})"
        return f"{label}: {self.reason}"


class IntakeRejection(BadInput):
    """A response DCC will not act on: every invalid field, or why the responder may not notify.

    ``supplier``, ``responder`` and ``party_id`` are as the response gave them (a refused field as
    ``_shown``): the case keeps the first two, and all three decide whether the responder may be told
    why (``SupplierRegister.answers_to``).
    """

    def __init__(
        self,
        *,
        response_id: str | None,
        supplier: str,
        responder: str,
        problems: list[FieldProblem],
        kind: RejectionKind = "invalid",
        party_id: str = "",
    ) -> None:
        self.response_id = response_id
        self.supplier = supplier
        self.responder = responder
        self.party_id = party_id
        self.problems = problems
        self.kind = kind
        super().__init__(self._message())

    def _message(self) -> str:
        who = f"response {self.response_id}" if self.response_id else "response (no id)"
        count = len(self.problems)
        if self.kind == "unauthorised":
            headline = f"{who}: {self.responder or 'the responder'} may not notify for {self.supplier!r}"
        else:
            headline = f"{who}: {count} invalid field{'' if count == 1 else 's'}"
        return "\n".join([headline, *(f"- {problem}" for problem in self.problems)])


class UnrecognisedPayload(BadInput):
    """Something that is not a response to this form in either known shape."""


def notification_from_response(response: Mapping[str, Any], form: FormDefinition) -> EmergencyNotification:
    """Map a Power Automate "Get response details" result (``answers`` keyed by question id)."""
    payload = _mapping(response, "form response")
    form_id = payload.get("formId")
    if form_id is not None and form_id != form.form_id:
        raise UnrecognisedPayload(
            f"response {payload.get('responseId')!r} is to form {form_id!r}, not {form.form_id!r}"
        )
    answers = _mapping(payload.get("answers"), "form response 'answers'")
    values = {m.field: payload.get(m.forms_key) for m in RESPONSE_METADATA}
    values.update({q.field: answers.get(q.id) for q in form.questions})
    labels = {m.field: m.forms_key for m in RESPONSE_METADATA}
    known = {q.id for q in form.questions}
    unknown = [str(key) for key in answers if key not in known]
    if unknown:
        log.warning(
            "response %r: %d answer(s) to question ids not on form %s were not read: %s",
            str(payload.get("responseId"))[:64],
            len(unknown),
            form.form_id,
            ", ".join(repr(key[:40]) for key in unknown[:10]),
        )
    return _notification(values, labels, form, unknown=unknown)


def notification_from_list_item(item: Mapping[str, Any], form: FormDefinition) -> EmergencyNotification:
    """Map a SharePoint list item (as a Graph list-item delta gives it) whose ``fields`` are the columns."""
    payload = _mapping(item, "list item")
    if "fields" not in payload and "@removed" in payload:
        raise UnrecognisedPayload(f"list item {payload.get('id')!r} was removed: it carries no response")
    fields = _mapping(payload.get("fields"), "list item 'fields'")
    values = {m.field: fields.get(m.column) for m in RESPONSE_METADATA}
    values.update({q.field: fields.get(q.column) for q in form.questions})
    labels = {m.field: m.column for m in RESPONSE_METADATA}
    return _notification(values, labels, form)


def notification_from_any(payload: object, form: FormDefinition) -> EmergencyNotification:
    """Map either shape, recognised by its ``answers`` (Forms) or ``fields`` (SharePoint) member."""
    data = _mapping(payload, "form response or list item")
    shapes = [key for key in ("answers", "fields") if key in data]
    if shapes == ["answers"]:
        return notification_from_response(data, form)
    if shapes == ["fields"]:
        return notification_from_list_item(data, form)
    found = ", ".join(repr(k) for k in list(data)[:10]) or "nothing"
    raise UnrecognisedPayload(
        "neither a Forms response ('answers') nor a SharePoint list item ('fields'), "
        f"exactly one of which is expected; found {found}"
    )


def authorise(
    notification: EmergencyNotification, register: SupplierRegister, *, form: FormDefinition | None = None
) -> None:
    """Refuse the notification unless its responder may notify for the supplier it names.

    The register decides; this raises its answer as an ``IntakeRejection`` (kind ``unauthorised``)
    whose problems name ``supplier``, ``supplier_party_id`` or ``responder``, titled from ``form``.
    """
    problems = register.authorisation_problems(notification)
    if not problems:
        return
    labels = {m.field: m.forms_key for m in RESPONSE_METADATA}
    if form is not None:
        labels.update({q.field: q.title for q in form.questions})
    found = []
    for text in problems:
        field, _, reason = text.partition(": ")
        if field not in EmergencyNotification.model_fields or not reason:
            field, reason = "supplier", text
        found.append(FieldProblem(field, labels.get(field, field), reason))
    raise IntakeRejection(
        response_id=notification.response_id,
        supplier=notification.supplier,
        responder=notification.responder,
        problems=found,
        kind="unauthorised",
        party_id=notification.supplier_party_id,
    )


def _mapping(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise UnrecognisedPayload(f"{what} must be a JSON object, not {_kind(value)}")
    return value


def _notification(
    values: dict[str, Any], labels: dict[str, str], form: FormDefinition, *, unknown: list[str] | None = None
) -> EmergencyNotification:
    labels = {**labels, **{q.field: q.title for q in form.questions}}
    fields = EmergencyNotification.model_fields
    # An unanswered optional question (Forms sends "") takes its default; a required one is refused.
    data = {
        name: value
        for name, value in values.items()
        if value is not None and not (_blank(value) and not fields[name].is_required())
    }
    try:
        return EmergencyNotification.model_validate(data, context={"max_length": form.max_lengths()})
    except ValidationError as exc:
        questions = {q.field for q in form.questions}  # an unknown id can only have meant a question
        problems = [_problem(error, values, labels, unknown or [], questions) for error in exc.errors()]
        raise IntakeRejection(
            response_id=_shown(values.get("response_id"), 64) or None,
            supplier=_shown(values.get("supplier"), 200),
            responder=_shown(values.get("responder"), 254),
            problems=problems,
            # Cut well past a party id's 23 characters: a longer answer is no party id, and is not kept.
            party_id=_shown(values.get("supplier_party_id"), 64),
        ) from exc


def _problem(
    error: ErrorDetails,
    values: dict[str, Any],
    labels: dict[str, str],
    unknown: list[str],
    questions: set[str],
) -> FieldProblem:
    field = str(error["loc"][0]) if error["loc"] else "response"
    reason = _reason(error, values.get(field))
    if error["type"] == "missing" and unknown and field in questions:
        shown = ", ".join(repr(key[:40]) for key in unknown[:_SHOWN_UNKNOWN])
        more = f" and {len(unknown) - _SHOWN_UNKNOWN} more" if len(unknown) > _SHOWN_UNKNOWN else ""
        reason += f" (answers to unknown question ids were not read: {shown}{more}; a mistyped id?)"
    return FieldProblem(field, labels.get(field, field), reason)


def _reason(error: ErrorDetails, given: Any) -> str:
    """Pydantic's error in plain words; the domain's own ``ValueError`` texts are kept as they are."""
    kind = error["type"]
    if kind == "value_error":
        reason = error["msg"].removeprefix("Value error, ")
    elif kind != "missing" and _blank(given):
        reason = "is empty"
    else:
        family = next((f for f in ("datetime", "date", "int") if kind.startswith(f)), kind)
        template = _PLAIN_WORDS.get(family)
        # A list or object is named by its kind: its text could be long, and says nothing useful.
        shown = _kind(given) if isinstance(given, list | dict) else repr(given)
        context = {**error.get("ctx", {}), "given": given, "shown": shown, "kind": _kind(given)}
        reason = template.format(**context) if template else error["msg"][:1].lower() + error["msg"][1:]
    return reason if len(reason) <= _MAX_REASON else reason[: _MAX_REASON - 1] + "…"


def _blank(value: Any) -> bool:
    return isinstance(value, str) and not value.strip()


def _shown(value: Any, limit: int) -> str:
    """A refused response's id, supplier, responder or party id as the rejection names it (and a rejected case
    keeps it): text or a whole number only, without control or invisible characters, cut to ``limit``."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return ""
    text = visible_text(str(value))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _kind(value: object) -> str:
    names = {dict: "an object", list: "a list", bool: "true/false", int: "a number", float: "a number"}
    return "nothing" if value is None else names.get(type(value), f"a {type(value).__name__}")
