"""`mlplatform run --model NAME`: the local loop for any model, driven by its manifest alone.

    1 prepare   python -m training prepare --model DIR --out W/data        (train + test channels)
    2 train     python -m training launch --model DIR --channel-<c> W/data/<c> ...
    3 export    what train.py exported through the library (W/model); the training curve PNG
    4 evaluate  python -m serving evaluate on the test channel, which training never reads
    5 serve     the platform's server on 127.0.0.1 (serving.local.LocalServer)
    6 predict   POST the model's example request (serve.example) to /invocations

Each step is a process started through the entry points the images run, so what works here
works in a training job and behind an endpoint. Nothing here names a model: hyperparameters come
from model.yaml, then the stack's entry for the model, then `--epochs` (local_model.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.stackfile import PROJECT_ROOT, display_path
from mlplatform import example
from mlplatform.local_model import LocalModel, RunError

STEPS = 6


class Progress:
    """`==> 3/6 title` lines, numbered on from `first` (the demo plans first), and the time
    each step took."""

    def __init__(self, total: int = STEPS, first: int = 1) -> None:
        self.total, self.number = total, first - 1
        self.started = self.last = time.monotonic()
        self.times: list[tuple[str, float]] = []

    def step(self, title: str) -> None:
        self._close()
        self.number += 1
        self.times.append((title.split()[0].rstrip(":").lower(), 0.0))
        print(f"\n==> {self.number}/{self.total} {title}", flush=True)

    def _close(self) -> None:
        now = time.monotonic()
        if self.times:
            self.times[-1] = (self.times[-1][0], now - self.last)
        self.last = now

    def summary(self) -> str:
        """`done in 21.3 s (prepare 2.1 s, train 9.8 s, ...)`"""
        self._close()
        steps = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in self.times)
        return f"done in {time.monotonic() - self.started:.1f} s ({steps})"


@dataclass(frozen=True)
class Workdir:
    """Where a local run puts its files."""

    root: Path

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def model(self) -> Path:
        return self.root / "model"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def output(self) -> Path:
        return self.root / "output"

    @property
    def evaluation(self) -> Path:
        return self.root / "evaluation.json"

    @property
    def curve(self) -> Path:
        return self.root / "training-curve.png"


@dataclass(frozen=True)
class RunResult:
    """What a local run left behind, and what the model answered."""

    workdir: Workdir
    evaluation: dict[str, Any]
    curve: Path | None
    served_format: str  # the format of the variant the server loaded (model.json's default)
    predictions: list[Any]


def _env() -> dict[str, str]:
    """This process's environment, with the project importable wherever the command runs."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    return env


def _shown(command: list[str]) -> str:
    return shlex.join(["python" if c == sys.executable else c for c in command])


def _run(step: str, command: list[str]) -> None:
    """One step's command, its output to this terminal; RunError names it if it fails."""
    print(f"$ {_shown(command)}", flush=True)
    done = subprocess.run(command, env=_env(), cwd=PROJECT_ROOT, check=False)
    if done.returncode != 0:
        raise RunError(f"step {step} failed: `{_shown(command)}` exited with {done.returncode}")


def prepare(model: LocalModel, w: Workdir) -> None:
    channels = [*model.manifest.train.channels, "test"]
    if model.manifest.prepare is None:
        missing = [c for c in channels if not (w.data / c / "manifest.json").is_file()]
        if missing:
            raise RunError(
                f"{model.name} has no prepare step in model.yaml; put its prepared channels "
                f"({', '.join(missing)}) in {w.data} (docs/models.md: the prepared format)"
            )
        print(f"{model.name} has no prepare step: training on the channels in {w.data}")
        return
    python, directory = sys.executable, str(model.directory)
    _run(
        "prepare", [python, "-m", "training", "prepare", "--model", directory, "--out", str(w.data)]
    )
    missing = [c for c in channels if not (w.data / c).is_dir()]
    if missing:
        raise RunError(
            f"step prepare: {model.name}'s prepare step wrote no channel {', '.join(missing)} "
            f"in {w.data} (training.data.write_prepared writes train and test)"
        )


def train(model: LocalModel, w: Workdir) -> None:
    command = [sys.executable, "-m", "training", "launch", "--model", str(model.directory)]
    for channel in model.manifest.train.channels:
        command += [f"--channel-{channel}", str(w.data / channel)]
    command += ["--model-dir", str(w.model), "--checkpoint-dir", str(w.checkpoints),
                "--output-dir", str(w.output), *model.flags()]  # fmt: skip
    _run("train", command)


