"""Running the app under uvicorn, with the shutdown SageMaker and Kubernetes expect.

On SIGTERM (or SIGINT): readiness turns false at once; after `drain_s` seconds (default 0) the
listening socket closes, so new connections are refused; requests already accepted run to
completion (queued batches stop waiting to fill); the process exits 0 within `grace_s`. A second
signal stops waiting. SageMaker sends SIGKILL 30 s after SIGTERM, hence the 25 s default.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from types import FrameType
from typing import NoReturn

import uvicorn

from serving.app import ServingApp
from serving.config import ServerConfig
from serving.connections import head_deadline_protocol

log = logging.getLogger("serving")


class GracefulServer(uvicorn.Server):
    """uvicorn's server with draining before close, and exit status 0 after a clean stop."""

    def __init__(self, config: uvicorn.Config, app: ServingApp, drain_s: float) -> None:
        super().__init__(config)
        self.app = app
        self.drain_s = drain_s
        self.exit_code = 0
        self._close_at: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Replaces uvicorn's handler, which re-raises the signal after shutdown so the process
        # dies "of SIGTERM"; a drained server has nothing to report but success.
        if self._close_at is not None:
            log.warning("second %s: stopping without waiting", signal.Signals(sig).name)
            self.should_exit = self.force_exit = True
            return
        log.info("%s: draining, then closing in %.1f s", signal.Signals(sig).name, self.drain_s)
        self.app.runtime.begin_drain()
        self._close_at = time.monotonic() + self.drain_s

    async def on_tick(self, counter: int) -> bool:
        if self._close_at is not None and time.monotonic() >= self._close_at:
            return True
        return await super().on_tick(counter)

    def fail(self, message: str, code: int) -> None:
        """Stop the server with exit status `code` (the model could not be loaded)."""
        self.exit_code = code
        self.should_exit = True


def run_server(config: ServerConfig) -> NoReturn:
    """Serve until stopped, then end the process: 0 after a clean stop, 1 when the model raised
    while loading, 3 when the model directory cannot be served as declared (runtime.py)."""
    logging.basicConfig(
        level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    server: GracefulServer | None = None

    def on_fatal(message: str, code: int) -> None:
        if server is not None:
            server.fail(message, code)

    app = ServingApp(config, on_fatal=on_fatal)
    uv_config = uvicorn.Config(
        app,
        host=config.host,
        port=config.port,
        lifespan="on",
        access_log=False,
        server_header=False,
        log_level=config.log_level,
        http=head_deadline_protocol(config.header_timeout_s),
        timeout_keep_alive=config.idle_timeout_s,  # type: ignore[arg-type]  # call_later takes floats
        timeout_graceful_shutdown=max(1, round(config.grace_s - config.drain_s)),
    )
    server = GracefulServer(uv_config, app, config.drain_s)
    # uvicorn keeps one task per request from the moment its headers are parsed: the batcher's
    # "is this request alone?" must count requests the app has not begun to handle.
    app.runtime.requests_in_server = lambda: len(server.server_state.tasks)
    server.run()
    # Skip the interpreter's teardown: torch's alone takes a second or more, a forward pass that
    # outlived the grace period would be waited for, and nothing is left to clean up.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1 if app.runtime.abandoned_work else server.exit_code)
