"""Where a run reads and writes and its place in the job: SageMaker, torchrun, EKS, a laptop.

SageMaker (``SAGEMAKER_BASE_DIR``, default /opt/ml)::

    {base}/input/config/hyperparameters.json   hyperparameters, every value a string
    {base}/input/config/resourceconfig.json    current_host, hosts, network_interface_name
    {base}/input/data/<channel>                 one directory per channel
    {base}/model, {base}/output/failure, {base}/output/data, {base}/checkpoints

The SageMaker training toolkit, the platform's launcher and the EKS runtime also set ``SM_*``
variables (``SM_MODEL_DIR``, ``SM_CHANNEL_<NAME>``, ``SM_HPS``, ...), which win over the layout;
explicit flags (``--model-dir``, ``--channel-train``) win over both. torchrun adds RANK,
WORLD_SIZE and LOCAL_RANK. With none of these, a run writes under ./outputs and reads ./data.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from training.errors import UserError

DEFAULT_BASE = "/opt/ml"
FAILURE_LIMIT = 1024  # DescribeTrainingJob shows this many characters of the failure file
# Flags for paths (hyphens: hyperparameter names never have one) and the variables behind them.
PATH_FLAGS = {
    "model-dir": "SM_MODEL_DIR",
    "output-dir": "SM_OUTPUT_DIR",
    "output-data-dir": "SM_OUTPUT_DATA_DIR",
    "checkpoint-dir": "CHECKPOINT_DIR",  # SageMaker has no variable: CheckpointConfig.LocalPath
}
CHANNEL_FLAG = "channel-"  # --channel-<name> DIR -> SM_CHANNEL_<NAME>


@dataclass(frozen=True)
class RunEnvironment:
    """Paths, hyperparameter sources and ranks of one training process."""

    platform: str  # "sagemaker" (the /opt/ml layout is there) or "local"
    model_dir: Path
    output_dir: Path
    output_data_dir: Path
    checkpoint_dir: Path
    channels: dict[str, Path] = field(default_factory=dict)  # given explicitly or by SM_*
    data_root: Path = Path("data")  # where an unlisted channel <name> is looked for
    hyperparameters_file: Path | None = None  # SageMaker's hyperparameters.json
    typed_hyperparameters: dict | None = None  # SM_HPS
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    hosts: tuple[str, ...] = ()
    current_host: str = ""
    network_interface: str = ""
    num_gpus: int | None = None  # SM_NUM_GPUS when set; counted only if a launch needs it

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def failure_file(self) -> Path:
        return self.output_dir / "failure"

    @property
    def under_torchrun(self) -> bool:
        return self.world_size > 1 or "TORCHELASTIC_RUN_ID" in os.environ

    def channel(self, name: str) -> Path:
        """The directory of channel ``name`` (it may not exist: the caller says what to do)."""
        return self.channels.get(name, self.data_root / name)


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    value = environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise UserError(f"environment variable {name}={value!r} is not an integer") from None


def _json(text: str, what: str) -> object:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise UserError(f"{what} is not valid JSON: {err}") from None


def split_path_flags(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    """Take ``--model-dir X``, ``--channel-train Y`` … out of argv; the rest are hyperparameters."""
    paths: dict[str, str] = {}
    rest: list[str] = []
    i = 0
    while i < len(argv):
        key, _, inline = argv[i].lstrip("-").partition("=")
        if argv[i].startswith("--") and (key in PATH_FLAGS or key.startswith(CHANNEL_FLAG)):
            if inline:
                paths[key], i = inline, i + 1
                continue
            if i + 1 >= len(argv):
                raise UserError(f"{argv[i]} needs a directory")
            paths[key], i = argv[i + 1], i + 2
            continue
        rest.append(argv[i])
        i += 1
    return paths, rest


def resolve(
    flags: Mapping[str, str] | None = None, environ: Mapping[str, str] | None = None
) -> RunEnvironment:
    """The run's environment: flags win, then SM_* variables, then the /opt/ml layout."""
    env = os.environ if environ is None else environ
    flags = flags or {}
    base = Path(env.get("SAGEMAKER_BASE_DIR", DEFAULT_BASE))
    config = base / "input" / "config"
    on_sagemaker = (config / "hyperparameters.json").is_file() or (
        config / "resourceconfig.json"
    ).is_file()
    local = Path("outputs")

    def pick(flag: str, sagemaker: Path, fallback: Path) -> Path:
        value = flags.get(flag) or env.get(PATH_FLAGS[flag])
        if value:
            return Path(value)
        return sagemaker if on_sagemaker else fallback

    output_dir = pick("output-dir", base / "output", local / "output")
    channels = {
        key.removeprefix("SM_CHANNEL_").lower(): Path(value)
        for key, value in env.items()
        if key.startswith("SM_CHANNEL_") and key != "SM_CHANNELS" and value
    }
    channels.update(
        {
            k.removeprefix(CHANNEL_FLAG): Path(v)
            for k, v in flags.items()
            if k.startswith(CHANNEL_FLAG)
        }
    )

    hosts: tuple[str, ...] = ()
    current_host = env.get("SM_CURRENT_HOST", "")
    interface = env.get("SM_NETWORK_INTERFACE_NAME", "")
    if (config / "resourceconfig.json").is_file():
        resources = _json((config / "resourceconfig.json").read_text(), "resourceconfig.json")
        assert isinstance(resources, dict)
        hosts = tuple(resources.get("hosts", ()))
        current_host = current_host or resources.get("current_host", "")
        interface = interface or resources.get("network_interface_name", "")
    if env.get("SM_HOSTS"):
        hosts = tuple(_json(env["SM_HOSTS"], "SM_HOSTS"))  # type: ignore[arg-type]
    current_host = current_host or socket.gethostname()
    typed = _json(env["SM_HPS"], "SM_HPS") if env.get("SM_HPS") else None
    if typed is not None and not isinstance(typed, dict):
        raise UserError(f"SM_HPS must hold a JSON object, got {type(typed).__name__}")
    hp_file = config / "hyperparameters.json"
    return RunEnvironment(
        platform="sagemaker" if on_sagemaker else "local",
        model_dir=pick("model-dir", base / "model", local / "model"),
        output_dir=output_dir,
        output_data_dir=pick("output-data-dir", base / "output" / "data", output_dir / "data"),
        checkpoint_dir=pick("checkpoint-dir", base / "checkpoints", local / "checkpoints"),
        channels=channels,
        data_root=base / "input" / "data" if on_sagemaker else Path("data"),
        hyperparameters_file=hp_file if hp_file.is_file() else None,
        typed_hyperparameters=typed,
        rank=_int(env, "RANK", 0),
        local_rank=_int(env, "LOCAL_RANK", 0),
        world_size=_int(env, "WORLD_SIZE", 1),
        hosts=hosts or (current_host,),
        current_host=current_host,
        network_interface=interface,
        num_gpus=_int(env, "SM_NUM_GPUS", 0) if env.get("SM_NUM_GPUS") else None,
    )


def write_failure(run: RunEnvironment, message: str) -> None:
    """Record why the run failed where SageMaker (and a person) will look for it."""
    try:
        run.output_dir.mkdir(parents=True, exist_ok=True)
        run.failure_file.write_text(message[:FAILURE_LIMIT] + "\n")
    except OSError as err:
        print(f"could not write {run.failure_file}: {err}", file=sys.stderr)
