"""Flow files are checked before they run: every fault names the file, the line and the action.

``load_flow`` rejects what the schema forbids; ``validate_flow`` what needs the whole flow (connectors,
``runAfter``, expressions). And the committed JSON Schema matches the models.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from flows.engine import loader, schema
from flows.engine.loader import FlowFileError, load_flow
from flows.engine.registry import ActionContext, ConnectorRegistry
from flows.engine.validation import validate_flow
from flows.settings import Settings


def echo(context: ActionContext, **inputs: Any) -> dict[str, Any]:
    return dict(inputs)


def record(context: ActionContext, **inputs: Any) -> dict[str, Any]:
    return {"recorded": context.action}


@pytest.fixture
def registry() -> ConnectorRegistry:
    registry = ConnectorRegistry()
    registry.register("test.echo", echo, side_effect=False)
    registry.register("test.record", record, side_effect=True)
    return registry


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "flow.yaml"
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


def at(path: Path, needle: str) -> str:
    """``path:line`` of the one line holding ``needle``: what an error must start with."""
    numbers = [n for n, line in enumerate(path.read_text().splitlines(), 1) if needle in line]
    assert len(numbers) == 1, f"{needle!r} should be on exactly one line, is on {numbers}"
    return f"{path}:{numbers[0]}"


HEAD = """
name: checked
triggers:
  - type: http
