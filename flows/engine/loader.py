"""Reading flow files: YAML into ``FlowDefinition``, with every error naming the file and line."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from flows.engine.definition import FlowDefinition
from flows.errors import BadInput

Location = tuple[str | int, ...]


class FlowFileError(BadInput):
    """A flow file that cannot be used as it is; ``problems`` holds one line per fault."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class FlowSource:
    """A loaded flow with where it came from, so later checks can point at lines too."""

    path: Path
    definition: FlowDefinition
    lines: dict[Location, int] = field(default_factory=dict)
    text: str = ""

    def where(self, location: Location) -> str:
        """``file:line`` of the nearest known place at or above ``location``."""
        for depth in range(len(location), -1, -1):
            line = self.lines.get(location[:depth])
            if line is not None:
                return f"{self.path}:{line}"
        return str(self.path)


def load_flow(path: Path) -> FlowSource:
    """Parse and validate one flow file; raise ``FlowFileError`` naming file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise FlowFileError([f"{path}: cannot read flow file: {error}"]) from error
    try:
        node, data = _parsed(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or str(error)
        raise FlowFileError([f"{where}: not valid YAML: {problem}"]) from error
    if not isinstance(data, dict):
        raise FlowFileError([f"{path}:1: a flow file is a mapping with name, triggers and actions"])
    problems = list(_shape_problems(node, path)) if node is not None else []
    if problems:
        raise FlowFileError(problems)
    lines = dict(_node_lines(node, ())) if node is not None else {}
    try:
        definition = FlowDefinition.model_validate(data)
    except ValidationError as error:
        source = FlowSource(path=path, definition=_PLACEHOLDER, lines=lines)
        raise FlowFileError(
            [
                f"{source.where(_yaml_location(e['loc']))}: {_place(e['loc'])}: {e['msg']}"
                for e in error.errors()
            ]
        ) from error
    return FlowSource(path=path, definition=definition, lines=lines, text=text)


# libyaml's loader when PyYAML was built with it (its wheels are): the pure-Python one made reading
# the flows most of a worker's start-up.
_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parsed(text: str) -> tuple[yaml.Node | None, Any]:
    """The document's node tree (for line numbers) and its data, from one parse. Anchors and aliases
    are refused before the data is built: a few hundred bytes of nested aliases ("billion laughs")
    name more nodes than memory holds once walked."""
    loader = _LOADER(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            _refuse_aliases(node)
        return node, None if node is None else loader.construct_document(node)
    finally:
        loader.dispose()


def _refuse_aliases(root: yaml.Node) -> None:
    """An alias is a node met twice in the tree; raise a ``YAMLError`` marking where."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            raise yaml.MarkedYAMLError(
                problem="anchors and aliases are not allowed in flow files (write each value out)",
                problem_mark=node.start_mark,
            )
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            stack += [part for pair in node.value for part in pair]
        elif isinstance(node, yaml.SequenceNode):
            stack += node.value


def _shape_problems(root: yaml.Node, path: Path) -> Iterator[str]:
    """Keys written twice in one mapping: YAML keeps the last silently, so an action would vanish."""
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, yaml.MappingNode):
            first: dict[str, int] = {}
            for key, value in node.value:
                name, line = str(key.value), key.start_mark.line + 1
                if name in first:
                    yield f"{path}:{line}: {name!r} is written twice in one mapping (also line {first[name]})"
                first.setdefault(name, line)
                stack.append(value)
        elif isinstance(node, yaml.SequenceNode):
            stack += node.value


_PLACEHOLDER = FlowDefinition.model_construct(name="", triggers=[], actions={})


def load_flows(folder: Path) -> dict[str, FlowSource]:
    """Every ``*.yaml`` flow in a folder, by flow name; all faults reported together."""
    sources: dict[str, FlowSource] = {}
    problems: list[str] = []
    paths = sorted(folder.glob("*.yaml"))
    if not paths:
        # Without flows every message would be taken off the queue and acknowledged, doing nothing.
        raise FlowFileError([f"{folder}: no flow files (*.yaml) here: check BRIDGE_FLOWS_DIR"])
    for path in paths:
        try:
            source = load_flow(path)
        except FlowFileError as error:
            problems += error.problems
            continue
        name = source.definition.name
        if name in sources:
            problems.append(f"{path}: flow name {name!r} is also used by {sources[name].path}")
        sources[name] = source
    if problems:
        raise FlowFileError(problems)
    return sources


def _node_lines(node: yaml.Node, location: Location) -> Iterator[tuple[Location, int]]:
    yield location, node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*location, str(key.value))
            yield child, key.start_mark.line + 1
            yield from ((loc, line) for loc, line in _node_lines(value, child) if loc != child)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _node_lines(item, (*location, index))


def _yaml_location(loc: tuple[Any, ...]) -> Location:
    """Pydantic's error location without its union tags ('call', 'scope', ...)."""
    return tuple(part for part in loc if part not in {"call", "scope", "foreach"})


def _place(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in _yaml_location(loc)) or "(top)"
