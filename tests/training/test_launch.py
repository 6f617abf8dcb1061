"""The launcher (`python -m training launch`, the images' `train`): find, check, fan out, exec."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from training.environment import RunEnvironment
from training.launch import entry_command, launch_command, platform_variables
from training.manifest import load_manifest

TORCHRUN = """\
name: m
framework: pytorch
task: classification
train:
  distribution: torchrun
  hyperparameters: {epochs: {type: int, default: 2}}
  objective: {metric: accuracy}
"""


def _run(**kw: object) -> RunEnvironment:
    paths = dict(
        model_dir=Path("/m"),
        output_dir=Path("/o"),
        output_data_dir=Path("/o/d"),
        checkpoint_dir=Path("/c"),
    )
    return RunEnvironment(**{"platform": "sagemaker", **paths, **kw})


def test_a_multi_host_gpu_job_relaunches_the_entry_point_under_torchrun(model_dir) -> None:
    manifest, _ = load_manifest(model_dir("m", TORCHRUN))
    run = _run(hosts=("algo-1", "algo-2"), current_host="algo-2", num_gpus=4)
    assert launch_command(run, manifest, [sys.executable, "train.py"]) == [
        sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=4", "--nnodes=2",
        "--node-rank=1", "--master-addr=algo-1", "--master-port=7777", "train.py",
    ]  # fmt: skip


def test_a_single_host_multi_gpu_job_uses_a_standalone_rendezvous(model_dir) -> None:
    manifest, _ = load_manifest(model_dir("m", TORCHRUN))
    command = launch_command(
        _run(hosts=("algo-1",), current_host="algo-1", num_gpus=8),
        manifest,
        [sys.executable, "-m", "pkg.train"],
    )
    assert command[3:] == ["--nproc-per-node=8", "--standalone", "-m", "pkg.train"]
    shell = launch_command(
        _run(hosts=("a",), current_host="a", num_gpus=2), manifest, ["bash", "run.sh"]
    )
    assert shell[-3:] == ["--no-python", "bash", "run.sh"]


def test_one_process_jobs_runs_under_torchrun_and_models_without_torchrun_are_not_fanned_out(
    model_dir,
) -> None:
    manifest, _ = load_manifest(model_dir("m", TORCHRUN))
    plain, _ = load_manifest(
        model_dir("p", TORCHRUN.replace("name: m", "name: p").replace("torchrun", "none"))
    )
    command = [sys.executable, "train.py"]
    assert (
        launch_command(_run(hosts=("a",), current_host="a", num_gpus=1), manifest, command)
        == command
    )
    assert (
        launch_command(_run(hosts=("a", "b"), current_host="a", world_size=2), manifest, command)
        == command
    )
    assert (
        launch_command(_run(hosts=("a", "b"), current_host="a", num_gpus=8), plain, command)
        == command
    )


def test_sagemaker_program_wins_over_the_manifests_entry_point(model_dir) -> None:
    manifest, _ = load_manifest(model_dir("m", TORCHRUN))
    assert entry_command(manifest, {}) == [sys.executable, "train.py"]
    assert entry_command(manifest, {"SAGEMAKER_PROGRAM": "other.py"}) == [
        sys.executable,
        "other.py",
    ]
    assert entry_command(manifest, {"SAGEMAKER_PROGRAM": "run.sh"}) == ["./run.sh"]


def test_the_toolkits_variables_are_set_with_absolute_paths(model_dir) -> None:
    manifest, _ = load_manifest(model_dir("m", TORCHRUN))
    run = _run(
        hosts=("algo-1",),
        current_host="algo-1",
        network_interface="eth0",
        num_gpus=1,
        data_root=Path("/data"),
    )
    variables = platform_variables(run, manifest, {"epochs": 2}, Path("/code"))
    assert (
        variables["SM_CHANNEL_TRAIN"] == "/data/train" and variables["SM_CHANNELS"] == '["train"]'
    )
    assert variables["SM_HPS"] == '{"epochs": 2}' and variables["SM_HP_EPOCHS"] == "2"
    assert (variables["SM_MODEL_DIR"], variables["CHECKPOINT_DIR"]) == ("/m", "/c")
    assert variables["NCCL_SOCKET_IFNAME"] == "eth0" and variables["SM_NUM_GPUS"] == "1"


def test_the_launcher_runs_the_entry_point_in_the_model_directory_with_the_sm_variables(
    toy, python, tmp_path
) -> None:
    (toy / "train.py").write_text(
        "import json, os\n"
        "print('cwd', os.getcwd())\n"
        "print('env', json.dumps({k: v for k, v in os.environ.items() if k.startswith('SM_')}))\n"
    )
    result = python(
        "-m",
        "training",
        "launch",
        "--model",
        str(toy),
        "--epochs",
        "2",
        "--model-dir",
        "out/model",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert f"cwd {toy}" in result.stdout
    seen = json.loads(result.stdout.split("env ", 1)[1].splitlines()[0])
    assert seen["SM_MODEL_DIR"] == str(tmp_path / "out" / "model")
    assert seen["SM_CHANNEL_TRAIN"] == str(tmp_path / "data" / "train")
    assert json.loads(seen["SM_HPS"]) == {"epochs": 2, "lr": 0.1, "mode": "fast", "shuffle": True}
    assert seen["SM_MODULE_DIR"] == str(toy)


def test_the_launcher_trains_a_model_baked_into_the_sagemaker_code_directory(
    toy, python, env, tmp_path
) -> None:
    base = tmp_path / "opt-ml"
    base.mkdir()
    toy.rename(base / "code")
    (base / "input" / "config").mkdir(parents=True)
    (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps({"epochs": "1"}))
    (base / "input" / "data" / "train").mkdir(parents=True)
    result = python("-m", "training", "train", env=env(SAGEMAKER_BASE_DIR=str(base)), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((base / "model" / "metrics.json").read_text())
    assert metrics["hyperparameters"]["epochs"] == 1


def test_bad_hyperparameters_fail_in_the_launcher_before_anything_starts(
    toy, python, tmp_path
) -> None:
    result = python(
        "-m",
        "training",
        "launch",
        "--model",
        str(toy),
        "--epochs",
        "0",
        "--output-dir",
        str(tmp_path / "o"),
    )
    assert result.returncode == 1 and "launching" not in result.stdout
    assert "got '0', want an integer >= 1" in (tmp_path / "o" / "failure").read_text()


def test_a_bad_manifest_fails_with_its_problems_in_the_failure_file(toy, python, tmp_path) -> None:
    (toy / "model.yaml").write_text((toy / "model.yaml").read_text().replace("task:", "tsak:"))
    result = python(
        "-m", "training", "launch", "--model", str(toy), "--output-dir", str(tmp_path / "o")
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    reason = (tmp_path / "o" / "failure").read_text()
    assert (
        reason.startswith("ManifestError: ")
        and "tsak = 'classification': unknown key (did you mean 'task'?)" in reason
    )


def test_launch_help_explains_how_the_model_is_found(python) -> None:
    result = python("-m", "training", "launch", "--help")
    assert result.returncode == 0 and "finds the model: ``--model``" in result.stdout


def test_an_unknown_command_prints_usage(python) -> None:
    result = python("-m", "training", "serve")
    assert (
        result.returncode == 2
        and "usage: python -m training {launch,train,prepare,schema}" in result.stderr
    )
