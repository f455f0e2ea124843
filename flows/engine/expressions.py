"""Expressions in flow files: JMESPath inside ``${ ... }``, with a few functions added.

A string that is one ``${ expr }`` evaluates to the expression's value (a list stays a list); a
string with ``${ ... }`` among other text becomes text; anything else is taken literally. The
context an expression sees is ``trigger``, ``actions.<name>.outputs`` / ``.status`` / ``.error`` (the
failure as the run's history keeps it, redacted; null unless the action failed), ``item`` inside a
``foreach``, ``settings`` and ``run``. No ``eval``, no language of our own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import jmespath
from jmespath import functions
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult
from jmespath.visitor import TreeInterpreter

from flows.errors import BadInput

_EXPRESSION = re.compile(r"\$\{(.*?)\}", flags=re.DOTALL)


class ExpressionError(BadInput):
    """An expression that does not parse or cannot be evaluated; names the expression."""


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class _BridgeFunctions(functions.Functions):
    """Functions added to JMESPath. The clock is the run's, so a replay sees the same ``now()``."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        super().__init__()
        self._clock = clock

    @functions.signature()
    def _func_now(self) -> str:
        return self._clock().isoformat()

    @functions.signature({"types": ["string"]}, {"types": ["number"]})
    def _func_add_hours(self, timestamp: str, hours: float) -> str:
        return (_parse_time(timestamp) + timedelta(hours=hours)).isoformat()

    @functions.signature({"types": ["string"]}, {"types": ["number"]})
    def _func_add_minutes(self, timestamp: str, minutes: float) -> str:
        return (_parse_time(timestamp) + timedelta(minutes=minutes)).isoformat()

    @functions.signature({"types": ["string"]}, {"types": ["string"]})
    def _func_hours_between(self, start: str, end: str) -> float:
        return (_parse_time(end) - _parse_time(start)).total_seconds() / 3600

    @functions.signature({"types": []}, {"types": []})
    def _func_coalesce(self, first: Any, second: Any) -> Any:
        return second if first is None else first


@lru_cache(maxsize=1024)
def compile_expression(source: str) -> ParsedResult:
    """Parse once; raise ``ExpressionError`` naming the expression when it is malformed."""
    try:
        return jmespath.compile(source.strip())
    except JMESPathError as error:
        raise ExpressionError(f"malformed expression ${{{source}}}: {error}") from error


def expressions_in(template: Any) -> Iterator[str]:
    """Every ``${ ... }`` source inside a value (strings, lists, mappings), in order."""
    if isinstance(template, str):
        yield from (match.group(1) for match in _EXPRESSION.finditer(template))
    elif isinstance(template, Mapping):
        for value in template.values():
            yield from expressions_in(value)
    elif isinstance(template, list):
        for value in template:
            yield from expressions_in(value)


def referenced_actions(source: str) -> set[str]:
    """Names of actions an expression reads through ``actions.<name>``."""
    names: set[str] = set()
    _collect_action_references(compile_expression(source).parsed, names)
    return names


def pitfalls(source: str) -> list[str]:
    """What a well-formed expression says that its writer cannot have meant. JMESPath's ``!`` binds
    tighter than ``.``: ``!actions.a.outputs.ok`` reads as ``(!actions).a.outputs.ok``, which is null
    whatever ``a`` did, so a condition written with it is never true."""
    found: list[str] = []
    _collect_pitfalls(compile_expression(source).parsed, found)
    return found


def _collect_pitfalls(node: Mapping[str, Any], found: list[str]) -> None:
    children = [child for child in node.get("children", []) if isinstance(child, Mapping)]
    if node.get("type") == "subexpression" and children and children[0].get("type") == "not_expression":
        negated = children[0].get("children", [{}])[0]
        rest = ".".join(name for child in children[1:] for name in _field_chain(child))
        if negated.get("type") == "field":
            path = f"{negated['value']}.{rest}"
            found.append(
                f"'!{path}' negates {negated['value']!r} alone, so it is always null; write '!({path})'"
            )
    for child in children:
        _collect_pitfalls(child, found)


