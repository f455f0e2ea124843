"""Supplier e-mails and operator Adaptive Cards, rendered from sandboxed Jinja2 templates.

Templates live in ``templates/`` next to this module; a configured folder is searched first, so that a
deployment can override any single template (or partial) without copying the rest. Every template runs
in Jinja's immutable sandbox with ``StrictUndefined``: a template that names a value the context lacks,
or reaches for ``__class__`` and friends, fails with a ``TemplateProblem`` naming template and line.

Escaping follows the output: ``.html.j2`` escapes HTML, subjects and ``.txt.j2`` bodies are plain text,
and in ``.card.json.j2`` every ``{{ expression }}`` is written as a JSON value (strings quoted, with
quotes, backslashes, new lines and ``<``/``>``/``&`` escaped), so free text can neither break the JSON
nor add card elements. ``| tojson`` says the same thing explicitly; only ``Markup`` passes unchanged.
Teams renders Markdown in a card's TextBlock and FactSet texts, so card values also have Markdown's
inline link syntax broken (a zero-width space between ``]`` and ``(``): a supplier's model name
``[Approve](https://...)`` shows as that text, not as a link to somewhere else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from datetime import UTC, date, datetime
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Any, Literal

from jinja2 import (
    BaseLoader,
    ChoiceLoader,
    FileSystemLoader,
    StrictUndefined,
    TemplateError,
    TemplateNotFound,
    TemplateSyntaxError,
    Undefined,
    select_autoescape,
)
from jinja2.environment import TemplateModule
from jinja2.exceptions import SecurityError
from jinja2.runtime import LoopContext, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import htmlsafe_json_dumps
from markupsafe import Markup, soft_str
from pydantic import BaseModel

from flows.errors import BadInput
from flows.ports import OperatorCard, OutgoingEmail

DEFAULT_FOLDER = Path(__file__).parent / "templates"
EMAIL_PARTS = (".subject.j2", ".txt.j2", ".html.j2")
CARD_SUFFIX = ".card.json.j2"
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_LINK_JOIN = "]("  # where Markdown's [text](url) joins its text to its target

FIELD_LABELS = {  # compared fields whose label is not their name, spaced and capitalised
    "manufacturer_id": "Manufacturer identifier",
    "model_id": "Model identifier",
    "current_firmware_version": "Current firmware (listed predecessor)",
    "s1sp": "SMETS1 Service Provider",
    "secas_reference": "SECAS reference",
    "image_hash": "Manufacturer image hash",
}


class TemplateProblem(BadInput):
    """A template that is missing, malformed, unsafe, or names a value its context does not hold."""


class MessageTemplates:
    """Renders the bridge's messages; ``folder`` (optional) overrides the packaged templates."""

    def __init__(self, folder: Path | None = None) -> None:
        loaders: list[BaseLoader] = [FileSystemLoader(DEFAULT_FOLDER)]
        if folder is not None:
            if not folder.is_dir():
                raise TemplateProblem(f"template folder {folder} does not exist")
            loaders.insert(0, FileSystemLoader(folder))
        loader = ChoiceLoader(loaders)
        self._text = _environment(loader, autoescape=select_autoescape(("html.j2", "htm.j2", "xml.j2")))
        self._card = _environment(loader, autoescape=False, finalize=_json_value)
        self._card.filters["tojson"] = _card_json

    def email(
        self, name: str, context: Mapping[str, Any], *, to: Sequence[str], idempotency_key: str
    ) -> OutgoingEmail:
        """Render ``<name>.subject.j2`` (one line), ``<name>.txt.j2`` and ``<name>.html.j2``."""
        values = _plain(context)
        subject = " ".join(self._render(self._text, _checked(name) + ".subject.j2", values).split())
        if not subject:
            raise TemplateProblem(f"template {name}.subject.j2 rendered an empty subject")
        recipients = (to,) if isinstance(to, str) else tuple(to)
        if not recipients:
            raise BadInput(f"e-mail {name!r} ({idempotency_key}) has no recipient")
        return OutgoingEmail(
            to=recipients,
            subject=subject,
            text_body=self._render(self._text, name + ".txt.j2", values),
            html_body=self._render(self._text, name + ".html.j2", values),
            idempotency_key=idempotency_key,
        )

    def card(self, name: str, context: Mapping[str, Any], *, idempotency_key: str) -> OperatorCard:
        """Render ``<name>.card.json.j2`` and check that it is an Adaptive Card."""
        template = _checked(name) + CARD_SUFFIX
        text = self._render(self._card, template, _plain(context))
        try:
            card = json.loads(text)
        except json.JSONDecodeError as error:
            raise TemplateProblem(f"template {template} did not render valid JSON: {error}") from error
        if not isinstance(card, dict) or card.get("type") != "AdaptiveCard":
            raise TemplateProblem(f"template {template} did not render an object of type AdaptiveCard")
        if not isinstance(card.get("version"), str) or not isinstance(card.get("body"), list):
            raise TemplateProblem(f"template {template} rendered a card without a version or a body list")
        return OperatorCard(card=card, idempotency_key=idempotency_key)

    def names(self, kind: Literal["email", "card"] | None = None) -> list[str]:
        """The messages that can be rendered (e-mails with all three parts, and cards), sorted."""
        files = set(self._text.list_templates())
        emails = {file.removesuffix(".subject.j2") for file in files if file.endswith(".subject.j2")}
        emails = {name for name in emails if all(name + part in files for part in EMAIL_PARTS)}
        cards = {file.removesuffix(CARD_SUFFIX) for file in files if file.endswith(CARD_SUFFIX)}
        chosen = emails if kind == "email" else cards if kind == "card" else emails | cards
        return sorted(name for name in chosen if _NAME.fullmatch(name))

    @staticmethod
    def _render(environment: ImmutableSandboxedEnvironment, template_name: str, values: Any) -> str:
        try:
            return environment.get_template(template_name).render(values)
        except TemplateNotFound as error:
            raise TemplateProblem(f"template {template_name} not found (missing: {error.name})") from error
        except TemplateSyntaxError as error:
            inner = "" if error.name in (None, template_name) else f" (in {error.name})"
            where = f"{template_name}{inner}, line {error.lineno}"
            raise TemplateProblem(f"template {where}: {error.message}") from error
        except SecurityError as error:
            raise TemplateProblem(f"template {_where(error, template_name)}: unsafe: {error}") from error
        except (TemplateError, TypeError, ValueError) as error:
            raise TemplateProblem(f"template {_where(error, template_name)}: {error}") from error


