"""The form definition and the supplier register, loaded from their JSON files.

The form definition says which question (by its Forms id) and which SharePoint list column carries each
field of the canonical ``EmergencyNotification``; the intake maps responses through it. Both loaders
check the files' shape up front and raise ``ReferenceFileError`` naming the file and the place.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from flows.domain.notification import EmergencyNotification, max_length
from flows.domain.suppliers import SupplierRegister
from flows.errors import BadInput

QuestionType = Literal["text", "choice", "number", "date"]


class ResponseMetadata(BaseModel):
    """A notification field that comes from the response itself rather than from a question."""

    model_config = ConfigDict(frozen=True)

    field: str
    forms_key: str
    column: str


RESPONSE_METADATA = (
    ResponseMetadata(field="response_id", forms_key="responseId", column="ResponseId"),
    ResponseMetadata(field="responder", forms_key="responder", column="Responder"),
    ResponseMetadata(field="submitted_at", forms_key="submitDate", column="SubmitDate"),
)
_METADATA_FIELDS = frozenset(m.field for m in RESPONSE_METADATA)
_QUESTION_FIELDS = frozenset(EmergencyNotification.model_fields) - _METADATA_FIELDS


def pascal_case(field: str) -> str:
    """The SharePoint column a field is stored in by default: ``manufacturer_id`` -> ``ManufacturerId``."""
    return "".join(part[:1].upper() + part[1:] for part in field.split("_"))


class FormQuestion(BaseModel):
    """One question of the form and the notification field its answer fills."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    id: str = Field(min_length=1)
    field: str = Field(min_length=1)
    title: str = Field(min_length=1)
    type: QuestionType
    column: str = Field(min_length=1)
    max_length: int | None = Field(default=None, alias="maxLength", gt=0)
    """A tighter limit on the answer's length than the domain's ceiling for the field (optional)."""

    @field_validator("field")
    @classmethod
    def _is_a_notification_field(cls, value: str) -> str:
        if value not in _QUESTION_FIELDS:
            raise ValueError(f"{value!r} is not a field of the notification a question can fill")
        return value

    @model_validator(mode="after")
    def _limit_within_the_ceiling(self) -> FormQuestion:
        ceiling = max_length(self.field)
        if self.max_length is not None and self.max_length > ceiling:
            raise ValueError(
                f"maxLength {self.max_length} for {self.field!r} is over the bridge's limit of {ceiling}"
            )
        return self

    @model_validator(mode="before")
    @classmethod
    def _default_column(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("column") is None and isinstance(data.get("field"), str):
            return {**data, "column": pascal_case(data["field"])}
        return data


class FormDefinition(BaseModel):
    """The emergency notification form: its id and how its questions map onto the notification."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    form_id: str = Field(alias="formId", min_length=1)
    title: str
    questions: tuple[FormQuestion, ...] = Field(min_length=1)

    def max_lengths(self) -> dict[str, int]:
        """The length limits the form sets, by notification field (the domain's ceilings elsewhere)."""
        return {q.field: q.max_length for q in self.questions if q.max_length is not None}

    @model_validator(mode="after")
    def _questions_cover_the_notification(self) -> FormDefinition:
        problems: list[str] = []
        for attribute in ("id", "field", "column"):
            values = [getattr(q, attribute) for q in self.questions]
            repeated = sorted({v for v in values if values.count(v) > 1})
            problems += [f"{attribute} {v!r} is used by more than one question" for v in repeated]
        clashes = {q.column for q in self.questions} & {m.column for m in RESPONSE_METADATA}
        problems += [f"column {c!r} is reserved for the response's own metadata" for c in sorted(clashes)]
        covered = {q.field for q in self.questions}
        required = [
            name
            for name, info in EmergencyNotification.model_fields.items()
            if info.is_required() and name in _QUESTION_FIELDS and name not in covered
        ]
        if required:
            problems.append(f"no question for required field(s): {', '.join(required)}")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class ReferenceFileError(BadInput):
    """A form definition or supplier register file that cannot be used: which file, where, and why."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        lines = "\n".join(f"- {p}" for p in problems)
        super().__init__(f"{path}: cannot be used\n{lines}")


def _json_path(loc: tuple[int | str, ...]) -> str:
    return "$" + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)


def _read_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ReferenceFileError(path, [f"cannot be read: {exc.strerror or exc}"]) from exc
    except UnicodeDecodeError as exc:
        raise ReferenceFileError(path, [f"is not UTF-8 text (byte {exc.start})"]) from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReferenceFileError(path, [f"line {exc.lineno}, column {exc.colno}: {exc.msg}"]) from exc


def _shape_problems(exc: ValidationError, *, strip: int = 0) -> list[str]:
    return [
        f"{_json_path(tuple(error['loc'])[strip:])}: {error['msg'].removeprefix('Value error, ')}"
        for error in exc.errors()
    ]


def load_form_definition(path: str | Path) -> FormDefinition:
    """Read and check a form definition (``samples/forms/form-definition.json``)."""
    path = Path(path)
    data = _read_json(path)
    try:
        return FormDefinition.model_validate(data)
    except ValidationError as exc:
        raise ReferenceFileError(path, _shape_problems(exc)) from exc


def load_supplier_register(path: str | Path) -> SupplierRegister:
    """Read and check the supplier register: a JSON array of suppliers, or ``{"suppliers": [...]}``."""
    path = Path(path)
    data = _read_json(path)
    wrapped = isinstance(data, dict)
    try:
        register = SupplierRegister.model_validate(data if wrapped else {"suppliers": data})
    except ValidationError as exc:
        raise ReferenceFileError(path, _shape_problems(exc, strip=0 if wrapped else 1)) from exc
    if not register.suppliers:
        raise ReferenceFileError(path, ["$: no suppliers: every notification would be refused"])
    return register
