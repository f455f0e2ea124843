"""Pairing a notification with the emergency CPL entry SECAS published for it, and the verdict.

A case pairs with a ``Non-EPCL`` entry when the SECAS reference agrees, or, without it, when the whole
device model combination (type, manufacturer id, model id, hardware version and firmware version) agrees.
A paired case is then compared field by field; every disagreement is kept with both values so that an
operator sees at a glance what differs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from flows.domain.cpl import NEVER_LOADABLE, CplEntry, CplPublication, DeviceModel, DeviceModelCombination
from flows.domain.identifiers import names_agree
from flows.domain.notification import EmergencyNotification


class Agreement(StrEnum):
    AGREES = "agrees"
    DIFFERS = "differs"
    WARNING = "warning"  # a loosely compared name that differs: shown, never blocks
    NOT_GIVEN = "not given"  # an optional field the supplier left empty
    # The CPL lists another value than the one the case loaded into the SMI (``notified`` holds the
    # value loaded): a case that loaded one combination is not moved to another unseen.
    NOT_AS_LOADED = "not as loaded"


class FieldVerdict(BaseModel):
    """One compared field: what the supplier notified, what SECAS published, and whether they agree."""

    model_config = ConfigDict(frozen=True)

    field: str
    notified: str
    published: str
    agreement: Agreement

    @property
    def blocks_loading(self) -> bool:
        return self.agreement in (Agreement.DIFFERS, Agreement.NOT_AS_LOADED)

    def describe(self) -> str:
        if self.agreement is Agreement.NOT_AS_LOADED:
            return f"{self.field}: loaded into the SMI {self.notified!r}, CPL has {self.published!r}"
        return f"{self.field}: notified {self.notified!r}, CPL has {self.published!r}"


class Outcome(StrEnum):
    WAITING = "waiting"  # no emergency entry pairs with the case yet
    READY = "ready"  # paired, every field agrees: load it
    MISMATCH = "mismatch"  # paired, something differs: a person decides
    NOT_LOADABLE = "not_loadable"  # paired with an entry that is withdrawn, cancelled or expired
    ON_EPCL = "on_epcl"  # no emergency entry pairs, and the notified combination is on the EPCL: done


class Assessment(BaseModel):
    """The result of checking one notification against one CPL publication."""

    model_config = ConfigDict(frozen=True)

    outcome: Outcome
    entry: CplEntry | None = None
    verdicts: tuple[FieldVerdict, ...] = ()

    @property
    def differences(self) -> tuple[FieldVerdict, ...]:
        return tuple(verdict for verdict in self.verdicts if verdict.blocks_loading)

    @property
    def warnings(self) -> tuple[FieldVerdict, ...]:
        return tuple(v for v in self.verdicts if v.agreement is Agreement.WARNING)

    def problems(self) -> list[str]:
        """Readable lines for operators: each difference, then each warning."""
        lines = [verdict.describe() for verdict in self.differences]
        lines += [f"warning: {verdict.describe()}" for verdict in self.warnings]
        if self.outcome is Outcome.NOT_LOADABLE and self.entry is not None:
            lines.insert(0, f"CPL entry {self.entry.entry_id} is {self.entry.cpl_status.value}")
        return lines


_NOT_LOADABLE_LINE = re.compile(
    r"^CPL entry \S+ is (" + "|".join(re.escape(status.value) for status in NEVER_LOADABLE) + r")$"
)


def entry_not_loadable(problems: Iterable[str]) -> bool:
    """Whether a case's problems (``Assessment.problems``) say its paired entry may never be loaded
    (withdrawn, cancelled or expired): no decision can load it, only an entry SECAS publishes."""
    return any(_NOT_LOADABLE_LINE.match(problem) for problem in problems)


def find_pair(notification: EmergencyNotification, publication: CplPublication) -> CplEntry | None:
    """The Non-EPCL entry a notification pairs with, if any.

    An entry pairs by the notified SECAS reference, or else only by the whole combination: an entry
    of the same device model with other firmware and another reference is another emergency (an
    older one, still listed), never this one's, however few fields differ. Among the candidates: the
    notified SECAS reference first; then the notified device type (one SECAS request may cover a GSME
    and an ESME, each its own entry under one reference); then an entry that may be loaded, before the
    notified combination (SECAS corrects an entry by cancelling it and listing another under the same
    reference: the cancelled copy of what was notified would pair a case that could never be loaded,
    where the correction shows an operator what SECAS changed); then the notified combination, the
    notified device model and the notified firmware; then the newest entry (the last in the file).
    """
    candidates = [
        entry
        for entry in publication.emergency_candidates(notification.secas_reference, notification.device_model)
        if _same_reference(notification, entry) or entry.dmc == notification.dmc
    ]
    if not candidates:
        return None

    def rank(entry: CplEntry) -> tuple[bool, bool, bool, bool, bool, bool]:
        return (
            _same_reference(notification, entry),
            entry.device_type == notification.device_type,
            entry.is_loadable,
            entry.dmc == notification.dmc,
            entry.device_model == notification.device_model,
            entry.firmware_version == notification.new_firmware_version,
        )

    best = max(rank(entry) for entry in candidates)
    return [entry for entry in candidates if rank(entry) == best][-1]


def _same_reference(notification: EmergencyNotification, entry: CplEntry) -> bool:
    return bool(entry.secas_reference) and entry.secas_reference == notification.secas_reference


def compare(
    notification: EmergencyNotification, entry: CplEntry, publication: CplPublication
) -> tuple[FieldVerdict, ...]:
    """Every field the rules compare, in the order an operator reads them."""
    predecessors = publication.predecessor_firmware(entry)
    verdicts = [
        _exact("device_type", notification.device_type.value, entry.device_type),
        _exact("manufacturer_id", notification.manufacturer_id, entry.manufacturer_id),
        _exact("model_id", notification.model_id, entry.model_id),
        _exact("hardware_version", notification.hardware_version, entry.hardware_version),
        _exact("firmware_version", notification.new_firmware_version, entry.firmware_version),
        _exact("s1sp", notification.s1sp.value, entry.s1sp),
        _exact("secas_reference", notification.secas_reference, entry.secas_reference),
        _image_hash(notification.image_hash, entry.image_hash),
        FieldVerdict(
            field="current_firmware_version",
            notified=notification.current_firmware_version,
            published=_predecessors_shown(predecessors, entry, publication),
            agreement=Agreement.AGREES
            if notification.current_firmware_version in predecessors
            else Agreement.DIFFERS,
        ),
        _loose("manufacturer_name", notification.manufacturer_name, entry.manufacturer_name),
        _loose("model_name", notification.model_name, entry.model_name),
    ]
    return tuple(verdicts)


def assess(
    notification: EmergencyNotification,
    publication: CplPublication,
    *,
    loaded: DeviceModelCombination | None = None,
) -> Assessment:
    """Check a notification against a publication: waiting, ready, mismatch, not loadable, or on the
    EPCL (no emergency entry that may be loaded pairs, and an active EPCL entry lists the notified
    combination exactly: the supplier may upgrade by the usual route, and the emergency case is over;
    SECAS lists a promoted model under a new id and lets the emergency entry expire).

    ``loaded`` is what the case loaded into the SMI before, if anything (a loaded case whose entry
    was re-issued otherwise): a paired entry listing another combination is a mismatch, each field
    that differs from what was loaded shown, until an operator accepts it.
    """
    entry = find_pair(notification, publication)
    if entry is None or not entry.is_loadable:
        on_epcl = publication.on_epcl(notification.dmc)
        if on_epcl is not None:
            return Assessment(outcome=Outcome.ON_EPCL, entry=on_epcl)
    if entry is None:
        return Assessment(outcome=Outcome.WAITING)
    return assess_entry(notification, entry, publication, loaded=loaded)


def assess_reissue(
    notification: EmergencyNotification,
    replaced: CplEntry,
    reissue: CplEntry,
    publication: CplPublication,
    *,
    loaded: DeviceModelCombination | None,
    accepted: tuple[str, ...] = (),
) -> Assessment:
    """A loaded case's verdict on a re-issue of its entry (``CplPublication.reissue_of``).

    Judged against what the case loaded into the SMI (``loaded``, with the differences from the
    notification ``accepted`` for that load), not against the replaced entry as SECAS lists it now,
    which may have changed since the load: ready when the re-issue lists the combination loaded and
    differs from the notification in nothing but what was accepted for the load. Anything else is a
    mismatch for a person to decide, each field that differs from what was loaded shown.
    A case loaded before the combination was recorded (``loaded`` None) is judged against the
    replaced entry as listed now.
    """
    if loaded is None:
        assessment = assess_entry(notification, reissue, publication)
        before = [v.describe() for v in assess_entry(notification, replaced, publication).differences]
        same = [v.describe() for v in assessment.differences] == before
    else:
        assessment = assess_entry(notification, reissue, publication, loaded=loaded)
        same = {v.describe() for v in assessment.differences} <= set(accepted)
    if assessment.outcome is Outcome.MISMATCH and same:
        return assessment.model_copy(update={"outcome": Outcome.READY})
    return assessment


def assess_entry(
    notification: EmergencyNotification,
    entry: CplEntry,
    publication: CplPublication,
    *,
    loaded: DeviceModelCombination | None = None,
) -> Assessment:
    """The verdict on one entry paired with a notification: ready, mismatch or not loadable; with
    ``loaded``, each field of the entry's combination that is not what was loaded differs too."""
    verdicts = compare(notification, entry, publication)
    if loaded is not None:
        verdicts += not_as_loaded(entry, loaded)
    if not entry.is_loadable:
        outcome = Outcome.NOT_LOADABLE
    elif any(verdict.blocks_loading for verdict in verdicts):
        outcome = Outcome.MISMATCH
    else:
        outcome = Outcome.READY
    return Assessment(outcome=outcome, entry=entry, verdicts=verdicts)


