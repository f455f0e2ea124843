"""Flows drawn as Mermaid: the text says what the flow says, and Mermaid's own parser accepts it.

The parser is the real one (the ``mermaid`` npm package, run by Node), installed on first use into
``<system temp dir>/cpl-bridge-mermaid-check`` (or ``$CPL_BRIDGE_MERMAID_DIR``) under a file lock, so a
fresh machine needs only Node and npm. ``mermaid.parse`` sanitises labels with DOMPurify, which needs a
DOM, so the checker gives it one from jsdom. Broken diagrams are checked too, so the checker is known
to reject what it should.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import tempfile
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from flows.engine.definition import FlowDefinition
from flows.engine.graph import mermaid
from flows.engine.loader import load_flow
from tests.support.npm import npm_install

# mermaid 12 needs Node 22 and jsdom 27 needs Node 20.19+ or 22; CI has Node 20.
PACKAGES = ("mermaid@11", "jsdom@26")
NODE_DIR = Path(
    os.environ.get("CPL_BRIDGE_MERMAID_DIR") or Path(tempfile.gettempdir()) / "cpl-bridge-mermaid-check"
)
DEFINITIONS = Path(__file__).resolve().parent.parent / "flows" / "definitions"

# Reads diagrams as JSON lines on stdin, answers one JSON line each on stdout.
CHECKER = """
import { createInterface } from 'node:readline';
import { JSDOM } from 'jsdom';
const { window } = new JSDOM('');
globalThis.window = window;
globalThis.document = window.document;
console.log = console.info = console.warn = console.debug = console.error;  // stdout is for answers
const { default: mermaid } = await import('mermaid');
mermaid.initialize({ startOnLoad: false });
for await (const line of createInterface({ input: process.stdin })) {
  let answer;
  try {
    const result = await mermaid.parse(JSON.parse(line));
    answer = result ? { ok: true, type: result.diagramType } : { ok: false, error: 'rejected' };
  } catch (error) {
    answer = { ok: false, error: String(error?.message ?? error) };
  }
  process.stdout.write(JSON.stringify(answer) + '\\n');
}
"""


class MermaidParser:
    """One Node process for the session, running ``mermaid.parse`` on each diagram it is sent."""

    def __init__(self, node: str, folder: Path) -> None:
        self._process = subprocess.Popen(
            [node, "--input-type=module", "-e", CHECKER],
            cwd=folder,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        self._answers: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._answers.put(line)
        self._answers.put("")

    def parse(self, text: str) -> str | None:
        """None when Mermaid accepts the diagram, else its error message."""
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(json.dumps(text) + "\n")
            self._process.stdin.flush()
            line = self._answers.get(timeout=60)
        except (BrokenPipeError, queue.Empty):
            line = ""
        if not line:
            pytest.fail(
                f"the Node process running mermaid.parse gave no answer (exit {self._process.poll()})"
            )
        answer = json.loads(line)
        return None if answer["ok"] else str(answer["error"])

    def close(self) -> None:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.close()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._reader.join(timeout=10)
        self._process.stdout.close()


def install_mermaid(npm: str, folder: Path) -> None:
    npm_install(npm, folder, PACKAGES)


@pytest.fixture(scope="session")
def mermaid_parser() -> Iterator[MermaidParser]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail(
            "Node.js and npm are needed to check diagrams with Mermaid's own parser "
            "(CI has Node 20): install them and run the tests again",
            pytrace=False,
        )
    install_mermaid(npm, NODE_DIR)
    parser = MermaidParser(node, NODE_DIR)
    yield parser
    parser.close()


SAMPLES = {
    "intake": """
        name: sample-intake
        triggers:
          - type: http
            path: /intake
          - type: recurrence
            every: PT5M
          - type: event
            event: case.opened
        actions:
          normalise:
            use: forms.normalise
          dedupe:
            use: cases.dedupe
          each_case:
            foreach: ${actions.normalise.outputs.cases}
            actions:
              load:
                use: smi.load
                if: ${item.ready}
              tell:
                use: teams.notify
                runAfter: {load: [Failed, TimedOut]}
              audit:
                runAfter: {}
                actions:
                  note: {use: cases.note}
          alert:
            use: teams.notify
            if: ${actions.normalise.outputs.bad}
            runAfter: {each_case: [Failed, Skipped]}
          acknowledge:
            use: mail.send
            runAfter: {dedupe: [Succeeded], each_case: [Succeeded, Skipped]}
    """,
    "awkward-names": """
        name: awkward-names
        triggers: [{type: form_response}]
        actions:
          end: {use: graph.subgraph, description: 'named like Mermaid keywords'}
          subgraph:
            if: '${trigger."say \"hi\"" == `"x[1]"` && !contains(trigger.tags, `"#quot;"`)}'
            actions:
              style: {use: click.class}
          never: {use: flow.end, runAfter: {subgraph: [Skipped]}}
    """,
}


def sample(name: str) -> FlowDefinition:
    return FlowDefinition.model_validate(yaml.safe_load(textwrap.dedent(SAMPLES[name])))


DIAGRAMS = [pytest.param(f"sample:{name}", id=f"sample-{name}") for name in SAMPLES] + [
    pytest.param(str(path), id=f"definitions-{path.stem}")
    for path in (sorted(DEFINITIONS.glob("*.yaml")) if DEFINITIONS.is_dir() else [])
]


def diagram(which: str) -> str:
    if which.startswith("sample:"):
        return mermaid(sample(which.removeprefix("sample:")))
    return mermaid(load_flow(Path(which)))


def block(text: str, opening: str) -> list[str]:
    """The lines inside the subgraph opened by ``opening`` (up to its ``end``, by indentation)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(opening))
    indent = lines[start][: len(lines[start]) - len(lines[start].lstrip())]
    end = lines.index(f"{indent}end", start)
    return [line.strip() for line in lines[start + 1 : end]]


