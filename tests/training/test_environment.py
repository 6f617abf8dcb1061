"""The SageMaker and torchrun contracts resolve to the same RunEnvironment."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from training.environment import RunEnvironment, launch_command, resolve


def _sagemaker_base(tmp_path: Path, hosts: list[str], current: str = "algo-1") -> Path:
    config = tmp_path / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps({"epochs": "2"}))
    (config / "resourceconfig.json").write_text(
        json.dumps({"current_host": current, "hosts": hosts, "network_interface_name": "eth1"})
    )
    return tmp_path


def test_sagemaker_layout_under_an_overridden_base_dir_gives_its_paths(tmp_path: Path) -> None:
    base = _sagemaker_base(tmp_path, ["algo-1", "algo-2"], current="algo-2")
    run = resolve(environ={"SAGEMAKER_BASE_DIR": str(base), "SM_NUM_GPUS": "0"})
    assert run.platform == "sagemaker"
    assert run.data_dir == base / "input" / "data" / "training"
    assert run.model_dir == base / "model"
    assert run.checkpoint_dir == base / "checkpoints"
    assert run.failure_file == base / "output" / "failure"
    assert run.hyperparameters_file == base / "input" / "config" / "hyperparameters.json"
    assert run.hosts == ("algo-1", "algo-2") and run.current_host == "algo-2"
    assert run.network_interface == "eth1"


def test_sm_variables_win_over_the_file_layout(tmp_path: Path) -> None:
    base = _sagemaker_base(tmp_path, ["algo-1"])
    run = resolve(
        environ={
            "SAGEMAKER_BASE_DIR": str(base),
            "SM_MODEL_DIR": "/sm/model",
            "SM_CHANNEL_TRAINING": "/sm/train",
            "SM_OUTPUT_DIR": "/sm/out",
            "SM_NUM_GPUS": "0",
            "SM_HOSTS": '["algo-1","algo-2"]',
            "SM_CURRENT_HOST": "algo-1",
        }
    )
    assert (run.model_dir, run.data_dir, run.output_dir) == (
        Path("/sm/model"),
        Path("/sm/train"),
        Path("/sm/out"),
    )
    assert run.hosts == ("algo-1", "algo-2")


def test_torchrun_variables_and_generic_paths_configure_a_kubernetes_worker(
    tmp_path: Path,
) -> None:
    run = resolve(
        environ={
            "SAGEMAKER_BASE_DIR": str(tmp_path),
            "RANK": "3",
            "LOCAL_RANK": "1",
            "WORLD_SIZE": "4",
            "DATA_DIR": "/mnt/data",
            "MODEL_DIR": "/mnt/model",
            "CHECKPOINT_DIR": "/mnt/ckpt",
            "SM_NUM_GPUS": "2",
        }
    )
    assert run.platform == "local"
    assert (run.rank, run.local_rank, run.world_size, run.is_main) == (3, 1, 4, False)
    assert (run.data_dir, run.model_dir, run.checkpoint_dir) == (
        Path("/mnt/data"),
        Path("/mnt/model"),
        Path("/mnt/ckpt"),
    )
    assert run.hyperparameters_file is None


def test_explicit_arguments_win_over_every_variable(tmp_path: Path) -> None:
    run = resolve(
        model_dir="/arg/model",
        environ={
            "SAGEMAKER_BASE_DIR": str(tmp_path),
            "SM_MODEL_DIR": "/sm/model",
            "SM_NUM_GPUS": "0",
        },
    )
    assert run.model_dir == Path("/arg/model")


def _run(**kw: object) -> RunEnvironment:
    defaults = dict(
        platform="sagemaker",
        data_dir=Path("d"),
        model_dir=Path("m"),
        checkpoint_dir=Path("c"),
        output_dir=Path("o"),
    )
    return RunEnvironment(**{**defaults, **kw})


def test_a_multi_host_gpu_sagemaker_job_relaunches_itself_under_torchrun() -> None:
    run = _run(hosts=("algo-1", "algo-2"), current_host="algo-2", num_gpus=4)
    assert launch_command(run, ["train", "--epochs", "3"]) == [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node=4",
        "--nnodes=2",
        "--node-rank=1",
        "--master-addr=algo-1",
        "--master-port=7777",
        "-m",
        "training",
        "train",
        "--epochs",
        "3",
    ]


def test_a_single_host_multi_gpu_job_uses_a_standalone_rendezvous() -> None:
    command = launch_command(_run(hosts=("algo-1",), current_host="algo-1", num_gpus=8), ["train"])
    assert command is not None and "--standalone" in command and "--nproc-per-node=8" in command


def test_one_process_jobs_and_runs_already_under_torchrun_are_not_relaunched() -> None:
    assert launch_command(_run(hosts=("algo-1",), current_host="algo-1", num_gpus=1), []) is None
    assert launch_command(_run(hosts=("a", "b"), current_host="a", world_size=2), []) is None
    assert launch_command(_run(platform="local", hosts=("a",), num_gpus=4), []) is None
