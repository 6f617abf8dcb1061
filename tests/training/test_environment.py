"""The SageMaker, toolkit, torchrun and local contracts resolve to one RunEnvironment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.environment import resolve, split_path_flags
from training.errors import UserError


def _sagemaker_base(tmp_path: Path, hosts: list[str], current: str = "algo-1") -> Path:
    config = tmp_path / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps({"epochs": "2"}))
    (config / "resourceconfig.json").write_text(
        json.dumps({"current_host": current, "hosts": hosts, "network_interface_name": "eth1"})
    )
    return tmp_path


def test_the_sagemaker_layout_under_an_overridden_base_dir_gives_its_paths(tmp_path: Path) -> None:
    base = _sagemaker_base(tmp_path, ["algo-1", "algo-2"], current="algo-2")
    run = resolve(environ={"SAGEMAKER_BASE_DIR": str(base), "SM_NUM_GPUS": "0"})
    assert run.platform == "sagemaker"
    assert run.channel("train") == base / "input" / "data" / "train"
    assert run.channel("images") == base / "input" / "data" / "images"
    assert (run.model_dir, run.checkpoint_dir) == (base / "model", base / "checkpoints")
    assert run.failure_file == base / "output" / "failure"
    assert run.output_data_dir == base / "output" / "data"
    assert run.hyperparameters_file == base / "input" / "config" / "hyperparameters.json"
    assert run.hosts == ("algo-1", "algo-2") and run.current_host == "algo-2"
    assert run.network_interface == "eth1" and run.num_gpus == 0


def test_the_toolkits_sm_variables_win_over_the_layout(tmp_path: Path) -> None:
    base = _sagemaker_base(tmp_path, ["algo-1"])
    run = resolve(
        environ={
            "SAGEMAKER_BASE_DIR": str(base),
            "SM_MODEL_DIR": "/sm/model",
            "SM_CHANNEL_TRAIN": "/sm/train",
            "SM_CHANNEL_TRAIN_V2": "/sm/v2",
            "SM_CHANNELS": '["train", "train_v2"]',
            "SM_OUTPUT_DIR": "/sm/out",
            "SM_OUTPUT_DATA_DIR": "/sm/out/data",
            "SM_HOSTS": '["algo-1","algo-2"]',
            "SM_CURRENT_HOST": "algo-1",
            "SM_HPS": '{"epochs": 5}',
        }
    )
    assert (run.model_dir, run.output_dir, run.output_data_dir) == (
        Path("/sm/model"),
        Path("/sm/out"),
        Path("/sm/out/data"),
    )
    assert run.channels == {"train": Path("/sm/train"), "train_v2": Path("/sm/v2")}
    assert run.hosts == ("algo-1", "algo-2") and run.typed_hyperparameters == {"epochs": 5}


def test_flags_win_over_every_variable(tmp_path: Path) -> None:
    flags, rest = split_path_flags(
        ["--epochs", "3", "--model-dir", "/arg/model", "--channel-train=/arg/train", "-b", "2"]
    )
    assert rest == ["--epochs", "3", "-b", "2"]
    run = resolve(
        flags,
        environ={
            "SAGEMAKER_BASE_DIR": str(tmp_path),
            "SM_MODEL_DIR": "/sm/model",
            "SM_CHANNEL_TRAIN": "/sm/t",
        },
    )
    assert (run.model_dir, run.channel("train")) == (Path("/arg/model"), Path("/arg/train"))


def test_torchrun_variables_and_the_checkpoint_variable_configure_a_kubernetes_worker(
    tmp_path: Path,
) -> None:
    run = resolve(
        environ={
            "SAGEMAKER_BASE_DIR": str(tmp_path),
            "RANK": "3",
            "LOCAL_RANK": "1",
            "WORLD_SIZE": "4",
            "CHECKPOINT_DIR": "/mnt/ckpt",
        }
    )
    assert run.platform == "local"
    assert (run.rank, run.local_rank, run.world_size, run.is_main) == (3, 1, 4, False)
    assert run.checkpoint_dir == Path("/mnt/ckpt") and run.under_torchrun
    assert run.hyperparameters_file is None


def test_a_laptop_run_reads_data_and_writes_outputs_under_the_working_directory(
    tmp_path: Path,
) -> None:
    run = resolve(environ={"SAGEMAKER_BASE_DIR": str(tmp_path)})
    assert run.channel("train") == Path("data/train")
    assert (run.model_dir, run.output_dir) == (Path("outputs/model"), Path("outputs/output"))


def test_a_malformed_variable_is_a_readable_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="RANK='x' is not an integer"):
        resolve(environ={"SAGEMAKER_BASE_DIR": str(tmp_path), "RANK": "x"})
    with pytest.raises(UserError, match="SM_HPS is not valid JSON"):
        resolve(environ={"SAGEMAKER_BASE_DIR": str(tmp_path), "SM_HPS": "{epochs: 1"})
    with pytest.raises(UserError, match="--model-dir needs a directory"):
        split_path_flags(["--model-dir"])
