"""``python -m training train`` under the SageMaker contract, in a temporary /opt/ml."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from conftest import TrainingCli


def _opt_ml(root: Path, hyperparameters: dict[str, str], digits_dir: Path | None) -> Path:
    """A SageMaker container's /opt/ml as CreateTrainingJob lays it out."""
    config = root / "input" / "config"
    config.mkdir(parents=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters))
    (config / "resourceconfig.json").write_text(
        json.dumps(
            {"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"}
        )
    )
    (config / "inputdataconfig.json").write_text(
        json.dumps(
            {"training": {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated"}}
        )
    )
    if digits_dir:
        shutil.copytree(digits_dir, root / "input" / "data" / "training")
    return root


def test_a_sagemaker_job_reads_its_config_and_channel_and_writes_model_and_checkpoints(
    cli: TrainingCli, digits_dir: Path, tmp_path: Path
) -> None:
    base = _opt_ml(
        tmp_path,
        {
            "epochs": "1",
            "batch_size": "32",
            "quantize": "false",
            "sagemaker_program": "train",
            "sagemaker_region": "eu-west-1",
        },
        digits_dir,
    )
    result = cli.run("train", env=cli.env(SAGEMAKER_BASE_DIR=str(base)))
    assert result.returncode == 0, result.stderr

    metrics = json.loads((base / "model" / "metrics.json").read_text())
    assert metrics["hyperparameters"]["epochs"] == 1
    assert metrics["global_batch_size"] == 32 and metrics["steps"] == 1437 // 32
    assert {p.name for p in (base / "model").iterdir()} == {
        "model.pt",
        "model.json",
        "metrics.json",
    }
    assert sorted(p.name for p in (base / "checkpoints").iterdir())[-1] == "ckpt-00000044.pt"
    assert not (base / "output" / "failure").exists()


def test_bad_hyperparameters_fail_fast_with_the_reason_in_the_failure_file(
    cli: TrainingCli, tmp_path: Path
) -> None:
    base = _opt_ml(tmp_path, {"epochs": "ten"}, digits_dir=None)
    result = cli.run("train", env=cli.env(SAGEMAKER_BASE_DIR=str(base)))
    assert result.returncode == 1
    reason = (base / "output" / "failure").read_text()
    assert reason.startswith("HyperparameterError: hyperparameter 'epochs'")
    assert "'ten'" in reason and "hyperparameters.json" in reason
    assert "Traceback" not in result.stderr, "a person's mistake gets a message, not a trace"


def test_a_missing_channel_fails_with_a_reason_that_says_how_to_fix_it(
    cli: TrainingCli, tmp_path: Path
) -> None:
    base = _opt_ml(tmp_path, {"epochs": "1"}, digits_dir=None)
    result = cli.run("train", env=cli.env(SAGEMAKER_BASE_DIR=str(base)))
    assert result.returncode == 1
    reason = (base / "output" / "failure").read_text()
    assert "input/data/training" in reason and "python -m training prepare" in reason


def test_command_line_hyperparameters_override_the_file_and_typos_are_refused(
    cli: TrainingCli, tmp_path: Path
) -> None:
    base = _opt_ml(tmp_path, {"epochs": "1"}, digits_dir=None)
    result = cli.run(
        "train", "--epochs", "2", "--lerning-rate", "0.1", env=cli.env(SAGEMAKER_BASE_DIR=str(base))
    )
    assert result.returncode == 1
    assert "unknown hyperparameter 'lerning-rate' in the command line" in result.stderr


def test_prepare_writes_a_dataset_that_train_accepts(cli: TrainingCli, tmp_path: Path) -> None:
    result = cli.run(
        "prepare",
        "--dataset",
        "synthetic",
        "--samples",
        "300",
        "--image-size",
        "10",
        "--out",
        str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["image_shape"] == [1, 10, 10] and manifest["splits"]["train"] == 240
    assert f"sha256 {manifest['sha256']}" in result.stdout


def test_an_unknown_command_prints_usage(cli: TrainingCli) -> None:
    result = cli.run("serve")
    assert result.returncode == 2 and "usage: python -m training {prepare,train}" in result.stderr


def test_a_batch_larger_than_the_dataset_is_refused_with_the_sizes_involved(
    cli: TrainingCli, digits_dir: Path, tmp_path: Path
) -> None:
    run = cli.dirs(tmp_path)
    result = cli.run("train", "--data-dir", str(digits_dir), "--batch_size", "5000", *run.args())
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "'batch_size': got 5000" in result.stderr and "1437 training samples" in result.stderr
    assert "batch_size" in (run.output_dir / "failure").read_text()
