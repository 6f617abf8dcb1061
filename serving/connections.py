"""HTTP connections with a deadline for each request's head (status line and headers).

uvicorn closes a keep-alive connection that stays idle after a response, but once a byte of the
next request arrives, or before the first one, it waits for the headers for ever: a client that
opens connections and sends half a header (slowloris) holds them, and their memory, until it
goes away. uvicorn has no setting for this, so this subclass of its httptools protocol (the one
`http="auto"` picks, httptools being pinned) adds nginx's client_header_timeout: the head must
arrive within `header_timeout` seconds of the connection opening or the previous response ending.
A connection that sent nothing is closed quietly; one that sent part of a head gets 408 first.
"""

from __future__ import annotations

import asyncio
import json

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class HeadDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing connections whose request head is too slow."""

    header_timeout: float = 10.0
    _head_timer: asyncio.TimerHandle | None = None
    _head_started = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self.cycle is None or self.cycle.response_complete:
            # Between requests: these bytes begin a head (uvicorn just stopped its idle timer).
            if self._head_timer is None:
                self._arm()
            self._head_started = True
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._disarm()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._head_started = False
        self._head_timer = self.loop.call_later(self.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _expired(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._head_started:
            message = f"the request headers did not arrive within {self.header_timeout:g} s"
            body = json.dumps({"error": message}).encode()
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
            )
        self.transport.close()


def head_deadline_protocol(header_timeout: float) -> type[HeadDeadlineProtocol]:
    """The protocol class to hand uvicorn.Config(http=...), with this deadline."""
    return type("HeadDeadlineProtocol", (HeadDeadlineProtocol,), {"header_timeout": header_timeout})
