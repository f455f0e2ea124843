"""Operations on cases: open one from a form response, assess it against the CPL, move it on."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, NamedTuple

from flows.domain.addresses import NotAnAddress, addr_spec
from flows.domain.case import NOT_LOADABLE, Case, CaseState, LoadedAs, TimelineEntry
from flows.domain.cpl import CplEntry, CplPublication, DeviceModelCombination
from flows.domain.decisions import DECISION_CAUSES, accepted_differences, find_decision, problems_for_runs
from flows.domain.matching import Outcome, assess, assess_reissue, entry_not_loadable
from flows.domain.notification import EmergencyNotification
from flows.domain.suppliers import SupplierRegister
from flows.engine.registry import ActionContext
from flows.errors import BadInput, TransientError
from flows.ports import CaseStore, ConcurrencyConflict, PublicationStore, StoredPublication

ESCALATED = "escalated: waited past the limit"
LOAD_FAILED = "loading into the SMI failed"
LOAD_REFUSED = "load_refused"  # assess's outcome for a case whose entry the SMI refused (not loaded again)
OPEN_STATES = (CaseState.RECEIVED, CaseState.AWAITING_CPL, CaseState.NEEDS_ATTENTION)

Parser = Callable[[Any], EmergencyNotification]


class RefusedResponse(NamedTuple):
    """What a response that could not be read says of itself, as its rejection shows it: the problems,
    and the supplier, responder and SEC party id it gave (the last only to decide who is answered)."""

    problems: list[str]
    supplier: str
    responder: str
    party_id: str


def case_summary(case: Case) -> dict[str, Any]:
    """What a run's history may keep about a case: no contact details."""
    return {
        "response_id": case.response_id,
        "state": case.state.value,
        "supplier": case.supplier,
        "cpl_entry_id": case.cpl_entry_id,
        "problems": problems_for_runs(case),
    }