def not_as_loaded(entry: CplEntry, loaded: DeviceModelCombination) -> tuple[FieldVerdict, ...]:
    """Each field of the entry's combination that is not what a case loaded into the SMI."""
    return tuple(
        FieldVerdict(field=field, notified=was, published=now, agreement=Agreement.NOT_AS_LOADED)
        for field, was, now in zip(DeviceModelCombination._fields, loaded, entry.dmc, strict=True)
        if was != now
    )


def _predecessors_shown(firmware: set[str], entry: CplEntry, publication: CplPublication) -> str:
    """The listed predecessors' firmware that counts, then each listed entry of another device model
    with what differs (its firmware does not count)."""
    others = [other for other in publication.predecessors(entry) if other.device_model != entry.device_model]
    none = f"(no listed predecessor{' of this device model' if others else ''} on this CPL)"
    shown = [", ".join(sorted(firmware)) or none]
    for other in others:
        fields = zip(DeviceModel._fields, other.device_model, entry.device_model, strict=True)
        differs = ", ".join(f"{name} {theirs} not {ours}" for name, theirs, ours in fields if theirs != ours)
        shown.append(
            f"{other.entry_id} (firmware {other.firmware_version}) is another device model: {differs}"
        )
    return "; ".join(shown)


def _exact(field: str, notified: str, published: str) -> FieldVerdict:
    agreement = Agreement.AGREES if notified == published else Agreement.DIFFERS
    return FieldVerdict(field=field, notified=notified, published=published, agreement=agreement)


def _loose(field: str, notified: str, published: str) -> FieldVerdict:
    if not notified:
        agreement = Agreement.NOT_GIVEN
    else:
        agreement = Agreement.AGREES if names_agree(notified, published) else Agreement.WARNING
    return FieldVerdict(field=field, notified=notified, published=published, agreement=agreement)


def _image_hash(notified: str | None, published: str) -> FieldVerdict:
    if notified is None:
        return FieldVerdict(
            field="image_hash", notified="", published=published, agreement=Agreement.NOT_GIVEN
        )
    return _exact("image_hash", notified, published)
