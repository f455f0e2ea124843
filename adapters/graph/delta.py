"""``ListDeltaReader``: the SharePoint list's new and changed items, from Graph's list-item delta.

A read starts from the stored delta link (or, without one, a fresh delta: every item), follows
``@odata.nextLink`` page by page, yields each live item (a dict with its ``fields``, as Graph sent it)
and, once the last page's ``@odata.deltaLink`` arrives and every item has been taken, stores that link
for the next read. A read abandoned half-way stores nothing, so its items come again next time: intake
is at-least-once and deduplicates by response id. Deleted items (``@removed`` or a ``deleted`` facet)
carry no response and are skipped with a log line. A 410 (Graph's ``resyncRequired``: the link is too
old) drops the link and restarts from a fresh delta, once per read, with a warning.

The first request comes from the SDK's request builder (``.../items/delta()`` with ``$expand=fields``);
next and delta links are opaque URLs, followed with the builder's ``with_url``. The SDK sends every
request (token, retry of 429/503/504 honouring Retry-After, error mapping), but the page is read as
JSON (``send_for_json``) rather than as the SDK's ``ListItem`` model: kiota turns date-like and
UUID-like strings among a list item's fields into ``datetime`` and ``UUID`` objects, and intake must
see the columns as Graph sent them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from adapters.graph.client import GraphSession, send_for_json
from adapters.graph.delta_links import DeltaLinkStore
from adapters.graph.errors import graph_error_code
from flows.errors import PermanentError

if TYPE_CHECKING:
    from msgraph.graph_service_client import GraphServiceClient

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Gone:
    """Graph answered 410: the link can no longer be used."""

    code: str | None


class ListDeltaReader:
    """Reads one SharePoint list's item delta through a ``GraphSession``; see the module docstring."""

    def __init__(self, session: GraphSession, *, site_id: str, list_id: str, store: DeltaLinkStore) -> None:
        if not site_id or not list_id:
            raise ValueError("ListDeltaReader needs a site id and a list id")
        self._session = session
        self._site_id = site_id
        self._list_id = list_id
        self._store = store

    @property
    def list_id(self) -> str:
        return self._list_id

    @property
    def store(self) -> DeltaLinkStore:
        """Where the list's delta link is kept between reads."""
        return self._store

    def read(self) -> Iterator[dict[str, Any]]:
        """Yield the list's live items changed since the last complete read; then store the new link."""
        link = self._store.get(self._list_id)
        restarted = False
        while True:
            page = self._session.run(partial(self._page, link), what=f"delta of list {self._list_id}")
            if isinstance(page, _Gone):
                if restarted or link is None:
                    raise PermanentError(
                        f"delta of list {self._list_id}: Graph answered 410 to a fresh delta"
                    )
                log.warning(
                    "delta link of list %s is no longer valid (410 %s): restarting from a fresh delta,"
                    " every item will be read again",
                    self._list_id,
                    page.code or "without a code",
                )
                self._store.forget(self._list_id)
                link, restarted = None, True
                continue
            yield from self._live_items(page)
            next_link, delta_link = page.get("@odata.nextLink"), page.get("@odata.deltaLink")
            if isinstance(next_link, str) and next_link:
                link = next_link
            elif isinstance(delta_link, str) and delta_link:
                self._store.set(self._list_id, delta_link)
                return
            else:
                raise PermanentError(
                    f"delta of list {self._list_id}: a page with neither next nor delta link"
                )

    async def _page(self, link: str | None, client: GraphServiceClient) -> dict[str, Any] | _Gone:
        from kiota_abstractions.api_error import APIError
        from kiota_abstractions.base_request_configuration import RequestConfiguration

        builder = client.sites.by_site_id(self._site_id).lists.by_list_id(self._list_id).items.delta
        if link is None:
            query = builder.DeltaRequestBuilderGetQueryParameters(expand=["fields"])
            request = builder.to_get_request_information(RequestConfiguration(query_parameters=query))
        else:
            request = builder.with_url(link).to_get_request_information()
        try:
            page = await send_for_json(client, request)
        except APIError as error:
            if error.response_status_code == 410:
                return _Gone(graph_error_code(error))
            raise
        if not isinstance(page, dict) or not isinstance(page.get("value"), list):
            raise PermanentError(f"delta of list {self._list_id}: the answer is not a page of list items")
        return page

    def _live_items(self, page: dict[str, Any]) -> Iterator[dict[str, Any]]:
        for item in page["value"]:
            if not isinstance(item, dict):
                log.warning("delta of list %s: skipped a value that is not an item", self._list_id)
            elif "@removed" in item or "deleted" in item:
                log.info("delta of list %s: item %s was deleted, skipped", self._list_id, item.get("id"))
            else:
                yield item