def _collect_action_references(node: Mapping[str, Any], names: set[str]) -> None:
    if node.get("type") == "subexpression":
        chain = _field_chain(node)
        if len(chain) >= 2 and chain[0] == "actions":
            names.add(chain[1])
    for child in node.get("children", []):
        if isinstance(child, Mapping):
            _collect_action_references(child, names)


def _field_chain(node: Mapping[str, Any]) -> list[str]:
    if node.get("type") == "field":
        return [str(node["value"])]
    if node.get("type") == "subexpression":
        return [name for child in node["children"] for name in _field_chain(child)]
    return ["?"]


@lru_cache(maxsize=4096)
def _whole_expression(text: str) -> str | None:
    """The source of the one ``${ ... }`` a template string is, or ``None`` when it is not one: worked
    out once per string (flow files hold a fixed set of them)."""
    stripped = text.strip()
    found = list(_EXPRESSION.finditer(stripped))
    # One match spanning the string: "${a} ${b}" fullmatches the lazy pattern too (as "a} ${b").
    if len(found) == 1 and found[0].span() == (0, len(stripped)):
        return found[0].group(1)
    return None


class Evaluator:
    """Evaluates templates against a context with the run's clock."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self._options = jmespath.Options(custom_functions=_BridgeFunctions(clock))
        # One interpreter for every search (``ParsedResult.search`` builds one per call): it keeps
        # no state between visits, so threads of a ``foreach`` can share it.
        self._interpreter = TreeInterpreter(self._options)

    def evaluate(self, template: Any, context: Mapping[str, Any]) -> Any:
        if isinstance(template, str):
            return self._evaluate_text(template, context)
        # dict first: a flow's templates are plain dicts, and the ``Mapping`` test is an ABC's (slower)
        if isinstance(template, dict | Mapping):
            return {key: self.evaluate(value, context) for key, value in template.items()}
        if isinstance(template, list):
            return [self.evaluate(value, context) for value in template]
        return template

    def _evaluate_text(self, text: str, context: Mapping[str, Any]) -> Any:
        source = _whole_expression(text)
        if source is not None:
            return self._search(source, context)
        if "${" not in text:
            return text
        return _EXPRESSION.sub(lambda match: _as_text(self._search(match.group(1), context)), text)

    def _search(self, source: str, context: Mapping[str, Any]) -> Any:
        try:
            fields = _fields_only(source)
            if fields is not None:
                return _follow(fields, context)
            return self._interpreter.visit(compile_expression(source).parsed, context)
        except JMESPathError as error:
            raise ExpressionError(f"cannot evaluate ${{{source}}}: {error}") from error
        except (ValueError, TypeError, ArithmeticError) as error:
            # From an added function given a value it cannot use (a date that is not ISO 8601, an
            # hour count too big for a date): the action fails, not the engine.
            raise ExpressionError(f"cannot evaluate ${{{source}}}: {error}") from error


@lru_cache(maxsize=4096)
def _fields_only(source: str) -> tuple[str, ...] | None:
    """The names of an expression that is only fields (``actions.load.outputs.state``), or ``None``.
    Most expressions in flow files are such paths: followed directly, they skip the interpreter's
    dispatch at every step."""
    node = compile_expression(source).parsed
    if node["type"] == "field":
        return (node["value"],)
    if node["type"] == "subexpression" and all(child["type"] == "field" for child in node["children"]):
        return tuple(child["value"] for child in node["children"])
    return None


def _follow(fields: tuple[str, ...], value: Any) -> Any:
    """What JMESPath's interpreter gives for a path of fields (``TreeInterpreter.visit_field``): each
    name looked up with ``get``, and null past anything that has no ``get``."""
    for name in fields:
        try:
            value = value.get(name)
        except AttributeError:
            return None
    return value


def _as_text(value: Any) -> str:
    return "" if value is None else str(value)
