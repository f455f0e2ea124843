"""Microsoft Graph adapters, on the real msgraph-sdk: list-item delta, list subscriptions, ``sendMail``.

``GraphSession.open(settings)`` builds the worker's one ``GraphServiceClient`` (credential from
``GraphSettings``); ``ListDeltaReader``, ``ListSubscriptions`` and ``GraphMailer`` each take that session.
Importing this package imports no SDK: msgraph, kiota and azure-identity load in ``GraphSession.open``
and in the calls, so the webhook path may import it (for ``GraphSettings``) and stay light.
"""

from adapters.graph.client import GraphSession, build_credential, sdk_retry
from adapters.graph.delta import ListDeltaReader
from adapters.graph.delta_links import DeltaLinkStore, InMemoryDeltaLinkStore, SqliteDeltaLinkStore
from adapters.graph.errors import retry_after, translate
from adapters.graph.mail import IDEMPOTENCY_HEADER, GraphMailer
from adapters.graph.settings import GRAPH_SCOPE, GRAPH_V1, CredentialKind, GraphSettings
from adapters.graph.subscription_records import (
    InMemorySubscriptionRecords,
    SqliteSubscriptionRecords,
    SubscriptionRecord,
    SubscriptionRecords,
)
from adapters.graph.subscriptions import (
    DEFAULT_LIFETIME,
    LIST_SUBSCRIPTION_MAX,
    EnsuredSubscription,
    GraphSubscription,
    ListSubscriptions,
)

__all__ = [
    "DEFAULT_LIFETIME",
    "GRAPH_SCOPE",
    "GRAPH_V1",
    "IDEMPOTENCY_HEADER",
    "LIST_SUBSCRIPTION_MAX",
    "CredentialKind",
    "DeltaLinkStore",
    "EnsuredSubscription",
    "GraphMailer",
    "GraphSession",
    "GraphSettings",
    "GraphSubscription",
    "InMemoryDeltaLinkStore",
    "InMemorySubscriptionRecords",
    "ListDeltaReader",
    "ListSubscriptions",
    "SqliteDeltaLinkStore",
    "SqliteSubscriptionRecords",
    "SubscriptionRecord",
    "SubscriptionRecords",
    "build_credential",
    "retry_after",
    "sdk_retry",
    "translate",
]
