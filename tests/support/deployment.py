"""A deployment's own supplier register and form definition: copies of the samples in another folder,
which the Azure backend accepts as not left on the samples (``Settings.stand_ins``)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from flows.settings import SAMPLES


def own_register_and_form(folder: Path) -> dict[str, Any]:
    """``suppliers`` and ``form_definition`` settings naming copies of the samples in ``folder``
    (``Any``: to be spread into ``Settings(...)`` beside other keywords)."""
    folder.mkdir(parents=True, exist_ok=True)
    suppliers = Path(shutil.copy(SAMPLES / "suppliers.json", folder / "suppliers.json"))
    form = Path(shutil.copy(SAMPLES / "forms" / "form-definition.json", folder / "form-definition.json"))
    return {"suppliers": suppliers, "form_definition": form}
