"""``_Sandbox``'s shorter paths answer as Jinja's own immutable sandbox does, and refuse what it refuses."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from jinja2 import DictLoader, StrictUndefined, TemplateError, Undefined
from jinja2.exceptions import SecurityError
from jinja2.runtime import LoopContext
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import htmlsafe_json_dumps

from flows.messages import MessageTemplates, rendering
from tests.test_messages import CARDS, HOSTILE, full_context, make_case, make_entry

PARTIALS = {
    "_macros.j2": "{% macro shout(x) %}{{ x | upper }}!{% endmacro %}{% set plain = 'kept' %}",
}


def environments(**templates: str) -> tuple[ImmutableSandboxedEnvironment, ImmutableSandboxedEnvironment]:
    loader = DictLoader({**PARTIALS, **templates})
    ours = rendering._Sandbox(loader=loader, undefined=StrictUndefined)
    theirs = ImmutableSandboxedEnvironment(loader=loader, undefined=StrictUndefined)
    return ours, theirs


def same_answer(ours: Any, theirs: Any) -> None:
    if isinstance(theirs, Undefined):
        assert type(ours) is type(theirs)
        assert (ours._undefined_name, ours._undefined_obj, ours._undefined_exception) == (
            theirs._undefined_name,
            theirs._undefined_obj,
            theirs._undefined_exception,
        )
    else:
        assert ours == theirs


@pytest.mark.parametrize(
    "name", ["state", "missing", "items", "keys", "get", "update", "__class__", "__dict__", "_x"]
)
def test_the_shorter_dict_lookup_answers_as_the_sandbox_does(name: str) -> None:
    """``_Sandbox.getattr`` skips ``getattr`` for plain dicts; what a template gets must not change."""
    data = {"state": "loaded", "items": "a key named like a dict method", "_x": 1, "__dict__": 2}
    ours = rendering._Sandbox(undefined=StrictUndefined).getattr(data, name)
    theirs = ImmutableSandboxedEnvironment(undefined=StrictUndefined).getattr(data, name)
    same_answer(ours, theirs)


@pytest.mark.parametrize(
    "name",
    [
        *("last", "first", "index", "index0", "revindex", "revindex0", "length", "depth", "depth0"),
        *("cycle", "changed", "nextitem", "missing", "_after", "__class__", "__init__"),
    ],
)
def test_a_loop_attribute_answers_as_the_sandbox_does(name: str) -> None:
    ours, theirs = environments()
    loop_ours = next(iter(LoopContext(iter("abc"), ours.undefined)))[1]
    loop_theirs = next(iter(LoopContext(iter("abc"), theirs.undefined)))[1]
    found_ours, found_theirs = ours.getattr(loop_ours, name), theirs.getattr(loop_theirs, name)
    if callable(found_theirs):  # bound methods of two loops: compare what they are
        assert type(found_ours) is type(found_theirs)
        assert getattr(found_ours, "__name__", None) == getattr(found_theirs, "__name__", None)
    else:
        same_answer(found_ours, found_theirs)


@pytest.mark.parametrize(
    "name", ["rstrip", "upper", "split", "format", "format_map", "missing", "_x", "__class__", "mro"]
)
def test_a_string_attribute_answers_as_the_sandbox_does(name: str) -> None:
    ours, theirs = environments()
    found_ours, found_theirs = ours.getattr("a {0} b", name), theirs.getattr("a {0} b", name)
    if callable(found_theirs):
        assert type(found_ours) is type(found_theirs)
        if name in ("format", "rstrip"):
            assert found_ours("x") == found_theirs("x")
    else:
        same_answer(found_ours, found_theirs)


def test_format_stays_the_sandboxs_safe_formatter() -> None:
    ours, _ = environments(t="{{ '{0.__class__}'.format('x') }}")
    with pytest.raises(SecurityError):
        ours.get_template("t").render()


@pytest.mark.parametrize(
    "source",
    [
        "{% import '_macros.j2' as m %}{{ m.shout('hi') }}",
        "{% import '_macros.j2' as m %}{{ m.plain }}",
        "{% import '_macros.j2' as m %}{{ m.missing is defined }}",
        "{% import '_macros.j2' as m %}{{ m._body_stream is defined }}",
        "{% for x in 'abc' %}{{ loop.index }}{{ x.upper() }}{% if not loop.last %},{% endif %}{% endfor %}",
        "{{ ' a '.strip() }}{{ 'a-b'.split('-') | join('+') }}",
        "{% set ns = namespace(n=0) %}{% for i in range(3) %}{% set ns.n = ns.n + i %}{% endfor %}{{ ns.n }}",
        "{% import '_macros.j2' as m %}{{ m.shout(dict(a=1) | list | first) }}{{ cycler('x').next() }}",
    ],
)
def test_templates_render_the_same_in_both_sandboxes(source: str) -> None:
    ours, theirs = environments(t=source)
    assert ours.get_template("t").render() == theirs.get_template("t").render()


def test_a_templates_own_globals_stay_its_own() -> None:
    ours, _ = environments(a="{{ g }}{{ range(2) | list }}", b="{{ g is defined }}")
    assert ours.get_template("a", globals={"g": "mine"}).render() == "mine[0, 1]"
    assert ours.get_template("b").render() == "False"


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{% import '_macros.j2' as m %}{{ m.shout.__globals__ }}",
        "{% for x in 'a' %}{{ loop.__class__.__init__.__globals__ }}{% endfor %}",
        "{{ [].append(1) }}",
    ],
)
def test_what_the_sandbox_refuses_is_still_refused(source: str) -> None:
    ours, theirs = environments(t=source)
    with pytest.raises(TemplateError) as refused:
        theirs.get_template("t").render()
    with pytest.raises(type(refused.value), match=re.escape(str(refused.value))):
        ours.get_template("t").render()


@pytest.mark.parametrize(
    "value",
    ["plain", "<b>&'\"\\\n\u00e9\u2028\U0001f600", "[Approve](https://x.example)", "", 3, None, ["a<"]],
)
def test_a_card_value_is_the_json_htmlsafe_json_dumps_writes(value: Any) -> None:
    expected = htmlsafe_json_dumps(rendering._without_links(value))
    assert rendering._card_json(value) == expected
    assert json.loads(rendering._card_json(value)) == rendering._without_links(value)


# --- a card's facts: one filter writes what the loop wrote -----------------------------------------

LOOPED_FACTS = (
    '    , {"type": "FactSet", "facts": [\n'
    '{% for title, value in facts if value is not none and value != "" %}\n'
    '      {"title": {{ title | tojson }}, "value": {{ value | string | tojson }}}'
    "{% if not loop.last %},{% endif %}\n"
    "\n"
    "{% endfor %}\n"
    "    ]}\n"
)


@pytest.mark.parametrize("name", CARDS)
@pytest.mark.parametrize("hostile", [False, True], ids=["plain", "hostile"])
def test_every_card_shows_the_facts_the_looping_partial_showed(
    tmp_path: Path, name: str, hostile: bool
) -> None:
    """The packaged ``_facts.json.j2`` against the loop it replaced, given as an operator's override."""
    (tmp_path / "_facts.json.j2").write_text(LOOPED_FACTS, encoding="utf-8")
    text = HOSTILE if hostile else "Corrie [GSME](https://x.example) 2"
    case = make_case(supplier=text, model_name=text, vulnerability_reference=text)
    context = full_context(case, make_entry(model_name=text, s1sp=""), case_url="https://console.example/c/1")

    ours = MessageTemplates().card(name, context, idempotency_key="k").card
    looped = MessageTemplates(tmp_path).card(name, context, idempotency_key="k").card

    assert ours == looped
    assert json.dumps(ours) == json.dumps(looped)  # the same order of keys too


def test_fact_values_are_text_and_empty_ones_are_left_out() -> None:
    facts = [
        ("a", None),
        ("b", ""),
        ("c", 0),
        ("d", False),
        ("e", 1.5),
        ("f", "[x](y)"),
        ("g", " "),
        (7, "h"),
    ]
    ours, _ = environments(t="{{ facts | fact_list | tojson }}")
    ours.filters["fact_list"] = rendering._fact_list
    assert json.loads(ours.get_template("t").render(facts=facts)) == [
        {"title": "c", "value": "0"},
        {"title": "d", "value": "False"},
        {"title": "e", "value": "1.5"},
        {"title": "f", "value": "[x](y)"},
        {"title": "g", "value": " "},
        {"title": 7, "value": "h"},
    ]
