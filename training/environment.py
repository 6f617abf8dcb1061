"""The two runtime contracts (SageMaker and torchrun/Kubernetes) reduced to one RunEnvironment.

SageMaker (bring-your-own container, started as ``docker run IMAGE train``):
    {base}/input/config/hyperparameters.json   hyperparameters, every value a string
    {base}/input/config/resourceconfig.json    current_host, hosts, network_interface_name
    {base}/input/data/<channel>                 the prepared dataset (channel 'training')
    {base}/model, {base}/output/failure, {base}/checkpoints
with ``base`` = $SAGEMAKER_BASE_DIR or /opt/ml. ``SM_*`` variables win when the SageMaker
training toolkit set them.

torchrun / Kubernetes: RANK, WORLD_SIZE, LOCAL_RANK (MASTER_ADDR/PORT are read by
``init_process_group``); paths from --data-dir etc. or DATA_DIR, MODEL_DIR, CHECKPOINT_DIR,
OUTPUT_DIR, else ./outputs/ for a developer's run.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_BASE = "/opt/ml"
CHANNEL = "training"
# The port the SageMaker PyTorch toolkit uses for its own torchrun launches.
SAGEMAKER_MASTER_PORT = 7777
FAILURE_LIMIT = 1024  # DescribeTrainingJob shows this many characters of the failure file


@dataclass(frozen=True)
class RunEnvironment:
    """Where a run reads and writes, its hyperparameters, and its place in the job."""

    platform: str  # "sagemaker" or "local" (torchrun, Kubernetes, a laptop)
    data_dir: Path
    model_dir: Path
    checkpoint_dir: Path
    output_dir: Path
    hyperparameters_file: Path | None = None  # SageMaker's hyperparameters.json
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


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    value = environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err


def _count_gpus() -> int:
    import torch  # here, not at the top: a bad hyperparameter should fail in milliseconds

    return torch.cuda.device_count()


def resolve(
    data_dir: str | None = None,
    model_dir: str | None = None,
    checkpoint_dir: str | None = None,
    output_dir: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> RunEnvironment:
    """Work out the run's environment; explicit arguments win, then SM_*, then generic variables."""
    env = os.environ if environ is None else environ
    base = Path(env.get("SAGEMAKER_BASE_DIR", DEFAULT_BASE))
    config_dir = base / "input" / "config"
    on_sagemaker = (config_dir / "hyperparameters.json").is_file() or (
        config_dir / "resourceconfig.json"
    ).is_file()

    def pick(arg: str | None, names: tuple[str, ...], sagemaker: Path, local: str) -> Path:
        for value in (arg, *(env.get(n) for n in names)):
            if value:
                return Path(value)
        return sagemaker if on_sagemaker else Path(local)

    hp_file = config_dir / "hyperparameters.json"
    hosts: tuple[str, ...] = ()
    current_host = env.get("SM_CURRENT_HOST", "")
    interface = env.get("SM_NETWORK_INTERFACE_NAME", "")
    if on_sagemaker:
        rc_path = config_dir / "resourceconfig.json"
        if rc_path.is_file():
            resources = _read_json(rc_path)
            hosts = tuple(resources.get("hosts", ()))
            current_host = current_host or resources.get("current_host", "")
            interface = interface or resources.get("network_interface_name", "")
    if "SM_HOSTS" in env:
        hosts = tuple(json.loads(env["SM_HOSTS"]))
    current_host = current_host or socket.gethostname()
    hosts = hosts or (current_host,)

    return RunEnvironment(
        platform="sagemaker" if on_sagemaker else "local",
        data_dir=pick(
            data_dir,
            (f"SM_CHANNEL_{CHANNEL.upper()}", "DATA_DIR"),
            base / "input" / "data" / CHANNEL,
            "data",
        ),
        model_dir=pick(model_dir, ("SM_MODEL_DIR", "MODEL_DIR"), base / "model", "outputs/model"),
        checkpoint_dir=pick(
            checkpoint_dir, ("CHECKPOINT_DIR",), base / "checkpoints", "outputs/checkpoints"
        ),
        output_dir=pick(
            output_dir, ("SM_OUTPUT_DIR", "OUTPUT_DIR"), base / "output", "outputs/output"
        ),
        hyperparameters_file=hp_file if hp_file.is_file() else None,
        rank=_int(env, "RANK", 0),
        local_rank=_int(env, "LOCAL_RANK", 0),
        world_size=_int(env, "WORLD_SIZE", 1),
        hosts=hosts,
        current_host=current_host,
        network_interface=interface,
        num_gpus=int(env["SM_NUM_GPUS"]) if env.get("SM_NUM_GPUS") else None,
    )


def launch_command(run: RunEnvironment, argv: list[str]) -> list[str] | None:
    """The torchrun command that fans a SageMaker job out to every GPU and host, or None.

    SageMaker starts one container per host with no launcher; the same image then re-executes
    itself under torchrun, one process per GPU, host 0 as the rendezvous master.
    """
    if run.platform != "sagemaker" or run.under_torchrun:
        return None
    procs = max(_count_gpus() if run.num_gpus is None else run.num_gpus, 1)
    if len(run.hosts) == 1 and procs == 1:
        return None
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={procs}"]
    if len(run.hosts) == 1:
        command.append("--standalone")
    else:
        command += [
            f"--nnodes={len(run.hosts)}",
            f"--node-rank={run.hosts.index(run.current_host)}",
            f"--master-addr={run.hosts[0]}",
            f"--master-port={SAGEMAKER_MASTER_PORT}",
        ]
    return [*command, "-m", "training", *argv]


def launch_environment(run: RunEnvironment) -> dict[str, str]:
    """Variables for the torchrun launch: NCCL must use the interface SageMaker names."""
    env = dict(os.environ)
    if run.network_interface:
        env.setdefault("NCCL_SOCKET_IFNAME", run.network_interface)
    return env


def write_failure(run: RunEnvironment, message: str) -> None:
    """Record why the run failed where SageMaker (and a person) will look for it."""
    try:
        run.output_dir.mkdir(parents=True, exist_ok=True)
        run.failure_file.write_text(message[:FAILURE_LIMIT] + "\n")
    except OSError as err:
        print(f"could not write {run.failure_file}: {err}", file=sys.stderr)