def test_the_sample_shows_trigger_actions_subgraphs_and_edges(tmp_path: Path) -> None:
    text = diagram("sample:intake")
    lines = [line.strip() for line in text.splitlines()]
    assert lines[:4] == ["---", "title: sample-intake", "---", "flowchart TD"]
    assert 'trigger(["http /intake<br/>recurrence every PT5M<br/>event case.opened"])' in lines
    assert 'a_normalise["normalise<br/>forms.normalise"]' in lines
    assert "trigger --> a_normalise" in lines  # the first action hangs off the trigger
    assert "a_normalise --> a_dedupe" in lines  # no runAfter: after the one written before
    assert "a_dedupe --> a_each_case" in lines  # an edge into a subgraph
    assert "a_each_case -. if · Failed, Skipped .-> a_alert" in lines
    assert (
        "a_dedupe --> a_acknowledge" in lines
        and "a_each_case -- Succeeded, Skipped --> a_acknowledge" in lines
    )

    each = block(text, "subgraph a_each_case ")
    assert (
        'subgraph a_each_case ["each_case<br/>for each $#123;actions.normalise.outputs.cases#125;"]' in lines
    )
    assert each[:2] == ["direction TB", 's_each_case(("start"))']
    assert 'a_each_case__load["load<br/>smi.load<br/>if $#123;item.ready#125;"]' in each
    assert "s_each_case -. if .-> a_each_case__load" in each  # a conditional action: dashed, labelled
    assert "a_each_case__load -- Failed, TimedOut --> a_each_case__tell" in each
    assert "s_each_case --> a_each_case__audit" in each  # runAfter: {} starts with its scope
    assert block(text, "subgraph a_each_case__audit ")[1:] == [
        's_each_case__audit(("start"))',
        'a_each_case__audit__note["note<br/>cases.note"]',
        "s_each_case__audit --> a_each_case__audit__note",
    ]

    path = tmp_path / "intake.yaml"
    path.write_text(textwrap.dedent(SAMPLES["intake"]), encoding="utf-8")
    assert mermaid(load_flow(path)) == text  # a loaded source draws as its definition does


def test_names_and_labels_are_made_safe() -> None:
    lines = [line.strip() for line in diagram("sample:awkward-names").splitlines()]
    assert 'trigger(["form_response"])' in lines
    assert 'a_end["end<br/>graph.subgraph"]' in lines and "trigger --> a_end" in lines
    title = next(line for line in lines if line.startswith("subgraph a_subgraph "))
    label = title.split(" ", 2)[2]
    assert label.startswith('["subgraph<br/>scope<br/>if $#123;trigger.#quot;say') and label.endswith(
        '#125;"]'
    )
    assert '"' not in label[2:-2] and not {"[", "]", "`", "&"} & set(label[2:-2])
    assert "#35;quot#59;" in label  # a '#' in the flow is not read as the start of a Mermaid entity
    assert "a_subgraph -- Skipped --> a_never" in lines


@pytest.mark.parametrize("which", DIAGRAMS)
def test_diagrams_are_valid_mermaid(which: str, mermaid_parser: MermaidParser) -> None:
    text = diagram(which)
    assert mermaid_parser.parse(text) is None, text


BROKEN: dict[str, Callable[[], str]] = {
    "unclosed subgraph": lambda: diagram("sample:intake").rstrip("\n").rsplit("\n    end", 1)[0],
    "raw reserved word as id": lambda: "flowchart TD\n    trigger --> end\n",
    "unescaped quote in a label": lambda: 'flowchart TD\n    a["say "hi" now"] --> b\n',
    "bracket in a bare label": lambda: "flowchart TD\n    a[items[0]] --> b\n",
}


@pytest.mark.parametrize("name", BROKEN)
def test_the_checker_rejects_broken_diagrams(name: str, mermaid_parser: MermaidParser) -> None:
    error = mermaid_parser.parse(BROKEN[name]())
    assert error is not None and "Parse error" in error, error
