"""HTTP servers the tests start on a free port of 127.0.0.1, each answering from a thread of its own."""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self


class Loopback:
    """``handler``'s server on a free loopback port, answering between ``start`` and ``stop`` (or in a
    ``with`` block). ``attributes`` are set on the server, where a handler reaches them through
    ``self.server`` (the test double whose state it answers from); ``tls`` wraps its socket."""

    def __init__(
        self,
        handler: type[BaseHTTPRequestHandler],
        *,
        tls: ssl.SSLContext | None = None,
        **attributes: object,
    ) -> None:
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        for name, value in attributes.items():
            setattr(self.http, name, value)
        if tls is not None:
            self.http.socket = tls.wrap_socket(self.http.socket, server_side=True)
        # A 20 ms poll: ``stop`` waits for the loop to notice, and the suite starts hundreds of these.
        self._thread = threading.Thread(target=self.http.serve_forever, args=(0.02,), daemon=True)

    @property
    def port(self) -> int:
        return int(self.http.server_address[1])

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        self.http.shutdown()
        self.http.server_close()
        self._thread.join(timeout)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
