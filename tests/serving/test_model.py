"""Loading a model directory: model.json checks, variants, the three formats, without HTTP."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from serving.config import ServerConfig
from serving.model import load_model
from serving.signature import ModelDirectoryError
from serving.torchscript import TorchModel
from tests.serving.conftest import (
    SIGNATURE,
    TOLERANCE,
    Digits,
    expected,
    with_variants,
    write_model_dir,
)

X = np.random.default_rng(0).standard_normal((5, 1, 8, 8)).astype(np.float32)
CPU = ServerConfig(device="cpu")


def reference(model_dir: Path, x: np.ndarray, name: str = "model.pt") -> np.ndarray:
    return expected(torch.jit.load(str(model_dir / name)), x)


def test_predict_returns_the_models_output_as_float32(digits_dir: Path) -> None:
    model = load_model(digits_dir, "default", CPU)
    assert isinstance(model, TorchModel)
    out = model.predict(X)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, reference(digits_dir, X))


@pytest.mark.parametrize("fmt", ["onnx", "python"])
def test_every_format_computes_what_the_torchscript_export_does(
    model_dirs: dict[str, Path], fmt: str
) -> None:
    model = load_model(model_dirs[fmt], "default", CPU)
    assert model.variant.format == fmt
    model.warm_up(8)
    out = model.predict(X)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, reference(model_dirs["torchscript"], X), **TOLERANCE)


def test_variants_in_one_directory_load_by_name(
    model_dirs: dict[str, Path], tmp_path: Path
) -> None:
    from onnxruntime.quantization import quantize_dynamic

    shutil.copy(model_dirs["torchscript"] / "model.pt", tmp_path / "model.pt")
    shutil.copy(model_dirs["onnx"] / "model.onnx", tmp_path / "model.onnx")
    quantize_dynamic(tmp_path / "model.onnx", tmp_path / "model-int8.onnx")
    doc = with_variants(
        SIGNATURE,
        default=("torchscript", "model.pt"),
        onnx=("onnx", "model.onnx"),
        int8=("onnx", "model-int8.onnx"),
    )
    (tmp_path / "model.json").write_text(json.dumps(doc))
    want = reference(tmp_path, X)
    for name, fmt in [("default", "torchscript"), ("onnx", "onnx"), ("int8", "onnx")]:
        model = load_model(tmp_path, name, CPU)
        assert (model.variant.name, model.variant.format) == (name, fmt)
        out = model.predict(X)
        if name == "int8":  # int8 weights: close, and the same classes
            assert (out.argmax(1) == want.argmax(1)).mean() >= 0.8
        else:
            np.testing.assert_allclose(out, want, **TOLERANCE)


def test_bfloat16_compute_keeps_float32_answers_close(digits_dir: Path) -> None:
    # The GPU path's dtype handling, exercised on the CPU.
    model = load_model(digits_dir, "default", ServerConfig(device="cpu", dtype="bfloat16"))
    out = model.predict(X)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, reference(digits_dir, X), atol=0.05)


def test_auto_dtype_is_float32_on_the_cpu_even_if_the_model_prefers_bfloat16(
    tmp_path: Path,
) -> None:
    model_dir = write_model_dir(tmp_path, Digits(), {**SIGNATURE, "preferred_dtype": "bfloat16"})
    assert load_model(model_dir, "default", CPU).compute_dtype == torch.float32


def test_int8_variant_of_an_older_model_json_loads_model_int8_pt(tmp_path: Path) -> None:
    model_dir = write_model_dir(tmp_path, Digits())
    quantized = torch.ao.quantization.quantize_dynamic(
        Digits().eval(), {torch.nn.Linear}, dtype=torch.qint8
    )
    torch.jit.script(quantized).save(str(model_dir / "model-int8.pt"))
    out = load_model(model_dir, "int8", CPU).predict(X)
    np.testing.assert_array_equal(out, reference(model_dir, X, "model-int8.pt"))


def test_missing_variant_file_is_named(digits_dir: Path) -> None:
    with pytest.raises(ModelDirectoryError, match=r"model-int8\.pt: not found"):
        load_model(digits_dir, "int8", CPU)


def test_an_undeclared_variant_is_refused_listing_the_declared_ones(
    model_dirs: dict[str, Path],
) -> None:
    with pytest.raises(
        ModelDirectoryError, match=r"variant 'fp8' is not declared; allowed: default"
    ):
        load_model(model_dirs["onnx"], "fp8", CPU)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"inputs": [{"name": "x", "datatype": "FLOAT", "shape": [-1, 64]}]}, "FLOAT"),
        ({"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 64]}]}, "must start with -1"),
        ({"labels": ["a", "b"]}, "2 labels but output 'logits'"),
        (
            {"format": "pmml"},
            "format 'pmml' is not supported; allowed: torchscript, onnx, python, tensorflow-savedmodel",
        ),
        ({"preferred_dtype": "int4"}, "preferred_dtype 'int4'"),
        (
            {"task": "ranking"},
            "task 'ranking' is not supported; allowed: classification, regression",
        ),
        (
            {"task": "regression"},
            "task 'regression' needs output 'logits' of shape [-1] or [-1, 1]",
        ),
        (
            {"served_output": "label"},
            "served_output 'label' is not a declared output; allowed: logits",
        ),
        ({"outputs": []}, "outputs is empty"),
        (
            {"outputs": [{"name": "a", "datatype": "INT64", "shape": [-1]}] * 2},
            "2 outputs and none floating-point; name the one to serve with served_output",
        ),
        ({"allow_non_finite": "yes"}, "allow_non_finite 'yes' must be true or false"),
        (
            {"variants": {"default": {"format": "savedmodel", "path": "m"}}},
            "variants.default.format 'savedmodel' is not supported",
        ),
        (
            {"variants": {"default": {"format": "onnx", "path": "../../etc/passwd"}}},
            "must be a relative path inside the model directory",
        ),
        ({"variants": {"onnx": {"format": "onnx", "path": "m.onnx"}}}, "a 'default' entry"),
        (
            {"format": "torchscript", "variants": {"default": {"format": "onnx", "path": "m"}}},
            "disagrees with variants.default.format 'onnx'",
        ),
    ],
)
def test_model_json_errors_name_the_file_the_key_and_what_is_allowed(
    tmp_path: Path, change: dict, message: str
) -> None:
    model_dir = write_model_dir(tmp_path, Digits())
    (model_dir / "model.json").write_text(json.dumps({**SIGNATURE, **change}))
    with pytest.raises(ModelDirectoryError, match=r"model\.json") as error:
        load_model(model_dir, "default", CPU)
    assert message in str(error.value)


def test_an_output_shape_unlike_model_json_fails_at_load(tmp_path: Path) -> None:
    signature = {**SIGNATURE, "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, 3]}]}
    model = load_model(
        write_model_dir(tmp_path, Digits(), {**signature, "labels": []}), "default", CPU
    )
    with pytest.raises(ModelDirectoryError, match=r"returned shape \[1, 10\].*\[-1, 3\]"):
        model.warm_up(4)


def test_onnx_refuses_a_compute_dtype_it_cannot_honour(model_dirs: dict[str, Path]) -> None:
    with pytest.raises(ModelDirectoryError, match="applies to torchscript variants"):
        load_model(model_dirs["onnx"], "default", ServerConfig(device="cpu", dtype="bfloat16"))


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def predict(x):\n    return x\n", "needs a module-level load(model_dir)"),
        ("def load(model_dir):\n    return 42\n", "load() returned int, which has no predict"),
        ("import not_a_module_anywhere\n", "importing the handler failed: ModuleNotFoundError"),
    ],
)
def test_a_handler_that_breaks_the_contract_is_named_with_the_reason(
    tmp_path: Path, source: str, message: str
) -> None:
    (tmp_path / "handler.py").write_text(source)
    doc = with_variants(SIGNATURE, default=("python", "handler.py"))
    (tmp_path / "model.json").write_text(json.dumps(doc))
    with pytest.raises(ModelDirectoryError, match=r"handler\.py") as error:
        load_model(tmp_path, "default", CPU)
    assert message in str(error.value)


def test_a_handler_imports_modules_shipped_beside_it(tmp_path: Path) -> None:
    (tmp_path / "shipped_helper.py").write_text("def double(x):\n    return x * 2\n")
    (tmp_path / "handler.py").write_text(
        "import shipped_helper\n\n"
        "class Doubler:\n"
        "    def predict(self, batch):\n"
        "        return shipped_helper.double(batch.reshape(len(batch), -1)[:, :10])\n\n"
        "def load(model_dir):\n"
        "    return Doubler()\n"
    )
    doc = with_variants(SIGNATURE, default=("python", "handler.py"))
    (tmp_path / "model.json").write_text(json.dumps(doc))
    out = load_model(tmp_path, "default", CPU).predict(X)
    np.testing.assert_array_equal(out, X.reshape(5, -1)[:, :10] * 2)


def test_onnx_runs_on_the_cpu_provider_with_the_configured_threads(
    model_dirs: dict[str, Path],
) -> None:
    model = load_model(model_dirs["onnx"], "default", ServerConfig(device="auto", threads=2))
    assert model.device == "cpu"  # this machine has no GPU, whatever onnxruntime offers
    assert model.session.get_providers() == ["CPUExecutionProvider"]
    assert model.session.get_session_options().intra_op_num_threads == 2


def _two_output_model(tmp_path: Path, **extra) -> Path:
    """A scikit-learn classifier in ONNX: outputs `label` [N] and `probabilities` [N, 3]."""
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 4)).astype(np.float32)
    y = np.arange(60) % 3
    model = LogisticRegression(max_iter=200).fit(x, y)
    onnx_model = to_onnx(model, x[:1], options={"zipmap": False}, target_opset=17)
    (tmp_path / "model.onnx").write_bytes(onnx_model.SerializeToString())
    spec = {
        "name": "tabular",
        "format": "onnx",
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [
            {"name": "label", "datatype": "INT64", "shape": [-1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, 3]},
        ],
        "labels": ["a", "b", "c"],
        **extra,
    }
    (tmp_path / "model.json").write_text(json.dumps(spec))
    return tmp_path


def test_a_model_with_several_outputs_is_served_from_its_class_scores(tmp_path: Path) -> None:
    model_dir = _two_output_model(tmp_path)
    model = load_model(model_dir, "default", CPU)
    assert model.signature.output.name == "probabilities"
    out = model.predict(np.ones((5, 4), np.float32))
    assert out.shape == (5, 3) and np.allclose(out.sum(1), 1, atol=1e-5)


def test_a_graph_whose_outputs_disagree_with_model_json_is_named(tmp_path: Path) -> None:
    model_dir = _two_output_model(tmp_path)
    spec = json.loads((model_dir / "model.json").read_text())
    spec["outputs"] = spec["outputs"][1:]
    (model_dir / "model.json").write_text(json.dumps(spec))
    with pytest.raises(ModelDirectoryError, match=r"the graph has 2 outputs but .*declares 1"):
        load_model(model_dir, "default", CPU)
