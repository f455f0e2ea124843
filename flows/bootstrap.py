"""The composition root: the one place that builds the bridge from settings, choosing adapters.

The CLI, the Azure triggers and the tests all call ``bootstrap``; nothing else imports concrete
adapters. Overrides swap one part (a clock, a CPL source, an inventory) without patching modules.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from adapters.cpl_source import CplFileOrUrl, Downloading
from adapters.forms import (
    IntakeRejection,
    load_form_definition,
    load_supplier_register,
    notification_from_any,
)
from adapters.secas import ReaderSettings, read_cpl
from flows.domain.case import Case
from flows.domain.cpl import CplPublication
from flows.domain.decisions import Decision, record_decision
from flows.domain.notification import EmergencyNotification
from flows.engine.loader import FlowFileError, load_flows
from flows.engine.registry import ConnectorRegistry
from flows.engine.runner import Engine
from flows.engine.runs import RunRecord
from flows.engine.validation import validate_flow
from flows.errors import BadInput, TransientError
from flows.messages import MessageTemplates
from flows.operations.cases import CaseOperations, RefusedResponse
from flows.operations.events import EventOperations
from flows.operations.inventory import InventoryOperations
from flows.operations.messaging import MessagingOperations
from flows.operations.monitoring import MonitoringOperations
from flows.operations.secas import CplSource, SecasOperations
from flows.ports import CaseStore, ConcurrencyConflict, Inventory, OperatorCard, PublicationStore
from flows.queue_message import NotAResponse, form_response_message
from flows.service import Bridge, KeepsPoison, Message, ReportsPoison
from flows.settings import Settings
from flows.wiring import Parts, build_parts

_log = logging.getLogger(__name__)


@dataclass
class BridgeApp:
    """The built bridge and the parts its callers read directly (tables, outboxes)."""

    settings: Settings
    bridge: Bridge
    registry: ConnectorRegistry
    parts: Parts
    templates: MessageTemplates

    @property
    def cases(self) -> CaseStore:
        return self.parts.cases

    @property
    def publications(self) -> PublicationStore:
        return self.parts.publications

    @property
    def inventory(self) -> Inventory:
        return self.parts.inventory

    def process(self, message: Message) -> None:
        """Handle one queued message as a worker does; locally, also what it causes."""
        upkeep_failed: Exception | None = None
        if message.type == "list_changed":
            if message.body.get("renew_subscription"):  # the upkeep timer's message
                try:
                    self.upkeep()
                except Exception as error:
                    # The delta pass below is the safety net for a subscription that cannot be made
                    # (consent withdrawn, a rotated function key): it runs all the same, and the
                    # failure is raised after it (and after a local drain), so the host retries the
                    # message and finally poisons it, which operators are told of.
                    _log.error("the upkeep failed; the delta pass runs all the same: %s", error)
                    upkeep_failed = error
            changes = self.parts.list_changes
            for item in changes() if changes is not None else ():
                self._submit_list_item(item)
        else:
            self.bridge.handle(message)
        if self.parts.local_queue:
            self.bridge.drain()
        if upkeep_failed is not None:
            raise upkeep_failed

    def decide(self, response_id: str, decision: Decision) -> Case:
        """Record an operator's decision on a case, then queue what follows from it.

        The decision is in the case's timeline (saved, with who and why) before the ``case.decided``
        event is queued, so nothing the operator was told is lost; the event carries only ids. Locally
        the queue is drained at once, so the console shows the outcome on its next page.
        """
        for _ in range(3):  # another worker may save the case between our read and our save
            case = self.cases.get(response_id)
            if case is None:
                raise BadInput(f"no case for response {response_id!r}")
            if not record_decision(case, decision, at=self.bridge.now()):
                break
            try:
                self.cases.save(case)
                break
            except ConcurrencyConflict:
                continue
        else:
            raise TransientError(
                f"case {response_id} kept changing while the decision was recorded; try again"
            )
        # Once per decision: recorded again (a form posted twice, a retry after a crash), it is the same
        # message, whose runs find themselves done.
        body = {"response_id": response_id, "decision_id": decision.decision_id}
        self.bridge.emit("case.decided", body, once_per=f"decision/{decision.decision_id}")
        if self.parts.local_queue:
            self.bridge.drain()
        stored = self.cases.get(response_id)
        assert stored is not None
        return stored

    def _submit_list_item(self, item: Any) -> None:
        """Queue one SharePoint item; one that cannot be (no response id, too big for a queue message)
        is told to operators and passed over. Raised, it failed the whole delta pass before the delta
        link was kept, so every later pass failed on it again and no response after it was queued."""
        try:
            self.bridge.submit(form_response_message(item))
        except (NotAResponse, BadInput, ValueError) as error:  # ValueError: text a queue cannot carry
            item_id = str(item.get("id")) if isinstance(item, dict) else "?"
            _log.error("SharePoint list item %s was not queued: %s", item_id, error)
            reason = hashlib.sha256(str(error).encode()).hexdigest()[:12]
            context = {
                "flow": "form intake",
                "run_id": f"SharePoint list item {item_id}",
                "action": "(queueing the response)",
                "error": f"not queued, and passed over: {error}",
            }
            key = f"list-item/{item_id}/{reason}"
            try:
                self._tell_once(self.templates.card("run_failed", context, idempotency_key=key))
            except Exception as failed:  # the channel down too: the log line above is what is left
                _log.error("telling operators of list item %s failed: %s", item_id, failed)

    def _tell_once(self, card: OperatorCard) -> None:
        """Post a card outside any flow, once per idempotency key even to a channel that keeps no keys
        (the Teams webhook): a retry after the post succeeded finds the key and posts nothing."""
        if self.parts.idempotency.get(card.idempotency_key) is not None:
            return
        self.parts.channel.post(card)
        self.parts.idempotency.put(card.idempotency_key, {"outputs": {"posted": True}})

    def alert_poison(self, what: dict[str, Any]) -> None:
        """Tell operators a message was given up on after the host's retries: once per poisoning
        (``poisoning`` names it), so a retry of the alert posts nothing new, but the same message
        given up on again after an operator put it back does."""
        key = f"poison/{what.get('message_id')}/{what.get('poisoning', '')}"
        # Its own card, not a failed run's: the message id is no run's (``runs show`` found none), and
        # what puts it back is ``poisoned --requeue``, which the card names.
        context = {
            "message_id": what.get("message_id"),
            "message_type": what.get("type"),
            "flow": what.get("flow"),
        }
        self._tell_once(self.templates.card("message_poisoned", context, idempotency_key=key))

    def alert_poisoned(self, what: dict[str, Any], body: bytes) -> None:
        """The poison-queue trigger's work in Azure: keep the message (``body``, as the trigger got it)
        until an operator puts it back, then ``alert_poison``. The host deletes the message from the
        poison queue once this returns, so it is kept first: a message whose runs were never recorded
        (the bridge could not start) would otherwise be lost with its alert.

        When keeping or telling fails (Storage, Teams down), an error log names the message and it is
        put back on the poison queue hidden for ``poison_alert_retry_seconds``: both are tried again
        then (the keeping finds its copy, the alert its key). Raised instead, the failure made the host
        retry the trigger a few times within minutes and then move the message on to
        ``<queue>-poison-poison``, which nothing watches. Raises only if the message cannot be put back
        (the host then retries it, as before).
        """
        queue = self.parts.queue
        delay = self.settings.poison_alert_retry_seconds
        step = "keeping it"
        try:
            if isinstance(queue, KeepsPoison):
                queue.keep_poisoned(body)
            step = "telling operators"
            self.alert_poison(what)
        except Exception as error:
            _log.error(
                "poisoned message %s (type %s, flow %s; poison queue message %s): %s failed: %s: %s. It "
                "is kept in the poison queue, and tried again in %d s",
                what.get("message_id"), what.get("type"), what.get("flow"), what.get("poisoning"), step,
                type(error).__name__, error, delay,
            )  # fmt: skip
            if not isinstance(queue, KeepsPoison):
                raise
            queue.poison_again(body, hidden_for=delay)

    def upkeep(self) -> None:
        """The upkeep timer's work: renew the Graph subscription, and bring back to the poison queue
        what the host moved on to ``<queue>-poison-poison`` (each is then alerted as usual)."""
        if isinstance(self.parts.queue, KeepsPoison):
            moved = self.parts.queue.bring_back_poison_poison()
            if moved:
                _log.error(
                    "%d poisoned message(s) had not been told to operators; moved back to the poison "
                    "queue: %s",
                    len(moved), ", ".join(moved),
                )  # fmt: skip
        if self.parts.renew_subscription is not None:
            self.parts.renew_subscription()

    def close(self) -> None:
        for close in reversed(self.parts.closers):
            close()

    def __enter__(self) -> BridgeApp:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def bootstrap(
    settings: Settings | None = None,
    *,
    clock: Callable[[], datetime] | None = None,
    cpl_source: CplSource | None = None,
    cpl_reader: Callable[[bytes, str], CplPublication] | None = None,
    sleep: Callable[[float], None] | None = None,
    on_progress: Callable[[Message, RunRecord], None] | None = None,
    on_download: Downloading | None = None,
    adjust: Callable[[Parts], None] | None = None,
) -> BridgeApp:
    """Build the bridge from settings: the embedded defaults, or Azure (see ``flows.wiring``)."""
    settings = settings or Settings()
    now = clock or (lambda: datetime.now(UTC))
    form = load_form_definition(settings.form_definition)
    register = load_supplier_register(settings.suppliers)
    reader = ReaderSettings(aliases=settings.cpl_aliases, max_bytes=settings.cpl_max_bytes)
    flows = load_flows(settings.flows_dir)
    parts = build_parts(settings, now)
    try:
        if adjust is not None:
            adjust(parts)  # e.g. tests wrapping ports with a fault injector
        cases, publications = parts.cases, parts.publications

        def parse(payload: Any) -> EmergencyNotification:
            return notification_from_any(payload, form)

        def read(data: bytes, name: str) -> CplPublication:
            return read_cpl(data, name=name, settings=reader)

        def case_url(response_id: str) -> str | None:
            return f"{settings.console_url.rstrip('/')}/cases/{response_id}" if settings.console_url else None

        registry = ConnectorRegistry()
        engine_kwargs: dict[str, Any] = {"clock": now, "settings": settings.flow_settings()}
        if sleep is not None:
            engine_kwargs["sleep"] = sleep
        engine = Engine(registry, parts.runs, parts.idempotency, **engine_kwargs)
        bridge = Bridge(flows, engine, parts.queue, clock=now, on_progress=on_progress)

        case_ops = CaseOperations(cases, publications, register, parse, describe_rejection)
        registry.register("cases.open", case_ops.open, side_effect=True)
        registry.register("cases.candidates", case_ops.candidates, side_effect=False)
        registry.register("cases.assess", case_ops.assess, side_effect=True)
        registry.register("cases.mark_loaded", case_ops.mark_loaded, side_effect=True)
        registry.register("cases.load_failed", case_ops.load_failed, side_effect=True)
        registry.register("cases.decision", case_ops.decision, side_effect=False)
        registry.register("cases.for_entry", case_ops.for_entry, side_effect=False)
        registry.register(
            "cases.closed_loaded_for_entry", case_ops.closed_loaded_for_entry, side_effect=False
        )
        registry.register("cases.move", case_ops.move, side_effect=True)
        registry.register("cases.after_withdrawal", case_ops.after_withdrawal, side_effect=True)
        registry.register("cases.loaded_on_epcl", case_ops.loaded_on_epcl, side_effect=False)
        registry.register("cases.close_on_epcl", case_ops.close_on_epcl, side_effect=True)
        registry.register("cases.note_entry_change", case_ops.note_entry_change, side_effect=True)
        registry.register("cases.escalate_overdue", case_ops.escalate_overdue, side_effect=True)
        smi = InventoryOperations(parts.inventory, cases, publications)
        registry.register("smi.load", smi.load, side_effect=True)
        registry.register("smi.withdraw", smi.withdraw, side_effect=True)
        templates = MessageTemplates(settings.templates_dir)
        messaging = MessagingOperations(templates, parts.mailer, parts.channel, cases, publications, case_url)
        registry.register("mail.send", messaging.send_mail, side_effect=True)
        registry.register("teams.post", messaging.post_card, side_effect=True)
        source = cpl_source or CplFileOrUrl(max_bytes=settings.cpl_max_bytes, on_download=on_download)
        secas = SecasOperations(source, publications, cpl_reader or read, parts.idempotency)
        registry.register("secas.sync", secas.sync, side_effect=True)
        registry.register("events.emit", EventOperations(bridge.emit).emit, side_effect=True)
        monitor = MonitoringOperations(parts.runs)
        registry.register("monitor.sync_health", monitor.sync_health, side_effect=False)
        registry.register("monitor.failed_runs", monitor.failed_runs, side_effect=False)

        problems = [problem for source in flows.values() for problem in validate_flow(source, registry)]
        app = BridgeApp(settings=settings, bridge=bridge, registry=registry, parts=parts, templates=templates)
        if isinstance(parts.queue, ReportsPoison):
            parts.queue.on_poison = app.alert_poison
        if problems:
            raise FlowFileError(problems)
        return app
    except BaseException:  # a bridge that could not be built closes what was opened for it
        for close in reversed(parts.closers):
            close()
        raise


def describe_rejection(error: Exception) -> RefusedResponse:
    """Problems, supplier, responder and party id of a refused response, for its case."""
    if isinstance(error, IntakeRejection):
        problems = [f"{p.field}: {p.reason}" for p in error.problems]
        return RefusedResponse(problems, error.supplier, error.responder, error.party_id)
    return RefusedResponse([str(error)], "", "", "")
