"""Intake of supplier notifications from Microsoft Forms (via Power Automate or a SharePoint list).

``load_form_definition`` and ``load_supplier_register`` read the reference files;
``notification_from_response`` / ``notification_from_list_item`` / ``notification_from_any`` map a
response onto the canonical ``EmergencyNotification``; ``authorise`` checks the responder may notify for
the supplier. Everything refused is a ``BadInput``: ``IntakeRejection`` names each field and why.
"""

from adapters.forms.definition import (
    FormDefinition,
    FormQuestion,
    ReferenceFileError,
    load_form_definition,
    load_supplier_register,
)
from adapters.forms.intake import (
    FieldProblem,
    IntakeRejection,
    UnrecognisedPayload,
    authorise,
    notification_from_any,
    notification_from_list_item,
    notification_from_response,
)

__all__ = [
    "FieldProblem",
    "FormDefinition",
    "FormQuestion",
    "IntakeRejection",
    "ReferenceFileError",
    "UnrecognisedPayload",
    "authorise",
    "load_form_definition",
    "load_supplier_register",
    "notification_from_any",
    "notification_from_list_item",
    "notification_from_response",
]