_DICT_ATTRIBUTES = frozenset(dir(dict))
# Names the sandbox answers without a check that could fail (see ``_Sandbox.getattr``): a loop's
# numbers and flags, and a ``str``'s public methods but ``format`` and ``format_map``, which the
# sandbox wraps in its own safe formatter.
_LOOP_NUMBERS = frozenset(
    ("index", "index0", "revindex", "revindex0", "first", "last", "length", "depth", "depth0")
)
_STR_METHODS = frozenset(name for name in dir(str) if not name.startswith("_")) - {"format", "format_map"}
_PLAIN_ATTRIBUTES: dict[type, frozenset[str]] = {LoopContext: _LOOP_NUMBERS, str: _STR_METHODS}


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, with shorter ways to ``value.name`` where its checks cannot refuse.

    Templates see JSON-shaped data (pydantic dumps), so nearly every ``case.state`` is a dict lookup.
    The sandbox tries ``getattr`` first and only then the item, paying for an ``AttributeError`` each
    time. For a plain ``dict`` and a name that is not one of ``dict``'s attributes, ``getattr`` cannot
    succeed (a ``dict`` has no instance attributes), so going straight to the item gives the same
    result.

    The sandbox's check of an attribute it found is that the name is not private (``_``), not internal
    to functions, types, frames or generators, and does not mutate a list, dict, set or deque; then it
    wraps ``str.format``. Each card's ``loop.last``, each macro an e-mail imports (``show.notified``)
    and a ``text.rstrip`` paid for all of it, the mutability test through ``isinstance`` against four
    abstract classes. For a ``LoopContext`` (Jinja's own loop variable) with one of its numbers, a plain
    ``str`` with a public method other than ``format``/``format_map``, and a macro of an imported
    template (a ``TemplateModule``'s public attribute holding a ``Macro``), every check passes, so the
    value is returned at once. Every other case, private names, dunders, ``format`` and all other types
    included, takes the sandbox's own path with all its checks; calls still go through the sandbox's
    ``call`` either way.
    """

    def getattr(self, obj: Any, attribute: str) -> Any:
        kind = type(obj)
        if kind is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        plain = _PLAIN_ATTRIBUTES.get(kind)
        if plain is not None and attribute in plain:
            try:
                return getattr(obj, attribute)
            except AttributeError:
                pass  # the sandbox's own path then names what is missing
        elif kind is TemplateModule and not attribute.startswith("_"):
            value = getattr(obj, attribute, None)
            if type(value) is Macro:
                return value
        return super().getattr(obj, attribute)

    def make_globals(self, d: MutableMapping[str, Any] | None) -> MutableMapping[str, Any]:
        """A template's globals as one plain dict, the environment's overlaid with the template's own.

        Jinja's ``ChainMap`` would show later changes to the environment's globals, which these never
        get (``_environment`` sets filters, not globals); but every context made copies it into a dict
        and a set through ``ChainMap``'s Python-level iteration: two thirds of rendering a template
        that writes only text, and ten contexts a case.
        """
        return {**self.globals, **(d or {})}


def _environment(loader: BaseLoader, **options: Any) -> ImmutableSandboxedEnvironment:
    # auto_reload=False: a template is read and compiled once per process. With reloading on, every
    # render (and each template it extends, imports or includes) checked the file's time on disk:
    # about a tenth of a message's cost. A changed template folder takes effect at the next start,
    # as any other setting does.
    # cache_size=-1: a plain dict of compiled templates, not an LRU behind a lock; a folder holds a few
    # dozen templates, and every render (and each template it extends, imports or includes) looks
    # one up.
    environment = _Sandbox(
        loader=loader,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
        cache_size=-1,
        **options,
    )
    environment.filters.update(when=_when, day=_day, label=_label, hours=_hours, fact_list=_fact_list)
    return environment


def _checked(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise TemplateProblem(f"not a message name: {name!r} (lower case letters, digits and _)")
    return name


def _plain(context: Mapping[str, Any]) -> dict[str, Any]:
    """The context with pydantic models dumped as JSON-ready data, as the templates expect."""
    return {
        key: value.model_dump(mode="json") if isinstance(value, BaseModel) else value
        for key, value in context.items()
    }


def _json_value(value: Any) -> Markup:
    """The card environment's finalize: every ``{{ }}`` output becomes a JSON value."""
    if isinstance(value, Markup):
        return value
    if isinstance(value, Undefined):
        str(value)  # StrictUndefined raises here, naming the missing value
    return _card_json(value)


def _card_json(value: Any) -> Markup:
    """A value as JSON for a card, with Markdown links in its texts broken (see the module's docstring)."""
    if type(value) is str:
        # Nearly every card value is a string (two dozen a card), and ``json.dumps`` writes a string
        # as its C escaper does: calling the escaper directly spares the encoder's set-up each time.
        return htmlsafe_json_dumps(_without_links(value), dumps=encode_basestring_ascii)
    return htmlsafe_json_dumps(_without_links(value))


def _without_links(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace(_LINK_JOIN, "]\u200b(")
    if type(value) is dict or isinstance(value, Mapping):  # a dict spares the abstract class's check
        return {key: _without_links(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_without_links(item) for item in value]
    return value


def _where(error: BaseException, template_name: str) -> str:
    """Where a rendering error happened: the innermost template frame in its traceback, with its line."""
    where = template_name
    trace = error.__traceback__
    while trace is not None:
        filename = trace.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            name = Path(filename).name
            inner = "" if name == template_name else f" (in {name})"
            where = f"{template_name}{inner}, line {trace.tb_lineno}"
        trace = trace.tb_next
    return where


def _parsed(value: object) -> datetime | date | None:
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value) if "T" in value else date.fromisoformat(value)
        except ValueError:
            return None
    return None


def _when(value: object) -> str:
    """``2026-11-19T10:02:11Z`` as ``19 November 2026, 10:02 UTC``; anything else as given."""
    moment = _parsed(value)
    if not isinstance(moment, datetime):
        return _day(value)
    if moment.tzinfo is None:
        return f"{moment.day} {moment:%B %Y, %H:%M}"
    moment = moment.astimezone(UTC)
    return f"{moment.day} {moment:%B %Y, %H:%M} UTC"


def _day(value: object) -> str:
    """``2026-11-30`` as ``30 November 2026``; anything else as given, ``None`` as empty."""
    moment = _parsed(value)
    if moment is None:
        return "" if value is None else str(value)
    return f"{moment.day} {moment:%B %Y}"


def _label(field: str) -> str:
    return FIELD_LABELS.get(field, field.replace("_", " ").capitalize())


def _fact_list(facts: Iterable[tuple[Any, Any]]) -> list[dict[str, Any]]:
    """(title, value) pairs as Adaptive Card facts, each value as text; a value null or empty is left out."""
    return [
        {"title": title, "value": soft_str(value)}
        for title, value in facts
        if value is not None and value != ""
    ]


def _hours(value: float) -> str:
    """Hours for people: ``50.0`` as ``50``, ``50.25`` as ``50.3``."""
    return f"{round(float(value), 1):g}"
