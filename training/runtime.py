"""The platform's runtime contract as a few calls a model's training script makes.

    from training import runtime

    with runtime.start() as run:               # hyperparameters typed by model.yaml
        data = load_prepared(run.channel("train"))
        for epoch in range(run.hp["epochs"]):
            ...
            run.log(epoch=epoch, step=step, train_loss=loss)
            if run.stop_requested:             # SIGTERM: spot reclaim, StopTrainingJob, pod
                run.checkpoints.save(state, wait=True)
                run.stop()                     # the run exits 143 when the block ends
                break
        run.export(model, validation=(x_val, y_val), labels=data.labels)
        run.finish(validation_accuracy=acc)    # metrics.json

A failure inside the block writes ``<output>/failure`` (SageMaker's FailureReason) and exits 1;
a mistake a person can fix (UserError) is one line without a traceback.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

from training import hyperparameters as hp
from training.checkpoint import Checkpoints
from training.environment import RunEnvironment, resolve, split_path_flags, write_failure
from training.errors import DatasetError, UserError
from training.manifest import MANIFEST_FILE, ModelManifest, load_manifest
from training.metrics import ProgressBar, format_metrics
from training.tracking import Tracker, plain

EXIT_STOPPED = 128 + signal.SIGTERM  # the shell's code for "ended by SIGTERM"
STOP_SYNC_EVERY = 10  # reads of stop_requested between agreeing across ranks (a host sync)


def find_manifest(environ: Mapping[str, str] | None = None) -> Path:
    """model.yaml next to the entry script, in SM_MODULE_DIR, or in the working directory."""
    env = os.environ if environ is None else environ
    main = getattr(sys.modules.get("__main__"), "__file__", None)
    candidates = [Path(main).resolve().parent] if main else []
    if env.get("SM_MODULE_DIR") and "://" not in env["SM_MODULE_DIR"]:  # may be an S3 URI
        candidates.append(Path(env["SM_MODULE_DIR"]))
    candidates.append(Path.cwd())
    for directory in candidates:
        if (directory / MANIFEST_FILE).is_file():
            return directory / MANIFEST_FILE
    looked = ", ".join(str(d) for d in dict.fromkeys(candidates))
    raise UserError(f"no {MANIFEST_FILE} found (looked in {looked}); see docs/models.md")


def hyperparameter_sources(run: RunEnvironment, flags: dict[str, str]) -> list[tuple[str, dict]]:
    """Where values come from, lowest precedence first: SageMaker's file or SM_HPS, then flags."""
    sources: list[tuple[str, dict]] = []
    if run.hyperparameters_file is not None:  # strings, exactly as CreateTrainingJob got them
        try:
            values = json.loads(run.hyperparameters_file.read_text())
        except json.JSONDecodeError as err:
            raise UserError(f"{run.hyperparameters_file} is not valid JSON: {err}") from None
        sources.append((str(run.hyperparameters_file), values))
    elif run.typed_hyperparameters is not None:
        sources.append(("SM_HPS", run.typed_hyperparameters))
    if flags:
        sources.append(("the command line", flags))
    return sources


