"""The Smart Metering Inventory over HTTP: ``HttpInventory`` (the client), ``CredentialToken`` (its bearer
token from azure-identity) and ``OPENAPI``, the contract both sides keep to."""

from __future__ import annotations

from pathlib import Path

from adapters.smi.client import IDEMPOTENCY_HEADER, REPLAYED_HEADER, HttpInventory
from adapters.smi.tokens import CredentialToken, TokenSource
from adapters.smi.wire import SmiContractError

OPENAPI = Path(__file__).with_name("openapi.yaml")
"""The SMI contract as an OpenAPI 3.1 document."""

__all__ = [
    "IDEMPOTENCY_HEADER",
    "OPENAPI",
    "REPLAYED_HEADER",
    "CredentialToken",
    "HttpInventory",
    "SmiContractError",
    "TokenSource",
]
