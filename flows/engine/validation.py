"""Checks a flow beyond its schema: connectors exist, ``runAfter`` is sound, expressions parse and
read only what earlier actions produce. Every problem names the file, the line and the action."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from flows.engine.definition import Action, CallAction, ForEachAction
from flows.engine.expressions import ExpressionError, expressions_in, pitfalls, referenced_actions
from flows.engine.loader import FlowSource, Location
from flows.engine.ordering import effective_run_after, find_cycle, upstream
from flows.engine.registry import ConnectorRegistry


def validate_flow(source: FlowSource, registry: ConnectorRegistry) -> list[str]:
    """All problems found in one loaded flow; an empty list means it may run."""
    problems: list[str] = []
    flow = source.definition
    first_use: dict[str, Location] = {}
    for name, location in _action_locations(flow.actions, ("actions",)):
        if name in first_use:
            problems.append(
                f"{source.where(location)}: action name {name!r} is used more than once "
                f"(first at {source.where(first_use[name])})"
            )
        first_use.setdefault(name, location)
    if flow.key is not None:
        problems += _expression_problems(source, ("key",), "key", flow.key, allowed=set())
    problems += _check_block(source, flow.actions, ("actions",), registry, visible=set())
    return problems


def _action_locations(actions: Mapping[str, Action], location: Location) -> Iterator[tuple[str, Location]]:
    for name, action in actions.items():
        yield name, (*location, name)
        if not isinstance(action, CallAction):
            yield from _action_locations(action.actions, (*location, name, "actions"))


def _all_action_names(actions: Mapping[str, Action]) -> Iterator[str]:
    for name, action in actions.items():
        yield name
        if not isinstance(action, CallAction):
            yield from _all_action_names(action.actions)


def _descendants(actions: Mapping[str, Action], names: set[str]) -> set[str]:
    found: set[str] = set()
    for name in names:
        action = actions.get(name)
        if action is not None and not isinstance(action, CallAction):
            found |= set(_all_action_names(action.actions))
    return found


def _check_block(
    source: FlowSource,
    actions: Mapping[str, Action],
    location: Location,
    registry: ConnectorRegistry,
    visible: set[str],
) -> list[str]:
    problems: list[str] = []
    run_after = effective_run_after(actions)
    for name, dependencies in run_after.items():
        for dependency in dependencies:
            if dependency not in actions:
                where = source.where((*location, name, "runAfter", dependency))
                problems.append(f"{where}: action {name!r} runs after {dependency!r}, which is not beside it")
    cycle = find_cycle(run_after)
    if cycle:
        where = source.where((*location, cycle[0]))
        problems.append(f"{where}: runAfter has a cycle: {' -> '.join(cycle)}")
        return problems
    for name, action in actions.items():
        before = upstream(name, run_after)
        allowed = visible | before | _descendants(actions, before)
        place = (*location, name)
        if isinstance(action, CallAction) and action.use not in registry:
            problems.append(
                f"{source.where((*place, 'use'))}: action {name!r} uses unknown connector {action.use!r}"
            )
        for field, template in _templates(action):
            problems += _expression_problems(source, (*place, field), name, template, allowed)
        if not isinstance(action, CallAction):
            problems += _check_block(source, action.actions, (*place, "actions"), registry, allowed)
    return problems


def _templates(action: Action) -> Iterator[tuple[str, Any]]:
    if action.condition is not None:
        yield "if", action.condition
    if isinstance(action, CallAction):
        yield "inputs", action.inputs
        if action.idempotency_key is not None:
            yield "idempotencyKey", action.idempotency_key
    if isinstance(action, ForEachAction):
        yield "foreach", action.foreach
        if action.item_key is not None:
            yield "itemKey", action.item_key


def _expression_problems(
    source: FlowSource, location: Location, action: str, template: Any, allowed: set[str]
) -> list[str]:
    problems: list[str] = []
    for expression in expressions_in(template):
        where = source.where(location)
        try:
            references = referenced_actions(expression)
        except ExpressionError as error:
            problems.append(f"{where}: in {action!r}: {error}")
            continue
        problems += [
            f"{where}: in {action!r}: ${{{expression}}}: {pitfall}" for pitfall in pitfalls(expression)
        ]
        for missing in sorted(references - allowed):
            problems.append(
                f"{where}: {action!r} reads actions.{missing}, which no earlier action produces "
                f"(add it to runAfter, or check the name)"
            )
    return problems
