"""A flow drawn as an SVG, on the server, from its definition: no script and no front-end build.

Actions are laid out in layers by ``runAfter`` (an action sits one layer below the lowest one it
waits for), the trigger on top; a scope or for-each is one box that lists the actions inside it.
Edges are labelled when they wait for something other than success, and a conditional action is
marked "if". The Mermaid text of ``python -m flows graph`` stays the reviewable form; this is the
picture for the console.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from html import escape

from flows.engine.definition import (
    Action,
    ActionStatus,
    CallAction,
    FlowDefinition,
    ForEachAction,
    ScopeAction,
)
from flows.engine.ordering import effective_run_after, topological_order

BOX_WIDTH, LINE_HEIGHT, GAP_X, GAP_Y, MARGIN = 210, 16, 24, 46, 12
TRIGGER = "(trigger)"


@dataclass(frozen=True)
class _Box:
    name: str
    lines: tuple[str, ...]
    layer: int
    column: int
    conditional: bool

    @property
    def height(self) -> int:
        return 14 + LINE_HEIGHT * len(self.lines)


def flow_svg(flow: FlowDefinition) -> str:
    """The flow's top-level actions as an SVG (``role="img"``, titled for screen readers)."""
    run_after = effective_run_after(flow.actions)
    layer_of: dict[str, int] = {TRIGGER: 0}
    for name in topological_order(run_after):
        waits_for = [dep for dep in run_after[name] if dep in layer_of]
        layer_of[name] = 1 + max((layer_of[dep] for dep in waits_for), default=0)
    columns: dict[int, int] = {}
    boxes: dict[str, _Box] = {}
    trigger_lines = ("trigger", *(_trigger_line(t.type, t.event, t.every) for t in flow.triggers))
    for name, layer in layer_of.items():
        column = columns.get(layer, 0)
        columns[layer] = column + 1
        action = flow.actions.get(name)
        lines = trigger_lines if action is None else _lines(name, action)
        conditional = action is not None and action.condition is not None
        boxes[name] = _Box(name, lines, layer, column, conditional)
    layer_heights = {layer: max(b.height for b in boxes.values() if b.layer == layer) for layer in columns}
    tops, y = {}, MARGIN
    for layer in sorted(layer_heights):
        tops[layer] = y
        y += layer_heights[layer] + GAP_Y
    width = MARGIN * 2 + max(columns.values()) * (BOX_WIDTH + GAP_X) - GAP_X
    height = y - GAP_Y + MARGIN

    def origin(box: _Box) -> tuple[int, int]:
        return MARGIN + box.column * (BOX_WIDTH + GAP_X), tops[box.layer]

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" role="img" aria-labelledby="flow-{escape(flow.name)}-title" class="diagram">',
        f'<title id="flow-{escape(flow.name)}-title">Flow {escape(flow.name)}: '
        f"{len(flow.actions)} actions</title>",
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>',
    ]
    for name, waits in run_after.items():
        target = boxes[name]
        tx, ty = origin(target)
        sources: Mapping[str, list[ActionStatus]] = waits or {TRIGGER: [ActionStatus.SUCCEEDED]}
        for source_name, statuses in sources.items():
            source = boxes.get(source_name)
            if source is None:
                continue
            sx, sy = origin(source)
            x1, y1 = sx + BOX_WIDTH // 2, sy + source.height
            x2, y2 = tx + BOX_WIDTH // 2, ty
            parts.append(
                f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="#555" marker-end="url(#arrow)"/>'
            )
            label = "" if statuses == [ActionStatus.SUCCEEDED] else "/".join(s.value for s in statuses)
            if label:
                parts.append(
                    f'<text x="{(x1 + x2) // 2 + 4}" y="{(y1 + y2) // 2}" class="edge">{escape(label)}</text>'
                )
    for box in boxes.values():
        x, y0 = origin(box)
        kind = "trigger" if box.name == TRIGGER else "conditional" if box.conditional else "action"
        parts.append(
            f'<rect x="{x}" y="{y0}" width="{BOX_WIDTH}" height="{box.height}" rx="6" class="{kind}"/>'
        )
        for index, line in enumerate(box.lines):
            weight = ' font-weight="bold"' if index == 0 else ""
            parts.append(
                f'<text x="{x + 8}" y="{y0 + 18 + index * LINE_HEIGHT}"{weight}>{escape(_fit(line))}</text>'
            )
    parts.append("</svg>")
    return "\n".join(parts)


def _lines(name: str, action: Action) -> tuple[str, ...]:
    head = f"if: {name}" if action.condition is not None else name
    if isinstance(action, CallAction):
        return head, action.use
    if isinstance(action, ForEachAction | ScopeAction):
        kind = "for each" if isinstance(action, ForEachAction) else "scope"
        inner = [f"  {inner_name}" for inner_name in action.actions]
        return head, f"{kind} ({len(action.actions)} actions)", *inner
    return (head,)


def _trigger_line(kind: str, event: str | None, every: object) -> str:
    if kind == "event":
        return f"on event {event}"
    if kind == "recurrence":
        return f"every {every}"
    return f"on {kind.replace('_', ' ')}"


def _fit(text: str, limit: int = 30) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"