def start(argv: list[str] | None = None, manifest: Path | None = None) -> Run:
    """Read the environment, the manifest and the hyperparameters; handle SIGTERM.

    A bad manifest or hyperparameter writes the failure file and exits 1 here, before any
    data is read.
    """
    if not logging.getLogger().handlers:
        # Warnings from everyone; information only from the platform (converters are chatty).
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
        logging.getLogger("training").setLevel(logging.INFO)
    try:
        paths, rest = split_path_flags(sys.argv[1:] if argv is None else argv)
        env = resolve(paths)
    except UserError as err:  # no environment yet, so no failure file to write
        print(f"error: {err}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    try:
        loaded, _ = load_manifest(manifest or find_manifest(), check_name=False)
        declared = loaded.train.hyperparameters
        values = hp.resolve(declared, hyperparameter_sources(env, hp.parse_flags(rest)))
    except UserError as err:
        fail(env, err)
    return Run(env, loaded, values)


def fail(env: RunEnvironment, err: BaseException) -> NoReturn:
    """Report ``err`` (one line for a UserError), write the failure file, exit 1."""
    if isinstance(err, UserError):
        print(f"error: {err}", file=sys.stderr, flush=True)
    else:
        traceback.print_exception(err)
    write_failure(env, f"{type(err).__name__}: {err}")
    raise SystemExit(1)


class Run:
    """One training process: its paths, hyperparameters, checkpoints, logs and stop signal."""

    def __init__(self, env: RunEnvironment, manifest: ModelManifest, values: dict[str, Any]):
        self.env, self.manifest, self.hp = env, manifest, values
        self.name, self.task = manifest.name, manifest.task
        self.model_dir, self.output_data_dir = env.model_dir, env.output_data_dir
        self.checkpoint_dir = env.checkpoint_dir
        self.rank, self.local_rank, self.world_size = env.rank, env.local_rank, env.world_size
        self.is_main = env.is_main
        self.checkpoints = Checkpoints(env.checkpoint_dir, is_main=env.is_main)
        self.stopped = False
        self._signal = 0
        self._reads, self._agreed = 0, False
        self._bar: ProgressBar | None = None
        self._exported: dict[str, Any] = {}
        self._started = time.monotonic()
        self._tracker: Tracker | None = None
        if env.is_main:
            env.failure_file.unlink(missing_ok=True)  # an earlier attempt's reason, locally
            resume = env.checkpoint_dir.is_dir() and any(env.checkpoint_dir.iterdir())
            self._tracker = Tracker(env.model_dir, resume, values, manifest.name)
        signal.signal(signal.SIGTERM, self._on_sigterm)

    def channel(self, name: str) -> Path:
        """The directory of a channel declared in model.yaml; DatasetError if it is absent."""
        declared = self.manifest.train.channels
        if name not in declared:
            raise DatasetError(
                f"channel {name!r} is not declared in model.yaml ({', '.join(declared)})"
            )
        path = self.env.channel(name)
        if not path.is_dir():
            raise DatasetError(
                f"channel {name!r} has no data: {path} does not exist. Give it with "
                f"SM_CHANNEL_{name.upper()} or --channel-{name} DIR (the `{name}` directory "
                "that the model's prepare step writes)"
            )
        return path

    # --- stopping ---
    def _on_sigterm(self, signum: int, frame: object) -> None:
        # SageMaker and Kubernetes send SIGKILL some time after SIGTERM (120 s and the pod's
        # grace period): the handler only flags, the loop saves at the next step boundary.
        self._signal = signum

    @property
    def stop_requested(self) -> bool:
        """Whether to save and stop now. Under DDP read it at the same point on every rank:
        every 10th read is a collective, so that all ranks stop at the same step."""
        from training.checkpoint import process_group

        dist = process_group()
        if dist is None or self._agreed:
            return self._agreed or bool(self._signal)
        self._reads += 1
        if self._reads % STOP_SYNC_EVERY:
            return False
        import torch

        on_gpu = dist.get_backend() == "nccl"
        device = torch.device("cuda", torch.cuda.current_device()) if on_gpu else None
        flag = torch.tensor([1 if self._signal else 0], device=device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        self._agreed = bool(flag.item())
        return self._agreed

    def stop(self) -> None:
        """End the run as stopped: wait for the checkpoint, record why; exit 143 after the block.

        Export and finish do nothing after it: a stopped run is resumed, not published.
        """
        self.checkpoints.wait()
        if self.stopped:
            return
        self.stopped = True
        if self.is_main:
            where = f"{self.env.checkpoint_dir}, a restarted job resumes from it"
            step = self.checkpoints.last_saved_step
            reason = f"stopped by signal {self._signal or signal.SIGTERM} " + (
                f"at step {step}; checkpoint saved to {where}"
                if step is not None
                else f"before its checkpoints were saved by the library; the model's own, if any, are in {where}"
            )
            self._clear_bar()
            print(reason, flush=True)
            write_failure(self.env, reason)

    # --- reporting ---
    def log(self, **values: Any) -> None:
        """A `metric:` log line (SageMaker's regexes), a metrics.jsonl record, MLflow metrics."""
        if not self.is_main:
            return
        self._clear_bar()
        print(format_metrics(**values), flush=True)
        if self._tracker is not None:
            self._tracker.log(values)

    def progress(self, done: int, total: int, note: str = "") -> None:
        """A one-line progress bar, on a terminal only (never in SageMaker's or kubectl's log)."""
        if self.is_main:
            self._bar = self._bar or ProgressBar(total)
            self._bar.total = total
            self._bar.update(done, note)

    def _clear_bar(self) -> None:
        if self._bar is not None:
            self._bar.clear()

    def export(self, model: Any, **options: Any) -> dict[str, Any]:
        """Export ``model`` to the model directory with its framework's helper (rank 0 only).

        Options go to ``training.export.<framework>.export``: ``validation=(x, y)``, ``labels``,
        ``quantize``, ``tolerance``. The figures (accuracy deltas, sizes) go into metrics.json.
        """
        if not self.is_main or self.stopped:
            return {}
        from training.export import export_for

        exporter = export_for(model)
        options.setdefault("name", self.name)
        options.setdefault("task", self.task)
        options.setdefault("default_format", self.manifest.serve.format)
        self._clear_bar()
        self._exported.update(exporter(model, self.model_dir, **options))
        return dict(self._exported)

    def finish(self, **metrics: Any) -> dict[str, Any]:
        """Write metrics.json (these metrics, the export's figures, the run's facts)."""
        if not self.is_main or self.stopped:
            return {}
        self._clear_bar()
        final = plain({**metrics, **self._exported})
        numbers = {k: v for k, v in final.items() if isinstance(v, int | float)}
        if numbers:
            print(format_metrics(**numbers), flush=True)
        document = {
            **final,
            "model": self.name,
            "framework": self.manifest.framework,
            "hyperparameters": self.hp,
            "world_size": self.world_size,
            "seconds": round(time.monotonic() - self._started, 3),
        }
        self.model_dir.mkdir(parents=True, exist_ok=True)
        text = json.dumps(plain(document), indent=2, allow_nan=False)
        (self.model_dir / "metrics.json").write_text(text + "\n")
        print(f"model written to {self.model_dir}", flush=True)
        self._close("FINISHED", final)
        return document

    def _close(self, status: str, metrics: dict[str, Any] | None = None) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        if self._tracker is not None:
            self._tracker.finish(metrics or {}, self.model_dir if metrics else None, status)
            self._tracker = None

    # --- the block ---
    def __enter__(self) -> Run:
        return self

    def __exit__(self, kind: type | None, error: BaseException | None, tb: object) -> None:
        if error is None:
            self.checkpoints.wait()
            self._close("KILLED" if self.stopped else "FINISHED")
            if self.stopped:
                raise SystemExit(EXIT_STOPPED)
            return
        if isinstance(error, SystemExit | KeyboardInterrupt):
            self._close("KILLED")
            return
        self._close("FAILED")
        fail(self.env, error)
