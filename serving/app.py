"""The ASGI application: routing, bodies, errors and metrics around the protocol adapters.

A raw ASGI callable rather than a framework: a small model's forward pass takes tens of
microseconds, so every layer between the socket and the model shows up in the latency.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from serving import sagemaker, v2
from serving.config import ServerConfig
from serving.http import HttpError, Request, Response, error_response, media_type
from serving.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from serving.metrics import ServerMetrics
from serving.runtime import ModelRuntime

log = logging.getLogger("serving")

Handler = Callable[[ModelRuntime, Request], Awaitable[Response]]
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Route:
    template: str  # also the metrics label, so label values stay few
    handler: Handler
    inference: bool = False  # reads a body and counts as in flight


class _ClientGone(Exception):
    """The client disconnected before its body arrived."""


class ServingApp:
    """The server's ASGI app: both protocols, /metrics, and the model's lifecycle."""

    def __init__(
        self, config: ServerConfig, on_fatal: Callable[[str, int], None] | None = None
    ) -> None:
        self.config = config
        self.metrics = ServerMetrics()
        self.runtime = ModelRuntime(config, self.metrics, on_fatal)
        self.metrics.watch_in_flight(lambda: self.runtime.in_flight)
        self.metrics.watch_ready(lambda: self.runtime.ready)
        routes = [
            ("GET", Route("/ping", sagemaker.ping)),
            ("POST", Route("/invocations", sagemaker.invocations, inference=True)),
            ("GET", Route("/v2", v2.server_metadata)),
            ("GET", Route("/v2/health/live", v2.live)),
            ("GET", Route("/v2/health/ready", v2.ready)),
            ("GET", Route("/v2/models/{name}", v2.model_metadata)),
            ("GET", Route("/v2/models/{name}/ready", v2.model_ready)),
            ("POST", Route("/v2/models/{name}/infer", v2.infer, inference=True)),
            ("GET", Route("/metrics", self._metrics)),
        ]
        self._static: dict[str, dict[str, Route]] = {}
        self._templated: list[tuple[re.Pattern[str], dict[str, Route]]] = []
        patterns: dict[str, dict[str, Route]] = {}
        for method, route in routes:
            if "{" in route.template:
                patterns.setdefault(route.template, {})[method] = route
            else:
                self._static.setdefault(route.template, {})[method] = route
        for template, methods in patterns.items():
            regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template)
            self._templated.append((re.compile(f"^{regex}$"), methods))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.runtime.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.runtime.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        path: str = scope["path"]
        params: dict[str, str] = {}
        methods = self._static.get(path)
        if methods is None:
            for pattern, candidates in self._templated:
                match = pattern.match(path)
                if match:
                    methods, params = candidates, match.groupdict()
                    break
        if methods is None:
            response = error_response(404, f"no route {path!r}")
            label = "unmatched"
        elif (route := methods.get(scope["method"])) is None:
            response = error_response(405, f"{path} takes {', '.join(sorted(methods))}")
            response.headers.append((b"allow", ", ".join(sorted(methods)).encode()))
            label = next(iter(methods.values())).template
        else:
            label = route.template
            try:
                response = await self._handle(route, scope, receive, params)
            except _ClientGone:
                self.metrics.observe_request(label, 499, time.perf_counter() - started)
                return
        headers = [
            (b"content-type", response.content_type.encode()),
            (b"content-length", str(len(response.body)).encode()),
            *response.headers,
        ]
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})
        self.metrics.observe_request(label, response.status, time.perf_counter() - started)

    async def _handle(
        self, route: Route, scope: Scope, receive: Receive, params: dict[str, str]
    ) -> Response:
        content_type = accept = ""
        length: int | None = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = media_type(value.decode("latin-1"))
            elif name == b"accept":
                accept = value.decode("latin-1")
            elif name == b"content-length" and value.isdigit():
                length = int(value)
        request = Request(scope["method"], scope["path"], content_type, accept, b"", params)
        try:
            if not route.inference:
                return await route.handler(self.runtime, request)
            self.runtime.in_flight += 1
            try:
                return await self._infer(route, request, receive, length)
            finally:
                self.runtime.in_flight -= 1
        except HttpError as exc:
            response = error_response(exc.status, exc.message)
            if exc.close:
                response.headers.append((b"connection", b"close"))
            return response
        except _ClientGone:
            raise
        except Exception as exc:
            log.exception("unexpected error on %s", route.template)
            return error_response(500, f"internal error: {type(exc).__name__}: {exc}")

    async def _infer(
        self, route: Route, request: Request, receive: Receive, length: int | None
    ) -> Response:
        """Read the body and run the route, within one deadline for both: SageMaker gives a
        request 60 s in all, and a client that stops sending must not hold a connection."""
        timeout = self.config.request_timeout_s
        received = False
        try:
            async with asyncio.timeout(timeout):
                request.body = await self._read_body(receive, length)
                received = True
                if not request.body:
                    raise HttpError(400, "empty body: send the input tensor in the request body")
                return await route.handler(self.runtime, request)
        except TimeoutError:
            if not received:
                raise HttpError(
                    408, f"the body did not arrive within {timeout:g} s", close=True
                ) from None
            raise HttpError(504, f"inference did not finish within {timeout:g} s") from None

    async def _read_body(self, receive: Receive, length: int | None) -> bytes:
        limit = self.config.max_body_bytes
        if length is not None and length > limit:
            # Refuse on the header alone; closing the connection means the rest is never read.
            raise HttpError(413, _too_large(length, limit), close=True)
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        body: bytes = message.get("body", b"")
        if not message.get("more_body", False):
            if len(body) > limit:
                raise HttpError(413, _too_large(len(body), limit), close=True)
            return body
        chunks = [body]
        size = len(body)
        while message.get("more_body", False):
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _ClientGone
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise HttpError(413, _too_large(size, limit, partial=True), close=True)
            chunks.append(chunk)
        return b"".join(chunks)

    async def _metrics(self, runtime: ModelRuntime, request: Request) -> Response:
        return Response(200, self.metrics.render(), METRICS_CONTENT_TYPE)


def _too_large(size: int, limit: int, partial: bool = False) -> str:
    what = f"more than {size}" if partial else f"{size}"
    return (
        f"body too large: {what} bytes; the limit is {limit} bytes "
        "(SageMaker real-time endpoints take at most 6 MB)"
    )
