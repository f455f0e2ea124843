"""``GraphMailer``: the ``Mailer`` port on Graph ``sendMail``, from the bridge's shared mailbox.

``POST /users/{mailbox}/sendMail`` with the HTML body, the To recipients, the subject, a copy kept in
Sent Items (Graph keeps none unless asked), and the idempotency key as an internet message header
(``X-Bridge-Idempotency-Key``: Graph accepts custom headers whose names start with ``x-``), so a
message in a mailbox can be traced to the action that sent it. The plain-text body is not sent: a Graph
message has one body.

``sendMail`` is not idempotent: each accepted call sends a message, and Graph returns no id (202, no
body). A repeat is prevented by the flow engine, which remembers each action's result by idempotency
key and never sends a key twice once it succeeded. The engine also retries transient failures itself,
so by default this mailer switches the SDK's own retry off for the call (``sdk_retry=False``): one
request per attempt, and a 429/503/504 comes back at once as ``TransientError`` with Graph's
Retry-After for the engine to honour. Retries are never stacked. An attempt whose answer is lost (a
timeout after Graph accepted it) may still send twice when retried; the header tells the copies apart.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

from adapters.graph.client import GraphSession, sdk_retry
from flows.ports import OutgoingEmail

if TYPE_CHECKING:
    from kiota_abstractions.default_query_parameters import QueryParameters
    from msgraph.generated.users.item.send_mail.send_mail_post_request_body import SendMailPostRequestBody

IDEMPOTENCY_HEADER = "X-Bridge-Idempotency-Key"
_FALLBACK_DOMAIN = "cpl-bridge.invalid"  # for a mailbox given by user id


class GraphMailer:
    """Sends each ``OutgoingEmail`` from ``mailbox``; returns an id derived from its idempotency key."""

    def __init__(self, session: GraphSession, *, mailbox: str, sdk_retry: bool = False) -> None:
        """``sdk_retry=True`` only where nothing else retries the send (the SDK then retries
        429/503/504 itself, up to three times, waiting as Graph asks)."""
        if not mailbox.strip():
            raise ValueError("GraphMailer needs the sending mailbox (its address or user id)")
        self._session = session
        self._mailbox = mailbox
        self._sdk_retry = sdk_retry
        self._domain = mailbox.rpartition("@")[2] or _FALLBACK_DOMAIN

    def message_id(self, idempotency_key: str) -> str:
        """The id ``send`` returns: the same for the same key, as the outbox mailer's Message-ID is."""
        digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:32]
        return f"<{digest}@{self._domain}>"

    def send(self, email: OutgoingEmail) -> str:
        """One ``sendMail`` (retried by the SDK only if ``sdk_retry``); errors come as ``BridgeError``s."""
        from kiota_abstractions.base_request_configuration import RequestConfiguration

        body = self.request_body(email)
        configuration: RequestConfiguration[QueryParameters] = RequestConfiguration(
            options=sdk_retry(self._sdk_retry)
        )
        self._session.run(
            lambda c: c.users.by_user_id(self._mailbox).send_mail.post(body, configuration),
            what=f"sendMail from {self._mailbox}",
        )
        return self.message_id(email.idempotency_key)

    @staticmethod
    def request_body(email: OutgoingEmail) -> SendMailPostRequestBody:
        """The SDK's ``sendMail`` body for ``email``."""
        from msgraph.generated.models.body_type import BodyType
        from msgraph.generated.models.email_address import EmailAddress
        from msgraph.generated.models.internet_message_header import InternetMessageHeader
        from msgraph.generated.models.item_body import ItemBody
        from msgraph.generated.models.message import Message
        from msgraph.generated.models.recipient import Recipient
        from msgraph.generated.users.item.send_mail.send_mail_post_request_body import (
            SendMailPostRequestBody,
        )

        message = Message(
            subject=email.subject,
            body=ItemBody(content_type=BodyType.Html, content=email.html_body),
            to_recipients=[Recipient(email_address=EmailAddress(address=address)) for address in email.to],
            internet_message_headers=[
                InternetMessageHeader(name=IDEMPOTENCY_HEADER, value=email.idempotency_key)
            ],
        )
        return SendMailPostRequestBody(message=message, save_to_sent_items=True)