class CaseOperations:
    def __init__(
        self,
        cases: CaseStore,
        publications: PublicationStore,
        register: SupplierRegister,
        parse: Parser,
        describe_rejection: Callable[[Exception], RefusedResponse],
    ) -> None:
        self._cases = cases
        self._publications = publications
        self._register = register
        self._parse = parse
        self._describe_rejection = describe_rejection

    def open(self, context: ActionContext, response_id: str, payload: Any) -> dict[str, Any]:
        """Open the case for a form response: received, then rejected if invalid or unauthorised.

        ``created`` says whether *this* action opened the case: it is true again when the same
        action is delivered again after the worker died past the save (its follow-up steps must
        still run, and their own idempotency keys stop any repeat), and false for a case another
        response or an earlier flow version opened.
        """
        existing = self._cases.get(response_id)
        if existing is not None:
            return self._summary(existing, context)
        evidence = {"run": context.run_id, "opened_by": context.idempotency_key}
        try:
            notification = self._parse(payload)
        except BadInput as error:
            problems, supplier, responder, party_id = self._describe_rejection(error)
            case = Case.open(
                response_id,
                at=context.now,
                supplier=self._register.registered_name(supplier),
                evidence=evidence,
            )
            case.responder = self._answerable(responder, supplier, party_id, problems)
            case.move_to(
                CaseState.REJECTED, at=context.now, cause="invalid notification", problems=problems,
                evidence=evidence,
            )  # fmt: skip
        else:
            case = Case.open(
                response_id, at=context.now, supplier=self._register.registered_name(notification.supplier),
                notification=notification, evidence=evidence,
            )  # fmt: skip
            refused = self._register.authorisation_problems(notification)
            if refused:
                case.move_to(
                    CaseState.REJECTED, at=context.now, cause="responder not authorised for the supplier",
                    problems=refused, evidence=evidence,
                )  # fmt: skip
        # A concurrent delivery may have added it first: the stored one wins (read back only then).
        stored = case if self._cases.add(case) else self._cases.get(response_id)
        assert stored is not None
        return self._summary(stored, context)

    def _summary(self, case: Case, context: ActionContext | None = None) -> dict[str, Any]:
        opened_by = case.timeline[0].evidence.get("opened_by") if case.timeline else None
        created = context is not None and opened_by == context.idempotency_key
        return {**case_summary(case), "created": created, "authorised": self._authorised(case)}

    def _authorised(self, case: Case) -> bool:
        """Whether the responder hears back: an acknowledgement, or a rejection naming each problem
        when the responder's domain is registered for the supplier it named or whose party id it gave
        (``SupplierRegister.answers_to``). A stranger is not answered."""
        n = case.notification
        if n is None:
            return bool(case.responder)
        return self._register.answers_to(n.responder_domain, n.supplier, n.supplier_party_id)

    def _answerable(self, responder: str, supplier: str, party_id: str, problems: list[str]) -> str:
        """The responder of a notification that could not be read, when it may be told why (its domain
        registered for the supplier named or the party id given, as a readable one is); else ""."""
        if any(problem.startswith("responder:") for problem in problems):
            return ""
        try:
            addr_spec(responder)  # the outbox could not write to it
        except NotAnAddress:
            return ""
        answered = self._register.answers_to(responder.rpartition("@")[2], supplier, party_id)
        return responder if answered else ""

    def candidates(
        self, context: ActionContext, response_id: str | None = None, entry_id: str | None = None
    ) -> dict[str, Any]:
        """Open cases an event concerns: the one named, or every open case (a new entry may pair)."""
        if response_id is not None:
            case = self._cases.get(response_id)
            ids = [case.response_id] if case is not None and case.state in OPEN_STATES else []
        else:
            ids = [case.response_id for case in self._cases.list(OPEN_STATES)]
        return {"response_ids": ids}

    def assess(self, context: ActionContext, response_id: str) -> dict[str, Any]:
        """Check an open case against the latest CPL and move it to awaiting or needs-attention, or
        close it when its combination is on the EPCL.

        A case that is ready to load stays where it is: ``cases.mark_loaded`` moves it after the load.
        """
        stored = self._publications.latest()
        case = self._require(response_id)
        if case.state not in OPEN_STATES or case.notification is None:
            # Closed by this run already (delivered again after the save): the supplier and operators
            # must still be told.
            closed_here = any(
                step.to_state is CaseState.CLOSED and step.evidence.get("run") == context.run_id
                for step in case.timeline
            )
            outcome = Outcome.ON_EPCL.value if closed_here else "closed"
            return {**case_summary(case), "outcome": outcome, "changed": False}
        publication = stored.publication if stored else CplPublication(source_sha256="", entries=())
        loaded = case.loaded_as()
        assessment = assess(case.notification, publication, loaded=loaded.combination if loaded else None)
        outcome = assessment.outcome
        # An operator accepted exactly these differences: the case goes on as if it agreed.
        accepted = outcome is Outcome.MISMATCH and accepted_differences(case) == assessment.problems()
        if accepted:
            outcome = Outcome.READY
        if outcome is Outcome.READY and _held_by_load_failure(case, assessment.entry):
            # The SMI refused this very entry for good, and nobody re-checked since: loading it again
            # would fail the same way (and tell the operators again), on every publication.
            return {
                **case_summary(case), "outcome": LOAD_REFUSED, "accepted_by_operator": accepted,
                "changed": False, "waiting_again": False, "previous_entry": None,
                "assessment": assessment.model_dump(mode="json"),
            }  # fmt: skip
        evidence = {"run": context.run_id, "publication": publication.source_sha256}
        before = (case.state, list(case.problems))
        target = _target_state(outcome)
        if target is not None and target != case.state:
            if case.cpl_entry_id:
                evidence["was_paired_with"] = case.cpl_entry_id
            if assessment.entry is not None:
                evidence["cpl_entry_id"] = assessment.entry.entry_id
            case.move_to(target, at=context.now, cause=_cause(outcome), evidence=evidence)
        elif outcome is Outcome.NOT_LOADABLE and not entry_not_loadable(case.problems):
            # It needed attention for a difference; now its entry is withdrawn (cancelled, expired), it waits
            # for SECAS instead, and the waiting limit counts from here (``Case.waiting_for_cpl_since``).
            if assessment.entry is not None:
                evidence["cpl_entry_id"] = assessment.entry.entry_id
            case.record(at=context.now, cause=_cause(outcome), evidence=evidence)
        case.problems = assessment.problems()
        case.cpl_entry_id = assessment.entry.entry_id if assessment.entry else None
        changed = (case.state, case.problems) != before
        if changed:
            case = self._save(case)
        # Read from the timeline, not from this call's before and after: a redelivery after the save
        # finds the case already moved, and must still tell the operators.
        moved_back = [
            entry
            for entry in case.timeline
            if (entry.from_state, entry.to_state) == (CaseState.NEEDS_ATTENTION, CaseState.AWAITING_CPL)
            and entry.evidence.get("run") == context.run_id
        ]
        waiting_again = bool(moved_back)
        paired = moved_back[-1].evidence.get("was_paired_with") if moved_back else None
        previous = publication.by_id().get(paired) if isinstance(paired, str) else None
        return {
            **case_summary(case),
            "outcome": outcome.value,
            "accepted_by_operator": accepted,
            "changed": changed,
            # A case an operator was asked about goes back to waiting (its entry moved to the EPCL,
            # or cannot be loaded any more): the operators are told, not left with a stale card.
            "waiting_again": waiting_again,
            "previous_entry": previous.model_dump(mode="json") if previous else None,
            "assessment": assessment.model_dump(mode="json"),
        }

    def decision(self, context: ActionContext, response_id: str, decision_id: str) -> dict[str, Any]:
        """An operator's decision as the case's timeline recorded it (the console or the command
        line recorded it before queuing the event): its kind, for the flow to branch on. Who made it
        and why stay in the timeline, out of the run's history."""
        case = self._require(response_id)
        recorded = find_decision(case, decision_id)
        if recorded is None:
            raise BadInput(f"case {response_id} has no decision {decision_id!r}")
        return {**case_summary(case), "decision": recorded["decision"], "decision_id": decision_id}

    def mark_loaded(
        self,
        context: ActionContext,
        response_id: str,
        entry_id: str,
        combination: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """The case is loaded: its timeline records the combination the load wrote (``smi.load``'s
        ``combination``) and the differences an operator accepted for it, what the case's later
        re-issues and EPCL listings are judged against (``Case.loaded_as``)."""
        case = self._require(response_id)
        if case.state is not CaseState.LOADED:
            evidence: dict[str, Any] = {"run": context.run_id, "cpl_entry_id": entry_id}
            if combination is not None:
                evidence["combination"] = dict(combination)
                evidence["accepted_differences"] = accepted_differences(case) or []
            case.cpl_entry_id = entry_id
            case.move_to(
                CaseState.LOADED, at=context.now, cause="loaded into the SMI", evidence=evidence, problems=[]
            )
            case = self._save(case)
        return case_summary(case)

    def load_failed(
        self,
        context: ActionContext,
        response_id: str,
        entry_id: str,
        error: str,
        entry: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Loading a ready case into the SMI failed for good (a permanent error: retrying cannot help):
        the case needs attention, the failure named, so that it is neither lost nor left 'received'.
        A re-check once the cause is mended loads it; until then, or until the entry (``entry``, as
        the run assessed it) changes, ``cases.assess`` does not have it loaded again. A case loaded
        meanwhile is left as it is. ``failure`` names this failure (entry and error) for the card's key."""
        case = self._require(response_id)
        problem = f"loading CPL entry {entry_id} into the SMI failed: {error}"
        failure = hashlib.sha256(json.dumps([entry_id, error]).encode()).hexdigest()[:16]
        if case.state in OPEN_STATES and case.problems != [problem]:
            evidence = {"run": context.run_id, "cpl_entry_id": entry_id, "error": error}
            if entry is not None:
                evidence["entry"] = _fingerprint(entry)
            cause = LOAD_FAILED
            case.cpl_entry_id = entry_id
            if case.state is CaseState.NEEDS_ATTENTION:
                case.record(at=context.now, cause=cause, evidence=evidence)
                case.problems = [problem]
            else:
                case.move_to(
                    CaseState.NEEDS_ATTENTION,
                    at=context.now,
                    cause=cause,
                    evidence=evidence,
                    problems=[problem],
                )
            case = self._save(case)
        return {**case_summary(case), "error": error, "failure": failure}

    def for_entry(self, context: ActionContext, entry_id: str, states: list[str]) -> dict[str, Any]:
        """Cases paired with a CPL entry, in the given states."""
        wanted = [CaseState(state) for state in states]
        return {"response_ids": [case.response_id for case in self._cases.paired_with(entry_id, wanted)]}

    def closed_loaded_for_entry(self, context: ActionContext, entry_id: str) -> dict[str, Any]:
        """Closed cases paired with a CPL entry (the EPCL entry they closed on) whose combination the
        bridge loaded into the SMI. Closed cases only ever add up: the store finds those of the entry."""
        paired = self._cases.paired_with(entry_id, [CaseState.CLOSED])
        return {"response_ids": [case.response_id for case in paired if case.loaded_from()]}

    def after_withdrawal(self, context: ActionContext, response_id: str, entry_id: str) -> dict[str, Any]:
        """What follows SECAS withdrawing (cancelling, expiring) the entry a case is paired with, as the
        latest publication (the one that withdrew it) shows. ``outcome`` says which:

        ``on_epcl``: the case's combination was loaded and an active EPCL entry lists it (fast-track
        PPCT done, promoted under a new id): the case is closed here, nothing is withdrawn.
        ``followed``: a loaded case's entry re-issued under another id (the same combination, Non-EPCL,
        loadable) showing what was loaded: it follows the new entry and stays loaded.
        ``differs``: such a re-issue that differs otherwise: it needs attention, the SMI keeping the
        combination.
        ``recheck``: a case never loaded (or not loaded now, its entry re-issued): assessed again, as for
        any new entry. Nothing of it is in the SMI and its supplier was never told to start: it waits
        for an entry it may load (SECAS may correct a wrong one), in front of an operator meanwhile.
        ``withdraw``: a loaded case, none of the above: the case, and what it loaded, are withdrawn.
        """
        case = self._require(response_id)
        stored = self._publications.latest()
        withdrawn = stored.publication.by_id().get(entry_id) if stored else None
        notification = case.notification
        if stored is None or withdrawn is None or notification is None:
            return {**case_summary(case), "reissued_as": None, "outcome": "withdraw"}
        publication = stored.publication
        loaded = case.loaded_as()
        # What the case loaded, not the entry as listed now: SECAS may have changed it since.
        combination = loaded.combination if loaded else withdrawn.dmc
        epcl = publication.on_epcl(combination) if case.loaded_from() else None
        if epcl is not None:
            # Closed already by this step delivered again, or by the same publication's EPCL addition:
            # told all the same (the e-mail and card have one key per case, wherever it closes).
            if case.state is not CaseState.CLOSED:
                cause = (
                    f"SECAS withdrew CPL entry {entry_id} ({withdrawn.cpl_status.value}) and lists its "
                    f"combination on the EPCL as {epcl.entry_id}: the device model moved to the EPCL"
                )
                case = self._close_on_epcl(case, context, publication, entry_id, epcl.entry_id, cause)
            result = {"reissued_as": None, "previous_entry_id": entry_id, "epcl_entry_id": epcl.entry_id}
            return {**case_summary(case), **result, "outcome": "on_epcl"}
        as_loaded = withdrawn.model_copy(update=combination._asdict())
        reissue = publication.reissue_of(as_loaded) or publication.reissue_of(withdrawn)
        if reissue is None:
            outcome = "withdraw" if case.loaded_from() else "recheck"
            return {
                **case_summary(case),
                "reissued_as": None,
                "previous_entry_id": entry_id,
                "outcome": outcome,
            }
        result = {"reissued_as": reissue.entry_id, "previous_entry_id": entry_id}
        assessment = assess_reissue(
            notification, withdrawn, reissue, publication,
            loaded=loaded.combination if loaded else None, accepted=loaded.accepted if loaded else (),
        )  # fmt: skip
        shown = {"assessment": assessment.model_dump(mode="json")}
        done = _reissue_step(case, entry_id, reissue.entry_id)
        if done is not None:  # delivered again after the save
            return {**case_summary(case), **result, **shown, "outcome": done.evidence["outcome"]}
        if case.state is not CaseState.LOADED:
            return {**case_summary(case), **result, **shown, "outcome": "recheck"}
        ready = assessment.outcome is Outcome.READY
        evidence: dict[str, Any] = {
            "run": context.run_id, "publication": publication.source_sha256,
            "previous_entry": entry_id, "cpl_entry_id": reissue.entry_id,
            "outcome": "followed" if ready else "differs",
        }  # fmt: skip
        case.cpl_entry_id = reissue.entry_id
        if ready:
            cause = f"SECAS re-issued CPL entry {entry_id} as {reissue.entry_id}: the case follows it"
            if loaded is not None:  # the re-issue lists what was loaded: still what the SMI holds
                evidence["combination"] = loaded.combination._asdict()
                evidence["accepted_differences"] = list(loaded.accepted)
            case.record(at=context.now, cause=cause, evidence=evidence)
        else:
            cause = f"SECAS re-issued CPL entry {entry_id} as {reissue.entry_id}, which differs"
            case.move_to(
                CaseState.NEEDS_ATTENTION, at=context.now, cause=cause, evidence=evidence,
                problems=assessment.problems(),
            )  # fmt: skip
        case = self._save(case)
        return {**case_summary(case), **result, **shown, "outcome": evidence["outcome"]}

    def loaded_on_epcl(self, context: ActionContext, entry_id: str | None = None) -> dict[str, Any]:
        """Loaded cases whose model reached the EPCL (``response_ids``): the combination each loaded
        into the SMI (``Case.loaded_as``) is listed by an active EPCL entry, its entry promoted under
        its own id (``entry_id``) or a new one, the emergency entry still listed or not. A case that
        needs attention after loading (a re-issue of its entry that differs) is one of them too: the
        SMI holds the combination it loaded, and that combination on the EPCL ends the process.

        ``not_loaded``: loaded cases whose entry SECAS changed since the load and whose changed
        combination is on the EPCL (promoted with the change, or listed under a new id). The EPCL
        lists what the bridge never loaded for them, so they stay loaded and the operators are told:
        each with the changes (loaded -> listed) and the publication that made them, which keys the
        changed-entry card so that a change is told once, however many publications list it."""
        stored = self._publications.latest()
        if stored is None:
            return {"response_ids": [], "not_loaded": []}
        ids, not_loaded = [], []
        for case in self._cases.list([CaseState.LOADED, CaseState.NEEDS_ATTENTION]):
            if not _holds_a_load(case):
                continue
            epcl, other = _on_epcl(case, stored.publication, entry_id)
            if epcl is not None:
                ids.append(case.response_id)
            elif other is not None and case.state is CaseState.LOADED:
                # A case needing attention is before an operator with its entry's differences already.
                not_loaded.append(other)
        return {"response_ids": ids, "not_loaded": not_loaded}

    def close_on_epcl(
        self, context: ActionContext, response_id: str, promoted: str | None = None
    ) -> dict[str, Any]:
        """Close a loaded case whose model reached the EPCL (``loaded_on_epcl``): the combination it
        loaded is listed by an active EPCL entry (its own entry, ``promoted``, or another), which the
        case is then paired with (the e-mail and card show it). A case already closed, or no longer
        holding a load (``_holds_a_load``), or whose loaded combination is not on the EPCL, is left as
        it is; ``state`` tells whether it is closed."""
        case = self._require(response_id)
        stored = self._publications.latest()
        if not _holds_a_load(case) or stored is None:
            return case_summary(case)
        publication = stored.publication
        previous = case.cpl_entry_id or ""
        epcl, _ = _on_epcl(case, publication, promoted)
        loaded = case.loaded_as()
        if epcl is None:
            return case_summary(case)
        if case.state is CaseState.NEEDS_ATTENTION and loaded is not None:
            cause = (
                f"SECAS lists the combination loaded from CPL entry {loaded.entry_id} on the EPCL as "
                f"{epcl.entry_id}: the device model moved to the EPCL, and CPL entry {previous} needs no "
                "decision any more"
            )
        elif epcl.entry_id == previous:
            cause = "the device model moved to the EPCL"
        else:
            cause = (
                f"SECAS lists the combination of CPL entry {previous} on the EPCL as {epcl.entry_id}: "
                "the device model moved to the EPCL"
            )
        case = self._close_on_epcl(case, context, publication, previous, epcl.entry_id, cause)
        return case_summary(case)

    def _close_on_epcl(
        self, case: Case, context: ActionContext, publication: CplPublication, previous: str, epcl: str,
        cause: str,
    ) -> Case:  # fmt: skip
        evidence = {
            "run": context.run_id, "publication": publication.source_sha256, "previous_entry": previous,
            "cpl_entry_id": epcl, "outcome": Outcome.ON_EPCL.value,
        }  # fmt: skip
        case.cpl_entry_id = epcl
        case.move_to(CaseState.CLOSED, at=context.now, cause=cause, evidence=evidence, problems=[])
        return self._save(case)

    def note_entry_change(
        self, context: ActionContext, entry_id: str, publication: str, changes: list[dict[str, Any]]
    ) -> dict[str, Any]:
        """Loaded cases paired with an entry whose identifying fields changed: each notes what changed in
        its timeline (once per publication), and is returned for the operators to be told. Nothing is
        withdrawn or loaded: the SMI holds what was loaded, and a person decides what follows.

        A case that loaded the entry as changed is left out: SECAS corrected the entry to what it
        notified, and it loaded then (``_loaded_as_changed``); the SMI holds what SECAS now lists."""
        fields = ", ".join(f"{change['field']} {change['old']!r} -> {change['new']!r}" for change in changes)
        cause = f"SECAS changed CPL entry {entry_id}: {fields}"
        stored = self._publications.get(publication)
        changed = stored.publication.by_id().get(entry_id) if stored else None
        ids = []
        for case in self._cases.paired_with(entry_id, [CaseState.LOADED]):
            if (
                stored is not None
                and changed is not None
                and _loaded_as_changed(case, changed, stored, changes)
            ):
                continue
            noted = any(
                step.cause == cause and step.evidence.get("publication") == publication
                for step in case.timeline
            )
            if not noted:
                evidence = {"run": context.run_id, "publication": publication, "changes": changes}
                case.record(at=context.now, cause=cause, evidence=evidence)
                self._save(case)
            ids.append(case.response_id)
        return {"response_ids": ids}

    def move(self, context: ActionContext, response_id: str, to: str, cause: str) -> dict[str, Any]:
        """Move a case (close on EPCL, withdraw); a case already there is left as it is."""
        case = self._require(response_id)
        target = CaseState(to)
        if case.state is not target:
            case.move_to(target, at=context.now, cause=cause, evidence={"run": context.run_id})
            case = self._save(case)
        return case_summary(case)

    def escalate_overdue(self, context: ActionContext, limit_hours: float) -> dict[str, Any]:
        """Cases waiting for the CPL longer than the limit, each escalated once per wait: a case that
        went back to waiting (after a decision, or an entry that changed) is escalated again.

        A case still ``received`` past the limit was never checked against the CPL (its load ran out
        of retries while the SMI was down, or its event was given up on): it is escalated too, as
        nothing else puts it in front of anyone. So is a case needing attention because its only entry
        may never be loaded (withdrawn, cancelled, expired): no decision can load it, and it waits for
        SECAS to publish one it may load."""
        escalated: list[dict[str, Any]] = []
        limit = timedelta(hours=limit_hours)
        try:
            cutoff = context.now - limit
        except OverflowError:  # a limit reaching before year 1: nothing has waited that long
            return {"escalated": escalated, "limit_hours": limit_hours}
        waiting = [CaseState.RECEIVED, CaseState.AWAITING_CPL, CaseState.NEEDS_ATTENTION]
        # A case waits for the CPL at the earliest since it entered its state (``waiting_for_cpl_since``
        # is never before ``waited_since``): the store finds those that entered it before the cutoff.
        for case in self._cases.entered_before(waiting, cutoff):
            since = case.waiting_for_cpl_since()
            if since is None:
                continue  # it waits for an operator's decision, not for SECAS
            waited = context.now - since
            already = any(entry.cause == ESCALATED and entry.at >= since for entry in case.timeline)
            if waited > limit and not already:
                hours = round(waited.total_seconds() / 3600, 1)
                case.record(
                    at=context.now, cause=ESCALATED, evidence={"run": context.run_id, "hours_waiting": hours}
                )
                self._save(case)
                escalated.append(
                    {
                        "response_id": case.response_id,
                        "hours_waiting": round(waited.total_seconds() / 3600, 1),
                    }
                )
        return {"escalated": escalated, "limit_hours": limit_hours}

    def _require(self, response_id: str) -> Case:
        case = self._cases.get(response_id)
        if case is None:
            raise BadInput(f"no case for response {response_id!r}")
        return case

    def _save(self, case: Case) -> Case:
        try:
            return self._cases.save(case)
        except ConcurrencyConflict as conflict:
            # Another worker saved the case first: a retry re-reads it and decides again.
            raise TransientError(str(conflict)) from conflict


def _holds_a_load(case: Case) -> bool:
    """The SMI holds what the case loaded, for the case's life to end on the EPCL: it is loaded, or it
    needs attention after loading (a re-issue that differs, or its load refused after an acceptance),
    the combination it loaded recorded (``Case.loaded_as``; the entry of one loaded before that was
    recorded is the re-issue, and says nothing of what was loaded)."""
    if case.state is CaseState.LOADED:
        return True
    return case.state is CaseState.NEEDS_ATTENTION and case.loaded_as() is not None


def _on_epcl(
    case: Case, publication: CplPublication, promoted: str | None
) -> tuple[CplEntry | None, dict[str, Any] | None]:
    """The EPCL entry a loaded case closes on: one listing the combination it loaded (its own entry
    when ``promoted`` names it, else the last active EPCL entry listing it). Else, when its entry as
    listed now has another combination than the one loaded and that one is on the EPCL, what the
    operators are told instead (``loaded_on_epcl``'s ``not_loaded``).

    A case loaded before the combination was recorded is judged by its entry as listed now."""
    entry_id = case.cpl_entry_id or ""
    entry = publication.by_id().get(entry_id)
    loaded: LoadedAs | None = case.loaded_as()
    combination = loaded.combination if loaded else entry.dmc if entry else None
    own = promoted is not None and promoted == entry_id
    if own and entry is not None and entry.dmc == combination:
        return entry, None
    epcl = publication.on_epcl(combination) if combination is not None else None
    if epcl is not None:
        return epcl, None
    if entry is None or combination is None or entry.dmc == combination:
        return None, None
    listed = entry if own else publication.on_epcl(entry.dmc)
    if listed is None:
        return None, None
    changes = [
        {"field": field, "old": was, "new": now}
        for field, was, now in zip(DeviceModelCombination._fields, combination, entry.dmc, strict=True)
        if was != now
    ]
    # The publication that changed the entry (its changed-entry card's key), or, when the case has
    # not noted it yet (the change is in this publication, told later in the same sync), this one.
    noted = [
        step.evidence.get("publication")
        for step in case.timeline
        if step.cause.startswith(f"SECAS changed CPL entry {entry_id}:")
    ]
    told_in = noted[-1] if noted and isinstance(noted[-1], str) else publication.source_sha256
    return None, {
        "response_id": case.response_id, "entry_id": entry_id, "epcl_entry_id": listed.entry_id,
        "publication": told_in, "changes": changes,
    }  # fmt: skip


def _fingerprint(entry: Mapping[str, Any]) -> str:
    """A CPL entry as assessed (``CplEntry.model_dump(mode="json")``), in 16 hex digits."""
    return hashlib.sha256(json.dumps(entry, sort_keys=True).encode()).hexdigest()[:16]


def _loaded_as_changed(
    case: Case, entry: CplEntry, stored: StoredPublication, changes: list[dict[str, Any]]
) -> bool:
    """Whether a case loaded ``entry`` as ``stored`` lists it after ``changes``: the combination it
    loaded is the entry's new one, and either a field of the combination changed (so the old listing
    could not have been what it loaded) or it loaded once that publication was kept (an image hash,
    S1SP or reference change leaves the combination as it was). A case loaded before its combination
    was recorded is told, as before."""
    loaded = case.loaded_as()
    if loaded is None or loaded.combination != entry.dmc:
        return False
    combination_changed = any(change.get("field") in DeviceModelCombination._fields for change in changes)
    return combination_changed or (loaded.at is not None and loaded.at >= stored.fetched_at)


def _held_by_load_failure(case: Case, entry: CplEntry | None) -> bool:
    """The case needs attention because the SMI refused to load ``entry`` as it is listed now, and
    nothing has happened since that could change that: no operator's decision (a re-check once the
    cause is mended), no other move of the case."""
    if case.state is not CaseState.NEEDS_ATTENTION or entry is None:
        return False
    for step in reversed(case.timeline):
        if step.cause in DECISION_CAUSES or step.from_state != step.to_state:
            return step.cause == LOAD_FAILED and _refused(step, entry)
        if step.cause == LOAD_FAILED:
            return _refused(step, entry)
    return False


def _refused(step: TimelineEntry, entry: CplEntry) -> bool:
    recorded = (step.evidence.get("cpl_entry_id"), step.evidence.get("entry"))
    return recorded == (entry.entry_id, _fingerprint(entry.model_dump(mode="json")))


def _reissue_step(case: Case, previous: str, reissue: str) -> TimelineEntry | None:
    """The step that made the case follow (or question) a re-issue, when it was made already."""
    for step in reversed(case.timeline):
        if (step.evidence.get("previous_entry"), step.evidence.get("cpl_entry_id")) == (previous, reissue):
            return step
    return None


def _target_state(outcome: Outcome) -> CaseState | None:
    if outcome is Outcome.WAITING:
        return CaseState.AWAITING_CPL
    if outcome in (Outcome.MISMATCH, Outcome.NOT_LOADABLE):
        return CaseState.NEEDS_ATTENTION
    if outcome is Outcome.ON_EPCL:
        return CaseState.CLOSED
    return None


def _cause(outcome: Outcome) -> str:
    return {
        Outcome.WAITING: "no emergency CPL entry pairs with it yet",
        Outcome.MISMATCH: "the CPL entry differs from the notification",
        Outcome.NOT_LOADABLE: NOT_LOADABLE,
        Outcome.READY: "the CPL entry agrees",
        Outcome.ON_EPCL: "the device model combination is on the EPCL: no emergency entry is needed",
    }[outcome]
