"""The sample form, its responses and its SharePoint list items, read once for the intake tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from adapters.forms import load_form_definition

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "forms"
FORM = load_form_definition(SAMPLES / "form-definition.json")
RESPONSES: list[dict[str, Any]] = json.loads((SAMPLES / "responses.json").read_text(encoding="utf-8"))
LIST_ITEMS: list[dict[str, Any]] = json.loads(
    (SAMPLES / "list-items-delta.json").read_text(encoding="utf-8")
)["value"]
QUESTION_ID = {question.field: question.id for question in FORM.questions}
