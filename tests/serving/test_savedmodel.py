"""Format `tensorflow-savedmodel`: the native export of a Keras model, loaded by the server and
scored by the evaluator beside its ONNX variant (TF Serving's version-folder layout included)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@pytest.fixture(scope="module")
def keras_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import keras

    root = tmp_path_factory.mktemp("savedmodel")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    # TF Serving's layout: the model's folder holds numbered versions.
    model.export(str(root / "saved_model" / "1"), format="tf_saved_model", verbose=False)
    (root / "model.json").write_text(
        json.dumps(
            {
                "name": "tiny",
                "task": "classification",
                "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}],
                "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]}],
                "labels": ["a", "b", "c"],
                "variants": {"default": {"format": "tensorflow-savedmodel", "path": "saved_model"}},
            }
        )
    )
    np.save(root / "expected_x.npy", np.random.default_rng(0).random((5, 4), dtype=np.float32))
    np.save(root / "expected_y.npy", model.predict(np.load(root / "expected_x.npy"), verbose=0))
    return root


def test_the_newest_version_folder_is_loaded_and_answers_like_keras(keras_model_dir: Path):
    from serving.model import load_model

    options = SimpleNamespace(device="cpu", threads=1, dtype="auto")
    model = load_model(keras_model_dir, "default", options)
    model.warm_up(4)
    x = np.load(keras_model_dir / "expected_x.npy")
    out = model.predict(x)
    assert out.dtype == np.float32 and out.shape == (5, 3)
    np.testing.assert_allclose(out, np.load(keras_model_dir / "expected_y.npy"), atol=1e-6)


def test_a_savedmodel_without_saved_model_pb_is_a_clear_error(tmp_path: Path, keras_model_dir):
    from serving.model import load_model
    from serving.signature import ModelDirectoryError

    (tmp_path / "saved_model").mkdir()
    (tmp_path / "model.json").write_text((keras_model_dir / "model.json").read_text())
    options = SimpleNamespace(device="cpu", threads=1, dtype="auto")
    with pytest.raises(ModelDirectoryError, match=r"no saved_model\.pb"):
        load_model(tmp_path, "default", options)
