"""Hypothesis profiles for the property tests, chosen by the ``HYPOTHESIS_PROFILE`` environment variable.

- ``ci`` (the default): enough examples to catch a regression, the whole of ``test_properties`` in a
  few seconds on two cores;
- ``deep``: many more examples, for a run by hand after touching the domain
  (``HYPOTHESIS_PROFILE=deep .venv/bin/pytest tests/test_properties.py``).

No deadline in either: a slow example on a loaded CI machine is not a failure of the property. Importing
this module registers the profiles and loads the chosen one.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILE_VARIABLE = "HYPOTHESIS_PROFILE"
DEFAULT_PROFILE = "ci"

settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "deep",
    max_examples=2_000,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get(PROFILE_VARIABLE, DEFAULT_PROFILE))


def examples(fraction: float = 1.0) -> int:
    """A share of the loaded profile's ``max_examples``, for properties whose examples cost more."""
    return max(10, round(settings().max_examples * fraction))