def export_summary(model: LocalModel, w: Workdir) -> Path | None:
    """Print the exported variants; draw the training curve (None with nothing per epoch)."""
    from training.errors import UserError
    from training.plots import training_curve

    if not (w.model / "model.json").is_file():
        raise RunError(
            f"step export: {w.model} holds no model.json; train.py must call run.export(...)"
        )
    spec = json.loads((w.model / "model.json").read_text())
    for name, variant in spec.get("variants", {}).items():
        print(f"  {name:<8} {variant['format']:<22} {w.model / variant['path']}")
    try:
        png = training_curve(w.model / "metrics.jsonl", w.curve, title=model.name)
    except (UserError, OSError) as error:
        print(f"no training curve: {error}")
        return None
    print(f"training curve: {png}")
    return png


def evaluate(model: LocalModel, w: Workdir) -> dict[str, Any]:
    """The pipeline's Evaluate step on the export: every variant it ships, on the test channel."""
    _run("evaluate", [sys.executable, "-m", "serving", "evaluate", "--model-dir",
                      str(w.model), "--data-dir", str(w.data / "test"),
                      "--out", str(w.evaluation)])  # fmt: skip
    evaluation = json.loads(w.evaluation.read_text())
    objective = model.manifest.train.objective
    value = evaluation["metrics"].get(objective.metric, {}).get("value")
    if value is not None and objective.threshold is not None:
        low = objective.goal == "minimize"
        passes = value <= objective.threshold if low else value >= objective.threshold
        print(
            f"objective: {objective.metric} {value:.4f} {'<=' if low else '>='} "
            f"{objective.threshold:g}? {'yes' if passes else 'no'}: the pipeline would "
            f"{'register' if passes else 'not register'} this model"
        )
    return evaluation


def _predict(url: str, request: example.ExampleRequest) -> list[Any]:
    try:
        return example.post(f"{url}/invocations", request)
    except example.PredictionError as error:
        raise RunError(f"step predict: {error}") from None


def serve_and_predict(
    model: LocalModel, w: Workdir, sample: int | None, progress: Progress
) -> tuple[str, list[Any]]:
    from serving.local import LocalServer

    progress.step(f"Serve {model.name} with the platform's server on 127.0.0.1")
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(LocalServer(w.model))
        except RuntimeError as error:
            raise RunError(f"step serve: {error}") from None
        served_format = str(json.loads((w.model / "model.json").read_text()).get("format"))
        print(f"serving {w.model} ({served_format}) at {server.url}")
        request = example.example_request(model.directory, model.manifest)
        progress.step(f"Predict: POST the example request {display_path(request.source)}")
        print(f"POST {server.url}/invocations  Content-Type: {request.content_type}")
        predictions = _predict(server.url, request)
        for prediction in predictions:
            print(f"prediction: {example.describe(prediction)}")
        if sample is not None:
            held_out, truth = example.held_out_request(w.data / "test", sample)
            (answer,) = _predict(server.url, held_out)
            label = answer.get("label") if isinstance(answer, dict) else None
            shown = label if label is not None else example.describe(answer)
            print(f"held-out test sample #{sample}: prediction {shown} (true label: {truth})")
    return served_format, predictions


def run_model(
    model: LocalModel,
    workdir: Path,
    *,
    sample: int | None = None,
    fresh: bool = False,
    progress: Progress | None = None,
) -> RunResult:
    """Prepare, train, export, evaluate, serve and predict; RunError names a failing step."""
    progress = progress or Progress()
    w = Workdir(workdir.resolve())
    if fresh and w.root.exists():
        shutil.rmtree(w.root)
    w.root.mkdir(parents=True, exist_ok=True)
    progress.step(f"Prepare {model.name}: its prepare step writes the train and test channels")
    prepare(model, w)
    progress.step(f"Train {model.name} ({model.manifest.framework}), resuming from its checkpoints")
    print(model.hyperparameter_summary())
    train(model, w)
    progress.step("Export: what train.py wrote through the training library")
    curve = export_summary(model, w)
    progress.step("Evaluate on the held-out test channel, which training never reads")
    evaluation = evaluate(model, w)
    served_format, predictions = serve_and_predict(model, w, sample, progress)
    figures = ", ".join(f"{k} {v['value']:.4f}" for k, v in evaluation["metrics"].items())
    print(f"\n{progress.summary()}")
    print(f"  model           {w.model}")
    print(f"  training curve  {curve or 'none (no per-epoch loss or accuracy in metrics.jsonl)'}")
    print(f"  evaluation      {w.evaluation} ({figures})")
    return RunResult(w, evaluation, curve, served_format, predictions)
