"""`python -m serving serve [flags]`: the container's entry point (SageMaker runs `IMAGE serve`).

`python -m serving local MODEL_DIR [flags]`: serve a model directory on http://127.0.0.1:8080
(the same server, bound to loopback only; any `serve` flag still applies).

`python -m serving evaluate --model-dir M --data-dir TEST --out evaluation.json`: the
pipeline's independent evaluation of every variant on the test channel (serving/evaluate.py).

`python -m serving gate ...`: evaluate a run's exported model, and register it in its model
package group only if the objective meets the threshold (the EKS plane's gate, serving/gate.py).

`python -m serving healthcheck`: exit 0 when the local server answers /ping with 200 (the
image's HEALTHCHECK).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence

USAGE = """usage: python -m serving {serve,local,evaluate,gate,healthcheck} [flags]

  serve        serve the model directory (python -m serving serve --help for the flags)
  local DIR    serve DIR on http://127.0.0.1:8080 (same flags as serve)
  evaluate     score every variant on the test channel into evaluation.json (--help)
  gate         evaluate, then register only at or beyond the threshold (--help)
  healthcheck  exit 0 when the server on this machine is ready
"""


def healthcheck(port: int) -> int:
    """0 when http://127.0.0.1:PORT/ping answers 200 within SageMaker's 2 s ping timeout."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError):
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, end="")
        return 0 if args else 2
    command, rest = args[0], args[1:]
    if command == "serve":
        from serving.config import parse_args
        from serving.server import run_server

        run_server(parse_args(rest))
    if command == "local":
        from serving.config import parse_args
        from serving.server import run_server

        if not rest or rest[0].startswith("-"):
            print("usage: python -m serving local MODEL_DIR [serve flags]", file=sys.stderr)
            return 2
        # Later flags win in argparse, so the user's own --host or --port still apply.
        run_server(parse_args(["--host", "127.0.0.1", "--model-dir", *rest]))
    if command == "evaluate":
        from serving.evaluate import main as evaluate

        return evaluate(rest)
    if command == "gate":
        from serving.gate import main as gate

        return gate(rest)
    if command == "healthcheck":
        env = os.environ
        # The same port `serve` picks from the environment.
        default = env.get("SAGEMAKER_BIND_TO_PORT", env.get("SERVING_PORT", "8080"))
        port = int(rest[0]) if rest else int(default)
        return healthcheck(port)
    print(f"unknown command {command!r}\n{USAGE}", end="", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
