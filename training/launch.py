"""The launcher: what the platform's training image runs for ``train``.

    python -m training launch [--model DIR] [--model-dir D] [--channel-train D] [--epochs 3 ...]

1. finds the model: ``--model``, else the first directory holding model.yaml among
   ``{base}/code`` (where SageMaker puts, and the platform bakes, a model's code), ``SM_MODULE_DIR``
   and the working directory;
2. checks the hyperparameters against model.yaml (a bad one fails in milliseconds, with the
   failure file, before any process starts);
3. sets the ``SM_*`` variables that the SageMaker toolkit would have set, where nobody did;
4. execs the entry point (``SAGEMAKER_PROGRAM`` wins over the manifest's), under torchrun with one
   process per GPU on every host when the manifest says ``distribution: torchrun`` and there is
   more than one GPU or host. SageMaker starts one container per host with no launcher, so host 0
   becomes the rendezvous master.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from training import hyperparameters as hp
from training.environment import DEFAULT_BASE, RunEnvironment, resolve, split_path_flags
from training.errors import UserError
from training.manifest import MANIFEST_FILE, ModelManifest, load_manifest
from training.runtime import fail, hyperparameter_sources

SAGEMAKER_MASTER_PORT = 7777  # the port SageMaker's PyTorch toolkit uses for its torchrun launches


def find_model_dir(given: str | None, environ: Mapping[str, str]) -> Path:
    """The model's directory (the one with model.yaml)."""
    if given:
        return Path(given).resolve()
    candidates = [Path(environ.get("SAGEMAKER_BASE_DIR", DEFAULT_BASE)) / "code"]
    if environ.get("SM_MODULE_DIR") and "://" not in environ["SM_MODULE_DIR"]:
        candidates.append(Path(environ["SM_MODULE_DIR"]))
    candidates.append(Path.cwd())
    for directory in candidates:
        if (directory / MANIFEST_FILE).is_file():
            return directory.resolve()
    looked = ", ".join(map(str, candidates))
    raise UserError(f"no {MANIFEST_FILE} found (looked in {looked}); pass --model DIR")


def entry_command(manifest: ModelManifest, environ: Mapping[str, str]) -> list[str]:
    """How to start the training entry point (``SAGEMAKER_PROGRAM`` wins, as in the toolkit)."""
    program = environ.get("SAGEMAKER_PROGRAM", "")
    if program:
        return [sys.executable, program] if program.endswith(".py") else [f"./{program}"]
    return manifest.train.argv(sys.executable)


def _gpus(run: RunEnvironment) -> int:
    """GPUs on this host: SM_NUM_GPUS, else what CUDA_VISIBLE_DEVICES or the driver shows.

    Not torch.cuda.device_count(): importing torch costs the launcher seconds, and the entry
    point it execs imports torch again anyway.
    """
    if run.num_gpus is not None:
        return run.num_gpus
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and not d.strip().startswith("-")])
    driver = Path("/proc/driver/nvidia/gpus")
    return len(list(driver.iterdir())) if driver.is_dir() else 0


def launch_command(run: RunEnvironment, manifest: ModelManifest, command: list[str]) -> list[str]:
    """``command`` under torchrun when the model fans out and the job has several GPUs or hosts."""
    if manifest.train.distribution != "torchrun" or run.under_torchrun:
        return command
    procs = max(_gpus(run), 1)
    if len(run.hosts) == 1 and procs == 1:
        return command
    launcher = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={procs}"]
    if len(run.hosts) == 1:
        launcher.append("--standalone")
    else:
        launcher += [
            f"--nnodes={len(run.hosts)}",
            f"--node-rank={run.hosts.index(run.current_host)}",
            f"--master-addr={run.hosts[0]}",
            f"--master-port={SAGEMAKER_MASTER_PORT}",
        ]
    if command[:1] == [sys.executable]:
        return [*launcher, *command[1:]]  # script.py args, or -m module args
    return [*launcher, "--no-python", *command]


def platform_variables(
    run: RunEnvironment, manifest: ModelManifest, values: dict, model_dir: Path
) -> dict[str, str]:
    """The toolkit's ``SM_*`` variables for this run (absolute paths), plus CHECKPOINT_DIR."""
    channels = list(manifest.train.channels)
    variables = {
        "SM_MODEL_DIR": run.model_dir,
        "SM_OUTPUT_DIR": run.output_dir,
        "SM_OUTPUT_DATA_DIR": run.output_data_dir,
        "CHECKPOINT_DIR": run.checkpoint_dir,
        "SM_MODULE_DIR": model_dir,
        "SM_CHANNELS": json.dumps(channels),
        "SM_HPS": json.dumps(values),
        "SM_HOSTS": json.dumps(list(run.hosts)),
        "SM_CURRENT_HOST": run.current_host,
        **{f"SM_CHANNEL_{name.upper()}": run.channel(name) for name in channels},
        **{
            f"SM_HP_{k.upper()}": json.dumps(v) if not isinstance(v, str) else v
            for k, v in values.items()
        },
    }
    if run.num_gpus is not None:
        variables["SM_NUM_GPUS"] = str(run.num_gpus)
    if run.network_interface:
        variables["SM_NETWORK_INTERFACE_NAME"] = run.network_interface
        variables["NCCL_SOCKET_IFNAME"] = run.network_interface  # NCCL must use SageMaker's NIC
    return {
        k: str(Path(v).resolve()) if isinstance(v, Path) else str(v) for k, v in variables.items()
    }


def _model_flag(argv: list[str]) -> tuple[str | None, list[str]]:
    """``--model DIR`` / ``--model=DIR`` (the launcher's own flag) and the other arguments."""
    model, rest, i = None, [], 0
    while i < len(argv):
        if argv[i] == "--model" and i + 1 < len(argv):
            model, i = argv[i + 1], i + 2
        elif argv[i].startswith("--model="):
            model, i = argv[i].split("=", 1)[1], i + 1
        else:
            rest.append(argv[i])
            i += 1
    return model, rest


def main(argv: list[str]) -> int:
    """Check, prepare the environment and exec the model's entry point (never returns on success)."""
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    model_flag, argv = _model_flag(argv)
    try:
        paths, rest = split_path_flags(argv)
        run = resolve(paths)
    except UserError as err:  # no environment yet, so no failure file to write
        print(f"error: {err}", file=sys.stderr, flush=True)
        return 1
    try:
        model_dir = find_model_dir(model_flag, os.environ)
        manifest, _ = load_manifest(model_dir, check_name=False)
        sources = hyperparameter_sources(run, hp.parse_flags(rest))
        values = hp.resolve(manifest.train.hyperparameters, sources)
        command = launch_command(run, manifest, entry_command(manifest, os.environ))
    except UserError as err:
        fail(run, err)
    # Resolved with flags > SM_* > the /opt/ml layout, so these agree with what was set, as
    # absolute paths: the entry point runs in the model directory, like the toolkit's.
    env = {**os.environ, **platform_variables(run, manifest, values, model_dir)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(model_dir), env.get("PYTHONPATH")]))
    command = [*command, *rest]
    print("launching " + " ".join(command), flush=True)
    os.chdir(model_dir)
    os.execvpe(command[0], command, env)
