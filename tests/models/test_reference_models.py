"""Every directory in models/ is a complete model as docs/models.md describes it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training.manifest import load_manifest

MODELS = Path(__file__).resolve().parents[2] / "models"
NAMES = sorted(p.name for p in MODELS.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))


def test_the_three_reference_models_are_shipped() -> None:
    assert NAMES == ["breast-cancer", "digits", "mnist-keras"]


@pytest.mark.parametrize("name", NAMES)
def test_each_model_has_a_valid_manifest_and_the_files_it_names(name: str) -> None:
    manifest, _ = load_manifest(MODELS / name)  # the name must be the directory's
    directory = MODELS / name
    for required in ("train.py", "prepare.py", "example.json", "requirements.txt"):
        assert (directory / required).is_file(), required
    assert manifest.prepare is not None and manifest.train.objective.tuning_metric


@pytest.mark.parametrize("name", NAMES)
def test_each_example_request_is_a_list_of_instances(name: str) -> None:
    body = json.loads((MODELS / name / "example.json").read_text())
    assert set(body) == {"instances"} and len(body["instances"]) == 1
