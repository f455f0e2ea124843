"""The order actions run in: ``runAfter`` made explicit, and what lies upstream of what.

An action that does not say ``runAfter`` runs after the action written before it (Succeeded), as a
person reading the file expects; ``runAfter: {}`` starts it with its scope. Cycles are reported.
"""

from __future__ import annotations

from collections.abc import Mapping

from flows.engine.definition import Action, ActionStatus, RunAfter


def effective_run_after(actions: Mapping[str, Action]) -> dict[str, RunAfter]:
    """Each sibling's ``runAfter``, with the implicit 'after the previous one' filled in."""
    result: dict[str, RunAfter] = {}
    previous: str | None = None
    for name, action in actions.items():
        if "run_after" in action.model_fields_set or previous is None:
            result[name] = dict(action.run_after)
        else:
            result[name] = {previous: [ActionStatus.SUCCEEDED]}
        previous = name
    return result


def find_cycle(run_after: Mapping[str, RunAfter]) -> list[str] | None:
    """A list of action names forming a cycle, if there is one (first found)."""
    visiting: list[str] = []
    done: set[str] = set()

    def visit(name: str) -> list[str] | None:
        if name in visiting:
            return [*visiting[visiting.index(name) :], name]
        if name in done or name not in run_after:
            return None
        visiting.append(name)
        for dependency in run_after[name]:
            cycle = visit(dependency)
            if cycle:
                return cycle
        visiting.pop()
        done.add(name)
        return None

    for name in run_after:
        cycle = visit(name)
        if cycle:
            return cycle
    return None


def upstream(name: str, run_after: Mapping[str, RunAfter]) -> set[str]:
    """Siblings that always end before ``name`` starts (transitively through ``runAfter``)."""
    seen: set[str] = set()
    stack = list(run_after.get(name, {}))
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        stack.extend(run_after.get(current, {}))
    return seen


def topological_order(run_after: Mapping[str, RunAfter]) -> list[str]:
    """Siblings in an order that respects ``runAfter``, ties kept in file order. Assumes no cycle."""
    order: list[str] = []
    placed: set[str] = set()
    while len(order) < len(run_after):
        for name, dependencies in run_after.items():
            if name not in placed and all(d in placed or d not in run_after for d in dependencies):
                order.append(name)
                placed.add(name)
                break
        else:  # pragma: no cover - callers validate against cycles first
            raise ValueError("runAfter has a cycle")
    return order
