"""``ListSubscriptions``: the Graph change-notification subscription that tells the bridge a list changed.

Graph subscriptions to a SharePoint list (resource ``sites/{site}/lists/{list}``, change type
``updated``, the only one lists support) live at most 42,300 minutes (29 days 9 hours) and get no
``missed`` notifications, so a timer calls ``ensure_subscription`` well within that: it finds ours among
``GET /subscriptions`` (same notification URL and resource) and renews it, or creates it when absent
(or gone by the time it is renewed). ``reauthorize`` answers Graph's ``reauthorizationRequired``
lifecycle event. The list-item delta remains the safety net for anything a notification missed.

Graph keeps the client state a subscription was made with and a renewal cannot change it, so each
subscription made here is recorded (``SubscriptionRecords``: its id and a salted SHA-256 of the state,
never the state). Upkeep renews only the recorded subscription made with the configured state; any
other of ours (made before ``BRIDGE_GRAPH_CLIENT_STATE`` was rotated, or not known to the bridge) is
replaced: a new one is created and recorded first, then the others are deleted, so a failed create
leaves what was there.

Requests come from the SDK's builders and models; answers are read as JSON (``send_for_json``), which
spares the worker the SDK's first model parse. These calls keep the SDK's retry of 429/503/504:
nothing else retries them, and a create repeated by a retry leaves a spare subscription that costs
only duplicate notifications (intake deduplicates) until it expires.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from pydantic import SecretStr

from adapters.graph.client import GraphSession, send_for_json
from adapters.graph.subscription_records import SubscriptionRecord, SubscriptionRecords
from flows.errors import PermanentError

if TYPE_CHECKING:
    from kiota_abstractions.request_information import RequestInformation
    from msgraph.graph_service_client import GraphServiceClient

log = logging.getLogger(__name__)

LIST_SUBSCRIPTION_MAX = timedelta(minutes=42_300)
"""Graph's longest subscription to a SharePoint list."""
DEFAULT_LIFETIME = LIST_SUBSCRIPTION_MAX - timedelta(hours=12)
"""What we ask for: under the maximum by a margin for clocks that disagree and slow requests."""
CHANGE_TYPE = "updated"
_MAX_CLIENT_STATE = 128


@dataclass(frozen=True)
class GraphSubscription:
    """A subscription as Graph describes it (without the client state, which it does not list)."""

    id: str
    resource: str
    notification_url: str
    change_type: str
    expires_at: datetime | None


@dataclass(frozen=True)
class EnsuredSubscription:
    subscription: GraphSubscription
    created: bool


