"""The expected outcome of each sample response (samples/forms/expected-outcomes.json) as states."""

from __future__ import annotations

FINAL_STATES = {
    "1": "loaded",
    "2": "loaded",
    "3": "loaded",
    "4": "needs_attention",
    "5": "rejected",
    "6": "awaiting_cpl",
    "7": "rejected",
    "8": "closed",
}
STATES_AFTER_FIRST_SYNC = {
    **FINAL_STATES,
    "2": "awaiting_cpl",
    "3": "awaiting_cpl",
    "4": "awaiting_cpl",
    "8": "loaded",
}
LOADED_ENTRIES = {"1": "S1-000316", "2": "S1-000318", "3": "S1-000319", "8": "S1-000317"}
