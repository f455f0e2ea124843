"""``GraphSession``: the worker's one ``GraphServiceClient``, and the event loop its calls run on.

msgraph-sdk is async and heavy (about a second to import and parse its first answer), while the ports
the flows call are synchronous and the webhook path must stay light. So the SDK is imported only in
``GraphSession.open``, once per worker; the session keeps one event loop on a thread of its own, and
``run`` hands it a coroutine from any thread and waits for the result, translated into the bridge's
error tree. One loop means one httpx connection pool and one token cache for every caller.

The HTTP client is the SDK's own pipeline (``GraphClientFactory.create_with_default_middleware`` with
msgraph's default options): redirects, retries of 429/503/504 honouring Retry-After, telemetry.
``sdk_retry(False)`` gives the request option that turns that retry off for one call.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from adapters.graph.errors import translate
from adapters.graph.settings import GraphSettings
from flows.errors import PermanentError

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential
    from kiota_abstractions.authentication import AuthenticationProvider
    from kiota_abstractions.request_information import RequestInformation
    from kiota_abstractions.request_option import RequestOption
    from msgraph.graph_service_client import GraphServiceClient

T = TypeVar("T")
log = logging.getLogger(__name__)
_CONNECT_TIMEOUT = 10.0


def build_credential(settings: GraphSettings) -> AsyncTokenCredential:
    """The azure-identity (async) credential that ``settings.credential`` names; close it when done."""
    from azure.identity.aio import CertificateCredential, ClientSecretCredential, ManagedIdentityCredential

    from adapters.identity import credential_options

    options = credential_options()  # a busy token service is a TransientError
    if settings.credential == "client_secret" and settings.client_secret is not None:
        return ClientSecretCredential(
            settings.tenant_id, settings.client_id, settings.client_secret.get_secret_value(), **options
        )
    if settings.credential == "certificate" and settings.certificate_path is not None:
        password = settings.certificate_password
        return CertificateCredential(
            settings.tenant_id,
            settings.client_id,
            certificate_path=str(settings.certificate_path),
            password=None if password is None else password.get_secret_value(),
            **options,
        )
    return ManagedIdentityCredential(client_id=settings.client_id or None, **options)


def sdk_retry(enabled: bool) -> list[RequestOption]:
    """Request options for one call: ``[]`` keeps the SDK's retry, else a ``RetryHandlerOption`` that
    stops it (``max_retries=0`` and ``should_retry=False``: the RetryHandler then sends once and hands
    back whatever came), for calls the flow engine retries itself under an idempotency key."""
    if enabled:
        return []
    from kiota_http.middleware.options import RetryHandlerOption

    return [RetryHandlerOption(max_retries=0, should_retry=False)]


async def send_for_json(client: GraphServiceClient, request: RequestInformation) -> object:
    """Send a request an SDK builder made, through the SDK (token, middleware, Graph's error mapping
    into ``ODataError``), and return the answer's JSON as ``json`` parses it (``None`` when empty).

    Reading answers as JSON rather than as the SDK's models keeps values as Graph sent them (kiota turns
    date-like and UUID-like strings in open types, such as a list item's fields, into ``datetime`` and
    ``UUID``) and spares a worker the first model parse: reading any entity imports about 1,200 model
    modules (some 3 s and 35 MB).
    """
    from msgraph.generated.models.o_data_errors.o_data_error import ODataError

    raw: object = await client.request_adapter.send_primitive_async(request, "bytes", {"XXX": ODataError})
    if not isinstance(raw, bytes) or not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError as error:
        raise PermanentError("Microsoft Graph answered with something other than JSON") from error


class GraphSession:
    """One ``GraphServiceClient`` on a private event loop thread; ``run`` calls it from any thread."""

    def __init__(
        self,
        client: GraphServiceClient,
        *,
        call_timeout: float,
        closers: tuple[Callable[[], Coroutine[Any, Any, None]], ...] = (),
    ) -> None:
        """Prefer ``GraphSession.open``; ``closers`` are awaited on the loop by ``close``."""
        self.client = client
        self._call_timeout = call_timeout
        self._closers = closers
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="graph-session", daemon=True)
        self._thread.start()

    @classmethod
    def open(
        cls, settings: GraphSettings, *, auth_provider: AuthenticationProvider | None = None
    ) -> GraphSession:
        """Build the client from settings: credential, SDK middleware, base URL.

        ``auth_provider`` replaces the azure-identity credential (tests give one that needs no tenant).
        """
        import httpx
        from kiota_authentication_azure.azure_identity_authentication_provider import (
            AzureIdentityAuthenticationProvider,
        )
        from msgraph.graph_request_adapter import GraphRequestAdapter
        from msgraph.graph_request_adapter import options as graph_default_options
        from msgraph.graph_service_client import GraphServiceClient
        from msgraph_core import GraphClientFactory  # type: ignore[import-untyped]

        closers: list[Callable[[], Coroutine[Any, Any, None]]] = []
        if auth_provider is None:
            credential = build_credential(settings)
            closers.append(credential.close)
            auth_provider = AzureIdentityAuthenticationProvider(
                credential, scopes=list(settings.scopes), allowed_hosts=settings.allowed_hosts
            )
        # The SDK wraps the client's transport in msgraph_core's AsyncGraphTransport, which has no
        # ``aclose`` (msgraph-core 1.5.2; kiota's own wrapper got one, microsoft/kiota-python#494):
        # closing the client would leave its connections open. The session owns the transport instead.
        transport = httpx.AsyncHTTPTransport(http2=True)
        timeout = httpx.Timeout(
            settings.request_timeout, connect=min(_CONNECT_TIMEOUT, settings.request_timeout)
        )
        http_client: httpx.AsyncClient = GraphClientFactory.create_with_default_middleware(
            client=httpx.AsyncClient(transport=transport, timeout=timeout), options=graph_default_options
        )
        closers[:0] = [http_client.aclose, transport.aclose]
        adapter = GraphRequestAdapter(auth_provider, client=http_client)
        adapter.base_url = settings.base_url
        client = GraphServiceClient(request_adapter=adapter)
        log.info("Graph client ready for %s (%s credential)", settings.base_url, settings.credential)
        return cls(client, call_timeout=settings.call_timeout, closers=tuple(closers))

    def run(self, call: Callable[[GraphServiceClient], Coroutine[Any, Any, T]], *, what: str) -> T:
        """Run ``call(client)`` on the session's loop and wait; errors come out as ``BridgeError``s.

        ``what`` names the operation in error messages. Waits at most the settings' ``call_timeout``
        (the call is then cancelled and a ``TransientError`` raised).
        """
        if threading.current_thread() is self._thread:
            raise RuntimeError("GraphSession.run called from its own loop: await the SDK directly there")

        async def on_the_loop() -> T:  # builders and serialisation run on the loop thread too
            return await call(self.client)

        future = asyncio.run_coroutine_threadsafe(on_the_loop(), self._loop)
        try:
            return future.result(self._call_timeout)
        except BaseException as error:
            future.cancel()
            translated = translate(error, what)
            if translated is error:
                raise
            raise translated from error

    def close(self) -> None:
        """Close the HTTP client and the credential, then stop the loop; the session is done."""
        if self._loop.is_closed():
            return
        for closer in self._closers:
            try:
                asyncio.run_coroutine_threadsafe(closer(), self._loop).result(self._call_timeout)
            except Exception:  # closing the rest matters more than one failure here
                log.warning("closing the Graph session: %s failed", closer, exc_info=True)
        # closed sockets are released on the loop's next turn: give it one before stopping
        asyncio.run_coroutine_threadsafe(asyncio.sleep(0), self._loop).result(self._call_timeout)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
