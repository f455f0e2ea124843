"""The JSON Schema of flow files, generated from the models in ``definition.py``.

``flows/flow.schema.json`` is kept in the repository so that editors check a flow as it is written
(``# yaml-language-server: $schema=../flow.schema.json``). Regenerate it after changing the models::

    python -m flows.engine.schema          # writes flows/flow.schema.json
    python -m flows.engine.schema --check  # exits 1 when the file is out of date

A test fails while the committed file differs from what the models generate.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from flows.engine.definition import FlowDefinition

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "flow.schema.json"
SCHEMA_ID = "urn:cpl-bridge:flow.schema.json"
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def flow_json_schema() -> dict[str, Any]:
    """The schema of one flow file, with the names written in flow files (``runAfter``, ``if``)."""
    generated = FlowDefinition.model_json_schema(by_alias=True)
    generated.pop("title", None)
    return {"$schema": DIALECT, "$id": SCHEMA_ID, "title": "CPL bridge flow", **generated}


def schema_text() -> str:
    """The schema as the committed file holds it: two-space indent, trailing newline."""
    return json.dumps(flow_json_schema(), indent=2, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flows.engine.schema", description="Write the JSON Schema of flow files."
    )
    parser.add_argument("--check", action="store_true", help="only report whether the file is up to date")
    parser.add_argument("--output", type=Path, default=SCHEMA_PATH, help=f"default: {SCHEMA_PATH}")
    arguments = parser.parse_args(argv)
    text = schema_text()
    current = arguments.output.read_text(encoding="utf-8") if arguments.output.exists() else None
    if arguments.check:
        if current != text:
            print(f"{arguments.output} is out of date: run python -m flows.engine.schema", file=sys.stderr)
            return 1
        return 0
    if current != text:
        arguments.output.write_text(text, encoding="utf-8")
        print(f"wrote {arguments.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