class ListSubscriptions:
    """Create, find, renew and reauthorize the bridge's subscription to one SharePoint list."""

    def __init__(
        self,
        session: GraphSession,
        *,
        site_id: str,
        list_id: str,
        notification_url: str,
        client_state: SecretStr | str,
        records: SubscriptionRecords,
        lifetime: timedelta = DEFAULT_LIFETIME,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        state = client_state.get_secret_value() if isinstance(client_state, SecretStr) else client_state
        if not site_id or not list_id:
            raise ValueError("ListSubscriptions needs a site id and a list id")
        parts = urlsplit(notification_url)
        if parts.scheme != "https":
            # Without its query or user part: the query holds the function key, and this reaches logs.
            shown = f"{parts.scheme}://{parts.hostname or ''}{parts.path}" if parts.scheme else "a URL"
            raise ValueError(f"Graph notifies HTTPS endpoints only, not {shown!r} (query left out)")
        if not 0 < len(state) <= _MAX_CLIENT_STATE:
            raise ValueError(f"the client state must be 1 to {_MAX_CLIENT_STATE} characters")
        if not timedelta(0) < lifetime <= LIST_SUBSCRIPTION_MAX:
            raise ValueError(f"a list subscription lives at most {LIST_SUBSCRIPTION_MAX}, not {lifetime}")
        self._session = session
        self.resource = f"sites/{site_id}/lists/{list_id}"
        self._list_id = list_id
        self._records = records
        self.notification_url = notification_url
        self._client_state = SecretStr(state)
        self._lifetime = lifetime
        self._clock = clock or (lambda: datetime.now(UTC))

    def create(self) -> GraphSubscription:
        """``POST /subscriptions`` for the list (Graph first validates the notification URL), then
        record it with the fingerprint of the client state it was made with."""
        from msgraph.generated.models.subscription import Subscription

        body = Subscription(
            change_type=CHANGE_TYPE,
            notification_url=self.notification_url,
            resource=self.resource,
            expiration_date_time=self._expiry(),
            client_state=self._client_state.get_secret_value(),
        )
        made = self._session.run(
            lambda c: send_for_json(c, c.subscriptions.to_post_request_information(body)),
            what=f"subscribe to {self.resource}",
        )
        subscription = _described(made, "create")
        record = SubscriptionRecord.of(subscription.id, self._client_state.get_secret_value())
        self._records.set(self._list_id, record)
        return subscription

    def renew(self, subscription_id: str) -> GraphSubscription:
        """``PATCH /subscriptions/{id}`` with a new ``expirationDateTime``."""
        renewed = self._session.run(
            lambda c: self._patch(c, subscription_id), what=f"renew subscription {subscription_id}"
        )
        return _described(renewed, "renew")

    def reauthorize(self, subscription_id: str) -> None:
        """``POST /subscriptions/{id}/reauthorize``, when Graph asked for it (lifecycle notification)."""
        self._session.run(
            lambda c: c.subscriptions.by_subscription_id(subscription_id).reauthorize.post(),
            what=f"reauthorize subscription {subscription_id}",
        )

    def delete(self, subscription_id: str) -> None:
        """``DELETE /subscriptions/{id}``; one already gone is fine."""
        self._session.run(
            lambda c: self._delete(c, subscription_id), what=f"delete subscription {subscription_id}"
        )

    def find(self) -> list[GraphSubscription]:
        """Ours among ``GET /subscriptions`` (every page): same notification URL and resource."""
        return self._session.run(self._ours, what="list subscriptions")

    def ensure_subscription(self) -> EnsuredSubscription:
        """Renew the subscription recorded as made with the configured client state; otherwise create
        one (and record it), then delete every other of ours: made with a state since rotated, or not
        known to the bridge (the record lost, or made by hand)."""
        ours = self.find()
        record = self._records.get(self._list_id)
        state = self._client_state.get_secret_value()
        vouched = record.subscription_id if record is not None and record.made_with(state) else None
        keep = next((s for s in ours if s.id == vouched), None)
        others = [s for s in ours if s is not keep]
        ensured: EnsuredSubscription | None = None
        if keep is not None:
            renewed = self._session.run(
                lambda c: self._patch(c, keep.id, missing_ok=True), what=f"renew subscription {keep.id}"
            )
            if renewed is not None:
                ensured = EnsuredSubscription(_described(renewed, "renew"), created=False)
            else:
                log.info("subscription %s expired before it could be renewed: creating another", keep.id)
        if ensured is None:
            ensured = EnsuredSubscription(self.create(), created=True)
        recorded = record.subscription_id if record is not None else None
        for other in others:
            why = (
                "made with a client state since changed"
                if other.id == recorded
                else "not recorded as made with the configured client state"
            )
            log.warning("subscription %s to %s was %s: deleting it", other.id, self.resource, why)
            self.delete(other.id)
        return ensured

    def _expiry(self) -> datetime:
        return self._clock().astimezone(UTC) + self._lifetime

    async def _patch(
        self, client: GraphServiceClient, subscription_id: str, *, missing_ok: bool = False
    ) -> object:
        from kiota_abstractions.api_error import APIError
        from msgraph.generated.models.subscription import Subscription

        change = Subscription(expiration_date_time=self._expiry())
        builder = client.subscriptions.by_subscription_id(subscription_id)
        try:
            return await send_for_json(client, builder.to_patch_request_information(change))
        except APIError as error:
            if missing_ok and error.response_status_code == 404:
                return None
            raise

    async def _delete(self, client: GraphServiceClient, subscription_id: str) -> None:
        from kiota_abstractions.api_error import APIError

        builder = client.subscriptions.by_subscription_id(subscription_id)
        try:
            await send_for_json(client, builder.to_delete_request_information())
        except APIError as error:
            if error.response_status_code != 404:
                raise

    async def _ours(self, client: GraphServiceClient) -> list[GraphSubscription]:
        found: list[GraphSubscription] = []
        request: RequestInformation | None = client.subscriptions.to_get_request_information()
        while request is not None:
            page = await send_for_json(client, request)
            listed = page.get("value") if isinstance(page, dict) else None
            if not isinstance(listed, list):
                raise PermanentError("list subscriptions: the answer is not a page of subscriptions")
            found.extend(_described(s, "list") for s in listed if self._is_ours(s))
            next_link = page.get("@odata.nextLink") if isinstance(page, dict) else None
            request = (
                client.subscriptions.with_url(next_link).to_get_request_information() if next_link else None
            )
        return found

    def _is_ours(self, subscription: object) -> bool:
        if not isinstance(subscription, dict):
            return False
        resource = str(subscription.get("resource") or "").strip("/").casefold()
        return (
            subscription.get("notificationUrl") == self.notification_url
            and resource == self.resource.casefold()
        )


def _described(answer: object, operation: str) -> GraphSubscription:
    """Graph's JSON for a subscription, as a ``GraphSubscription``."""
    data = answer if isinstance(answer, dict) else {}
    subscription_id = data.get("id")
    if not isinstance(subscription_id, str) or not subscription_id:
        raise PermanentError(f"subscription {operation}: Graph answered without a subscription")
    expiry = data.get("expirationDateTime")
    return GraphSubscription(
        id=subscription_id,
        resource=str(data.get("resource") or ""),
        notification_url=str(data.get("notificationUrl") or ""),
        change_type=str(data.get("changeType") or ""),
        expires_at=datetime.fromisoformat(expiry) if isinstance(expiry, str) and expiry else None,
    )
