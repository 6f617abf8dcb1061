"""A model runs unchanged under AWS's own launcher: the sagemaker-training toolkit, script mode.

This is what AWS's framework containers (the Deep Learning Containers) run: the toolkit's
`train` command unpacks `sagemaker_submit_directory` (the SDK's sourcedir.tar.gz) into
<base>/code, sets the SM_* variables, and runs `sagemaker_program` with the hyperparameters as
flags. A SageMaker-style base directory under tmp stands in for /opt/ml.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODEL = REPO / "models" / "breast-cancer"
TRAIN = Path(sys.executable).parent / "train"  # the toolkit's console script


def _sdk_encoded(values: dict[str, object]) -> dict[str, str]:
    """Hyperparameters as the SageMaker Python SDK's framework estimators send them."""
    return {key: json.dumps(value) for key, value in values.items()}


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory, python) -> tuple[Path, Path]:
    """The model's prepared train channel and its sourcedir.tar.gz, as the SDK uploads it."""
    root = tmp_path_factory.mktemp("toolkit-sources")
    assert python(str(MODEL / "prepare.py"), "--out", str(root / "prepared")).returncode == 0
    sourcedir = root / "sourcedir.tar.gz"
    with tarfile.open(sourcedir, "w:gz") as tar:
        for path in sorted(MODEL.iterdir()):
            # Not requirements.txt: the toolkit would pip-install it into the project's venv.
            if path.is_file() and path.name != "requirements.txt":
                tar.add(path, arcname=path.name)
    return root / "prepared" / "train", sourcedir


@pytest.fixture
def opt_ml(tmp_path: Path, sources: tuple[Path, Path], env):
    """Build <base> for a job with the given hyperparameters; returns (base, environment)."""
    train_channel, sourcedir = sources

    def build(hyperparameters: dict[str, object]) -> tuple[Path, dict[str, str]]:
        base = tmp_path / "opt-ml"
        config = base / "input" / "config"
        config.mkdir(parents=True)
        sdk = {
            "sagemaker_program": "train.py",
            "sagemaker_submit_directory": str(sourcedir),
            "sagemaker_region": "us-east-1",
            "sagemaker_job_name": "breast-cancer-1",
        }
        (config / "hyperparameters.json").write_text(
            json.dumps(_sdk_encoded({**sdk, **hyperparameters}))
        )
        (config / "resourceconfig.json").write_text(
            json.dumps(
                {"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"}
            )
        )
        (config / "inputdataconfig.json").write_text(
            json.dumps(
                {"train": {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated"}}
            )
        )
        (base / "input" / "data").mkdir()
        shutil.copytree(train_channel, base / "input" / "data" / "train")
        # SageMaker creates these; without output/ the toolkit exits 0 after a failed script.
        (base / "model").mkdir()
        (base / "output").mkdir()
        # SM_STUDIO_LOCAL_MODE: skip the wait for every host's DNS name (algo-1 resolves nowhere).
        return base, env(SAGEMAKER_BASE_DIR=str(base), SM_STUDIO_LOCAL_MODE="true")

    return build


def test_the_toolkit_runs_the_model_in_script_mode_and_it_writes_model_and_metrics(opt_ml) -> None:
    base, environment = opt_ml({"estimator": "logistic", "max_iter": 500, "c": 0.5})
    result = subprocess.run(
        [str(TRAIN)], env=environment, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert (base / "code" / "train.py").is_file(), "the toolkit unpacked the sourcedir"
    assert (base / "output" / "success").exists()
    metrics = json.loads((base / "model" / "metrics.json").read_text())
    assert metrics["hyperparameters"]["c"] == 0.5 and metrics["hyperparameters"]["max_iter"] == 500
    assert metrics["validation_accuracy"] >= 0.9 and metrics["onnx_accuracy_delta"] == 0.0
    assert {"model.json", "model.onnx", "handler.py", "model.joblib"} <= {
        p.name for p in (base / "model").iterdir()
    }
    assert "metric: validation_accuracy=" in result.stdout + result.stderr


def test_bad_hyperparameters_under_the_toolkit_leave_a_readable_failure_reason(opt_ml) -> None:
    base, environment = opt_ml({"estimator": "svm", "max_itr": 5})
    result = subprocess.run(
        [str(TRAIN)], env=environment, capture_output=True, text=True, timeout=300
    )
    assert result.returncode != 0
    reason = (base / "output" / "failure").read_text()
    # The script's own reason, not the toolkit's "ExecuteUserScriptError: ExitCode 1": the
    # toolkit writes its failure file only where the script left none.
    assert reason.startswith("HyperparameterError: hyperparameter 'estimator' (from ")
    assert "got 'svm', want one of logistic, gradient_boosting" in reason
    assert "'max_itr'" in reason and "did you mean 'max_iter'?" in reason
    assert len(reason) <= 1025, "SageMaker shows the first 1,024 characters as FailureReason"
