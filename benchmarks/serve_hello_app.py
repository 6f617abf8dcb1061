"""The HTTP floor: a bare ASGI app under uvicorn that reads the body and answers a fixed JSON.

Same uvicorn settings as our server (uvloop, httptools, no access log), and an answer the size
of one digits prediction, so the difference to our server is what the server adds: routing,
decoding, checks, batching, the forward pass and encoding.
"""

from __future__ import annotations

import argparse
import json

import uvicorn

ANSWER = json.dumps({"predictions": [{"logits": [0.123456789] * 10, "label": "0"}]}).encode()
HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(ANSWER))]


async def app(scope: dict, receive, send) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": ANSWER})


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        lifespan="off",
        access_log=False,
        server_header=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
