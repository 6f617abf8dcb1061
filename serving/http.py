"""The few HTTP types the protocol adapters share: a read request, a response, an error."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

JSON = "application/json"
JSONLINES = "application/jsonlines"
NPY = "application/x-npy"
CSV = "text/csv"


class HttpError(Exception):
    """A request the server refuses: the status and a message that names the problem."""

    def __init__(self, status: int, message: str, *, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        # Close the connection after answering, for bodies the server chose not to read.
        self.close = close


@dataclass(slots=True)
class Request:
    """An HTTP request whose body has been read whole (within the size limit)."""

    method: str
    path: str
    content_type: str
    accept: str
    body: bytes
    path_params: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Response:
    """An HTTP response with a complete body."""

    status: int = 200
    body: bytes = b""
    content_type: str = JSON
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)


_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode


def json_response(doc: Any, status: int = 200) -> Response:
    """A compact JSON response (no spaces: these bodies are read by programs). NaN and Infinity
    raise ValueError rather than produce the invalid JSON tokens Python would write."""
    return Response(status, _encode(doc).encode())


def error_response(status: int, message: str) -> Response:
    """The one error shape every route uses: `{"error": "..."}` (the v2 protocol's)."""
    return json_response({"error": message}, status)


def media_type(header: str) -> str:
    """`application/json; charset=utf-8` → `application/json`."""
    return header.split(";", 1)[0].strip().lower()
