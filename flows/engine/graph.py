"""A flow drawn as a Mermaid flowchart, for reviews and docs: ``mermaid(load_flow(path))``.

The trigger is the first node; each action is a node (its name and ``use``), a scope or a foreach is
a subgraph holding its actions, and edges follow ``runAfter`` with the implicit order filled in. An
edge says the statuses it waits for unless that is just Succeeded; an action with an ``if`` is reached
by dashed edges labelled "if". Node ids are made from action names with a prefix, so a name such as
``end`` (reserved in Mermaid) is safe; labels are quoted with Mermaid's entity codes for the rest.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from pydantic import TypeAdapter

from flows.engine.definition import Action, ActionStatus, CallAction, FlowDefinition, ForEachAction, Trigger
from flows.engine.loader import FlowSource
from flows.engine.ordering import effective_run_after

TRIGGER_ID = "trigger"
_INDENT = "    "
# '#' first: the others are written as '#...;' codes. ';' ends a statement in Mermaid, '`' opens markdown.
_ESCAPES = {
    "#": "#35;",
    "&": "#38;",
    '"': "#quot;",
    "<": "#lt;",
    ">": "#gt;",
    "[": "#91;",
    "]": "#93;",
    "{": "#123;",
    "}": "#125;",
    "(": "#40;",
    ")": "#41;",
    "|": "#124;",
    ";": "#59;",
    "`": "#96;",
}
_DURATION = TypeAdapter(timedelta)


def mermaid(source: FlowSource | FlowDefinition) -> str:
    """Mermaid text (a ``flowchart TD``) for one flow; ends with a newline."""
    flow = source.definition if isinstance(source, FlowSource) else source
    lines = ["---", f"title: {flow.name}", "---", "flowchart TD"]
    triggers = "<br/>".join(_label(_describe(trigger)) for trigger in flow.triggers)
    lines.append(f'{_INDENT}{TRIGGER_ID}(["{triggers}"])')
    lines += _block(flow.actions, (), TRIGGER_ID, depth=1)
    return "\n".join(lines) + "\n"


def node_id(path: tuple[str, ...]) -> str:
    """The Mermaid id of the action at ``path`` (names from the top level down)."""
    return "a_" + "__".join(path)


def _start_id(path: tuple[str, ...]) -> str:
    return "s_" + "__".join(path)


def _block(actions: Mapping[str, Action], path: tuple[str, ...], start: str, depth: int) -> list[str]:
    """Nodes and subgraphs of one block of siblings, then the edges between them."""
    pad = _INDENT * depth
    lines: list[str] = []
    for name, action in actions.items():
        here = (*path, name)
        condition = [f"if {action.condition}"] if action.condition is not None else []
        if isinstance(action, CallAction):
            label = "<br/>".join(_label(part) for part in [name, action.use, *condition])
            lines.append(f'{pad}{node_id(here)}["{label}"]')
            continue
        kind = f"for each {action.foreach}" if isinstance(action, ForEachAction) else "scope"
        title = "<br/>".join(_label(part) for part in [name, kind, *condition])
        lines.append(f'{pad}subgraph {node_id(here)} ["{title}"]')
        lines.append(f"{pad}{_INDENT}direction TB")
        lines.append(f'{pad}{_INDENT}{_start_id(here)}(("start"))')
        lines += _block(action.actions, here, _start_id(here), depth + 1)
        lines.append(f"{pad}end")
    for name, dependencies in effective_run_after(actions).items():
        target = node_id((*path, name))
        conditional = actions[name].condition is not None
        if not dependencies:
            lines.append(f"{pad}{start} {_arrow([ActionStatus.SUCCEEDED], conditional)} {target}")
        for dependency, statuses in dependencies.items():
            if dependency in actions:  # a runAfter naming no sibling is validation's to report
                source = node_id((*path, dependency))
                lines.append(f"{pad}{source} {_arrow(statuses, conditional)} {target}")
    return lines


def _arrow(statuses: list[ActionStatus], conditional: bool) -> str:
    """``-->``, or an arrow labelled with the statuses waited for; dashed when an ``if`` decides."""
    words: list[str] = ["if"] if conditional else []
    if statuses != [ActionStatus.SUCCEEDED]:
        words.append(", ".join(status.value for status in statuses) or "never")
    text = " · ".join(words)
    if conditional:
        return f"-. {text} .->"
    return f"-- {text} -->" if text else "-->"


def _describe(trigger: Trigger) -> str:
    if trigger.type == "event":
        return f"event {trigger.event}"
    if trigger.type == "recurrence" and trigger.every is not None:
        return f"recurrence every {_DURATION.dump_python(trigger.every, mode='json')}"
    if trigger.type == "http" and trigger.path:
        return f"http {trigger.path}"
    return trigger.type


def _label(text: str) -> str:
    """Text made safe inside a quoted Mermaid label: one line, special characters as entity codes."""
    return "".join(_ESCAPES.get(char, char) for char in " ".join(text.split()))
