"""The README's main job: plan, prepare, train, serve and predict, with no cloud account."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path


def test_demo_trains_serves_and_prints_a_prediction(tmp_path):
    script = Path(sys.executable).parent / "mlplatform"
    result = subprocess.run(
        [str(script), "demo", "--workdir", str(tmp_path), "--epochs", "3", "--sample", "5"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert "1/4 Offline plan of stack 'dev'" in out and "aws:s3/bucket:Bucket" in out
    assert "all mandatory policies pass" in out and "Estimated cost" in out
    assert (tmp_path / "data" / "manifest.json").is_file()
    assert (tmp_path / "model" / "model.pt").is_file()
    match = re.search(r"^prediction: (\d) \(true label: (\d)\)$", out, re.MULTILINE)
    assert match, out[-2000:]
