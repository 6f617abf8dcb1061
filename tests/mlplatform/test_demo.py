"""The README's main job: plan the dev stack, then run its default model locally (prepare, train,
export, evaluate, serve, predict), with no cloud account."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from infra.stackfile import PROJECT_ROOT
from mlplatform.demo import default_model


def test_demo_plans_then_runs_the_stacks_default_model_and_names_its_training_curve(tmp_path):
    script = Path(sys.executable).parent / "mlplatform"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [str(script), "demo", "--workdir", str(tmp_path), "--epochs", "2", "--sample", "5"],
        capture_output=True,
        text=True,
        timeout=400,
        env=env,
        cwd=PROJECT_ROOT,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "==> 1/7 Offline plan of stack 'dev'" in out and "aws:s3/bucket:Bucket" in out
    assert "all mandatory policies pass" in out and "Estimated cost" in out
    model = default_model("dev")
    assert f"the stack's default model: {model} (the first of its mlplatform:models)" in out
    steps = re.findall(r"^==> (\d)/7 ", out, re.MULTILINE)
    assert steps == [str(n) for n in range(1, 8)], "the plan, then run's six steps"
    assert (tmp_path / "data" / "test" / "manifest.json").is_file()
    assert (tmp_path / "model" / "model.json").is_file()
    assert re.search(r"^prediction: \S+", out, re.MULTILINE), out[-2000:]
    assert re.search(r"^held-out test sample #5: prediction \S+ \(true label: \S+\)$", out, re.M)
    png = tmp_path / "training-curve.png"
    assert png.read_bytes()[:4] == b"\x89PNG" and f"training curve  {png}" in out


def test_the_default_model_is_the_first_of_the_stacks_models(stack_variant):
    models = [
        {"name": "breast-cancer", "training": {"plane": "sagemaker"}},
        {"name": "digits", "training": {"plane": "sagemaker"}},
    ]
    path = stack_variant("dev", {"mlplatform:models": models}, name="tabular")
    assert default_model("tabular", path.parent) == "breast-cancer"
