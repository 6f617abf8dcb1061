"""The model object: model.json checks, variants and compute dtypes, without any HTTP."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from serving.model import ModelDirectoryError, TorchModel
from tests.serving.conftest import SIGNATURE, Digits, write_model_dir


def reference(model_dir: Path, x: np.ndarray, name: str = "model.pt") -> np.ndarray:
    with torch.inference_mode():
        return torch.jit.load(str(model_dir / name))(torch.from_numpy(x)).numpy()


X = np.random.default_rng(0).standard_normal((5, 1, 8, 8)).astype(np.float32)


def test_predict_returns_the_models_output_as_float32(digits_dir: Path) -> None:
    model = TorchModel(digits_dir)
    out = model.predict(X)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, reference(digits_dir, X))


def test_bfloat16_compute_keeps_float32_answers_close(digits_dir: Path) -> None:
    # The GPU path's dtype handling, exercised on the CPU.
    model = TorchModel(digits_dir, dtype="bfloat16")
    out = model.predict(X)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, reference(digits_dir, X), atol=0.05)


def test_auto_dtype_is_float32_on_the_cpu_even_if_the_model_prefers_bfloat16(
    tmp_path: Path,
) -> None:
    model_dir = write_model_dir(tmp_path, Digits(), {**SIGNATURE, "preferred_dtype": "bfloat16"})
    assert TorchModel(model_dir).compute_dtype == torch.float32


def test_int8_variant_loads_model_int8_pt(tmp_path: Path) -> None:
    model_dir = write_model_dir(tmp_path, Digits())
    quantized = torch.ao.quantization.quantize_dynamic(
        Digits().eval(), {torch.nn.Linear}, dtype=torch.qint8
    )
    torch.jit.script(quantized).save(str(model_dir / "model-int8.pt"))
    out = TorchModel(model_dir, variant="int8").predict(X)
    np.testing.assert_array_equal(out, reference(model_dir, X, "model-int8.pt"))


def test_missing_variant_file_is_named(digits_dir: Path) -> None:
    with pytest.raises(ModelDirectoryError, match=r"model-int8\.pt: not found"):
        TorchModel(digits_dir, variant="int8")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"inputs": [{"name": "x", "datatype": "FLOAT", "shape": [-1, 64]}]}, "FLOAT"),
        ({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 64]}]}, "must start with -1"),
        ({"labels": ["a", "b"]}, "2 labels but outputs"),
        ({"format": "onnx"}, "'onnx' is not served"),
        ({"preferred_dtype": "int4"}, "preferred_dtype 'int4'"),
    ],
)
def test_model_json_errors_name_the_file_and_the_key(
    tmp_path: Path, change: dict, message: str
) -> None:
    model_dir = write_model_dir(tmp_path, Digits())
    (model_dir / "model.json").write_text(json.dumps({**SIGNATURE, **change}))
    with pytest.raises(ModelDirectoryError, match=r"model\.json") as error:
        TorchModel(model_dir)
    assert message in str(error.value)