actions:
"""

# (flow text after HEAD, the text on the line the error points at, what the error must also say)
FLOW_PROBLEMS = {
    "unknown connector": (
        """
          fetch:
            use: test.echo
          send:
            use: nope.send
        """,
        "use: nope.send",
        ["'send'", "unknown connector 'nope.send'"],
    ),
    "cycle in runAfter": (
        """
          ping:
            use: test.echo
            runAfter: {pong: [Succeeded]}
          pong:
            use: test.echo
            runAfter: {ping: [Succeeded]}
        """,
        "  ping:",
        ["cycle", "ping -> pong -> ping"],
    ),
    "malformed expression": (
        """
          fetch:
            use: test.echo
          send:
            use: test.echo
            inputs:
              body: ${actions.fetch.outputs[}
        """,
        "inputs:",
        ["'send'", "malformed expression ${actions.fetch.outputs[}"],
    ),
    "reads an action that runs later": (
        """
          send:
            use: test.echo
            inputs:
              body: ${actions.later.outputs.body}
          later:
            use: test.echo
        """,
        "inputs:",
        ["'send' reads actions.later", "no earlier action produces"],
    ),
    "reads an action that does not exist": (
        """
          send:
            use: test.echo
            inputs:
              body: ${actions.ghost.outputs.body}
        """,
        "inputs:",
        ["'send' reads actions.ghost", "no earlier action produces"],
    ),
    "reads a sibling running in parallel": (
        """
          fetch:
            use: test.echo
          send:
            use: test.echo
            runAfter: {}
            inputs:
              body: ${actions.fetch.outputs.body}
        """,
        "inputs:",
        ["'send' reads actions.fetch", "no earlier action produces"],
    ),
    "negates a name, not the path after it": (
        """
          fetch:
            use: test.echo
          send:
            use: test.echo
            if: ${actions.fetch.status == 'Succeeded' && !actions.fetch.outputs.body}
        """,
        "if:",
        [
            "'send'",
            "'!actions.fetch.outputs.body' negates 'actions' alone",
            "write '!(actions.fetch.outputs.body)'",
        ],
    ),
    "runAfter names a missing action": (
        """
          send:
            use: test.echo
            runAfter:
              ghost: [Succeeded]
        """,
        "ghost:",
        ["'send' runs after 'ghost'"],
    ),
}


@pytest.mark.parametrize("case", FLOW_PROBLEMS)
def test_validate_flow_names_file_line_and_action(
    case: str, tmp_path: Path, registry: ConnectorRegistry
) -> None:
    body, line, fragments = FLOW_PROBLEMS[case]
    path = write(tmp_path, HEAD + textwrap.indent(textwrap.dedent(body).lstrip(), "  "))
    problems = validate_flow(load_flow(path), registry)
    assert len(problems) == 1, problems
    assert problems[0].startswith(at(path, line) + ": "), problems[0]
    for fragment in fragments:
        assert fragment in problems[0]


DUPLICATE_NAMES = (
    HEAD
    + """
  notify:
    use: test.echo
  wrap:
    actions:
      notify:
        use: test.record
"""
)


def test_duplicate_action_names_across_nested_scopes_are_rejected(
    tmp_path: Path, registry: ConnectorRegistry
) -> None:
    path = write(tmp_path, DUPLICATE_NAMES)
    problems = validate_flow(load_flow(path), registry)
    assert len(problems) == 1 and problems[0].startswith(f"{path}")
    assert "'notify' is used more than once" in problems[0]


def test_duplicate_action_names_point_at_the_second_use(tmp_path: Path, registry: ConnectorRegistry) -> None:
    path = write(tmp_path, DUPLICATE_NAMES)
    problems = validate_flow(load_flow(path), registry)
    assert problems[0].startswith(at(path, "      notify:") + ": ")


# (whole file, the text on the line the error points at, what the error must also say)
LOAD_PROBLEMS = {
    "unknown key in an action": (
        HEAD + "  send:\n    use: test.echo\n    colour: red\n",
        "colour: red",
        ["actions.send.colour", "Extra inputs are not permitted"],
    ),
    "bad retry duration": (
        HEAD + "  send:\n    use: test.echo\n    retry:\n      interval: soon\n",
        "interval: soon",
        ["actions.send.retry.interval", "timedelta"],
    ),
    "event trigger without its event": (
        "name: checked\ntriggers:\n  - type: event\nactions:\n  send:\n    use: test.echo\n",
        "type: event",
        ["triggers.0", "an event trigger names its event"],
    ),
    "file that is not a mapping": ("- name: checked\n- triggers: []\n", "- name: checked", ["a mapping"]),
}


@pytest.mark.parametrize("case", LOAD_PROBLEMS)
def test_load_flow_names_file_and_line(case: str, tmp_path: Path) -> None:
    text, line, fragments = LOAD_PROBLEMS[case]
    path = write(tmp_path, text)
    with pytest.raises(FlowFileError) as raised:
        load_flow(path)
    assert len(raised.value.problems) == 1, raised.value.problems
    problem = raised.value.problems[0]
    assert problem.startswith(at(path, line) + ": "), problem
    for fragment in fragments:
        assert fragment in problem


YAML_SYNTAX_ERROR = HEAD + "  send:\n    use: test.echo\n    inputs: {body: [unclosed}\n"


def test_a_yaml_syntax_error_starts_with_path_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, YAML_SYNTAX_ERROR)
    with pytest.raises(FlowFileError) as raised:
        load_flow(path)
    assert raised.value.problems[0].startswith(at(path, "[unclosed}") + ": ")


def test_a_flow_with_nested_foreach_and_scope_validates_clean(
    tmp_path: Path, registry: ConnectorRegistry
) -> None:
    path = write(
        tmp_path,
        """
        name: nested
        triggers:
          - type: recurrence
            every: PT5M
          - type: event
            event: cpl.entry_added
        key: ${trigger.id}
        actions:
          fetch:
            use: test.echo
            inputs: {cases: "${trigger.cases}"}
          each_case:
            foreach: ${actions.fetch.outputs.cases}
            itemKey: ${item.id}
            actions:
              check:
                use: test.echo
                if: ${item.ready}
                inputs: {id: "${item.id}", source: "${actions.fetch.outputs.source}"}
              handle:
                runAfter:
                  check: [Succeeded, Skipped]
                actions:
                  load:
                    use: test.record
                    inputs: {id: "${item.id}", checked: "${actions.check.outputs.id}"}
                  alert:
                    use: test.record
                    runAfter: {load: [Failed, TimedOut]}
                    inputs: {why: "${actions.load.status}", first: "${actions.fetch.outputs.cases[0]}"}
          report:
            use: test.echo
            inputs: {done: "${length(actions.each_case.outputs)}"}
        """,
    )
    assert validate_flow(load_flow(path), registry) == []


def test_the_committed_json_schema_matches_the_models() -> None:
    committed = schema.SCHEMA_PATH.read_text(encoding="utf-8") if schema.SCHEMA_PATH.exists() else ""
    assert committed == schema.schema_text(), (
        f"{schema.SCHEMA_PATH} is out of date with flows/engine/definition.py: "
        "run `python -m flows.engine.schema` and commit the result"
    )


def test_the_schema_command_writes_and_checks_the_file(tmp_path: Path) -> None:
    output = tmp_path / "flow.schema.json"
    assert schema.main(["--check", "--output", str(output)]) == 1
    assert schema.main(["--output", str(output)]) == 0
    assert schema.main(["--check", "--output", str(output)]) == 0
    written = output.read_text(encoding="utf-8")
    assert written.endswith("}\n") and '"$id": "urn:cpl-bridge:flow.schema.json"' in written
    output.write_text(written.replace("runAfter", "run_after"), encoding="utf-8")
    assert schema.main(["--check", "--output", str(output)]) == 1


def test_the_schema_uses_the_names_written_in_flow_files() -> None:
    generated = schema.flow_json_schema()
    assert list(generated)[:3] == ["$schema", "$id", "title"]
    call = generated["$defs"]["CallAction"]
    assert {"runAfter", "if", "idempotencyKey"} <= set(call["properties"])
    assert call["additionalProperties"] is False


def test_libyaml_and_the_pure_python_loader_read_every_flow_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    """Flows are read with libyaml where PyYAML has it (a worker's start-up was mostly the pure-Python
    parse); both must give the same definitions and the same line numbers for every place in them."""
    folder = Settings().flows_dir
    quick = loader.load_flows(folder)
    monkeypatch.setattr(loader, "_LOADER", yaml.SafeLoader)
    pure = loader.load_flows(folder)
    assert quick.keys() == pure.keys() and len(quick) >= 4
    for name in quick:
        assert quick[name].definition == pure[name].definition
        assert quick[name].lines == pure[name].lines and quick[name].lines


def test_a_yaml_syntax_error_names_its_line_with_the_pure_python_loader_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loader, "_LOADER", yaml.SafeLoader)
    path = write(tmp_path, YAML_SYNTAX_ERROR)
    with pytest.raises(FlowFileError) as raised:
        load_flow(path)
    assert raised.value.problems[0].startswith(at(path, "[unclosed}") + ": ")
