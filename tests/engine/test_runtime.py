"""The runtime registry: every registered runtime builds, runs and describes itself; the config
and the lookups reject unknown names with one clear line."""

import copy

import pytest
import torch

from autocompress.config import Experiment
from autocompress.engine.runtimes import (
    RUNTIMES, Runtime, Session, export_formats, for_format, get, has_bf16, make_runtime, names,
)
from autocompress.engine.errors import ConfigError
from conftest import make_tiny, random_batch

ALL = sorted(n for n, rt in RUNTIMES.items() if rt.device == "cpu")  # the GPU runtime: test_torch_cuda.py
FP32_ATOL = 1e-5  # same fp32 weights, another kernel library: summation order only
CALIBRATION = [random_batch(8, 12, seed=s) for s in (21, 22)]


@pytest.fixture(scope="module")
def model():
    return make_tiny(seed=3)


@pytest.fixture(scope="module")
def x():
    return random_batch(6, 12, seed=4)


def _reference(model, x) -> torch.Tensor:
    with torch.inference_mode():
        return model(x["input_ids"], x["attention_mask"], x["token_type_ids"])


def _run(session, x) -> torch.Tensor:
    with torch.inference_mode():
        return session.run(x["input_ids"], x["attention_mask"], x["token_type_ids"])


def test_registry_lists_the_runtimes_by_their_own_names():
    assert names() == ("torch", "onnxruntime", "onnxruntime-static", "openvino", "torch-cuda")
    for key, rt in RUNTIMES.items():
        assert isinstance(rt, Runtime)
        assert rt.name == key and get(key) is rt
        assert rt.export_file == (rt.export_files[0] if rt.export_files else None)  # the v1 name
    assert {k: rt.export_files for k, rt in RUNTIMES.items()} == {
        "torch": (), "onnxruntime": ("model.onnx",), "onnxruntime-static": ("model.onnx",),
        "openvino": ("model.xml", "model.bin"), "torch-cuda": ()}
    assert {k: rt.device for k, rt in RUNTIMES.items()} == {
        "torch": "cpu", "onnxruntime": "cpu", "onnxruntime-static": "cpu", "openvino": "cpu", "torch-cuda": "cuda"}


def test_registry_imports_no_runtime_library():
    import subprocess
    import sys

    code = ("import sys, autocompress.engine.runtimes; "
            "print(sorted(m for m in ('torch', 'onnxruntime', 'openvino', 'nncf') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_session_takes_v1_artifact_argument(tmp_path):
    def run(i, m, t):
        return i

    assert Session("x", run, True, "", tmp_path / "a.onnx").files == (tmp_path / "a.onnx",)
    assert Session("x", run, True, "", None).files == () and Session("x", run, True, "").artifact is None
    s = Session("x", run, True, "", (tmp_path / "a", tmp_path / "b"))
    assert s.artifact == tmp_path / "a"


@pytest.mark.parametrize("name", ALL)
def test_fp32_matches_torch_eager(name, model, x, tmp_path):
    ref = _reference(model, x)
    session = make_runtime(model, 32, name, tmp_path, threads=1)
    out = _run(session, x)
    assert out.dtype == torch.float32 and out.shape == ref.shape == (6, 2)
    assert torch.allclose(out, ref, atol=FP32_ATOL), (out - ref).abs().max()
    assert session.fast_kernel is True
    assert session.name == get(name).precision(32).name


@pytest.mark.parametrize("name", ALL)
def test_int8_uses_a_fast_kernel_and_stays_close(name, model, x, tmp_path):
    ref = _reference(model, x)
    session = make_runtime(model, 8, name, tmp_path, threads=1, calibration=CALIBRATION)
    assert session.fast_kernel is True and "int8" in session.name
    out = _run(session, x)
    assert out.shape == ref.shape and torch.isfinite(out).all()
    # weights per channel, activations per batch at 8 bits: small differences only
    assert (out - ref).abs().max() <= 0.25 * ref.abs().max()
    assert not torch.equal(out, ref)  # it really ran quantized


@pytest.mark.parametrize("name", ALL)
def test_files_are_none_or_the_deployed_files(name, model, tmp_path):
    rt = get(name)
    for bits in (32, 8):
        session = make_runtime(model, bits, name, tmp_path / str(bits), threads=1, calibration=CALIBRATION)
        if not rt.export_files:
            assert session.files == () and session.artifact is None
        else:
            assert session.files == tuple(tmp_path / str(bits) / f for f in rt.export_files)
            assert all(p.is_file() for p in session.files)
            assert session.artifact == session.files[0]
            assert sum(p.stat().st_size for p in session.files) > 10_000


def test_display_names_and_notes_per_precision():
    slow = "4-bit weights have no fast CPU kernel here: they run dequantized in {} (bytes shrink, latency does not)"
    expected = {
        ("torch", 32): ("torch-fp32", True, "fp32 eager"),
        ("torch", 16): ("torch-bf16", True, "bfloat16 eager (AMX/AVX-512 bf16)"),
        ("torch", 8): ("torch-int8-dynamic", True,
                       "torch dynamic int8 linears (per-channel weights, dynamic activations)"),
        ("torch", 4): ("torch-fp32", False, slow.format("fp32")),
        ("onnxruntime", 32): ("onnxruntime-fp32", True, "ONNX Runtime fp32"),
        ("onnxruntime", 16): ("onnxruntime-fp32", False, "ONNX Runtime fp32: no bf16 fast path used here"),
        ("onnxruntime", 8): ("onnxruntime-int8", True, "ONNX Runtime dynamic int8 (per-channel)"),
        ("onnxruntime", 4): ("onnxruntime-int8", True, ("stored as packed 4-bit weights, run as ONNX Runtime "
                                                         "dynamic int8 (per-channel) after expansion at load")),
        ("onnxruntime-static", 32): ("onnxruntime-fp32", True, "ONNX Runtime fp32"),
        ("onnxruntime-static", 8): ("onnxruntime-static-int8", True, ("ONNX Runtime static int8 QDQ: per-channel "
                                                                      "weights, activation ranges calibrated on "
                                                                      "training rows")),
        ("openvino", 32): ("openvino-fp32", True, "OpenVINO fp32 (f32 inference precision)"),
    }
    if has_bf16():
        expected[("openvino", 16)] = ("openvino-bf16", True, "OpenVINO bf16 inference precision (AMX/AVX-512 bf16)")
        expected[("openvino", 4)] = ("openvino-bf16", True, ("stored as packed 4-bit weights, run as OpenVINO "
                                                              "bf16 after expansion at load"))
    for (name, bits), want in expected.items():
        p = get(name).precision(bits)
        assert (p.name, p.fast_kernel, p.note) == want
    assert not get("torch").precision(1).fast_kernel and "binary weights" in get("torch").precision(1).note
    assert "ternary weights" in get("onnxruntime").precision(2).note


def test_bf16_session_runs_in_bf16_and_returns_float(model, x, tmp_path):
    session = make_runtime(model, 16, "torch", tmp_path, threads=1)
    out = _run(session, x)
    assert out.dtype == torch.float32
    assert torch.equal(out, _reference(copy.deepcopy(model).to(torch.bfloat16), x).float())


def test_unknown_runtime_names_the_choices(model, tmp_path):
    with pytest.raises(ValueError, match=r"^unknown runtime 'tensorrt'; use one of torch, onnxruntime, "
                                         r"onnxruntime-static, openvino, torch-cuda$"):
        make_runtime(model, 32, "tensorrt", tmp_path, threads=1)


def test_export_formats_come_from_the_registry():
    assert export_formats() == ("torch", "onnx", "onnx-static", "openvino")
    assert for_format("onnx") is RUNTIMES["onnxruntime"] and for_format("torch") is RUNTIMES["torch"]
    assert for_format("onnx-static") is RUNTIMES["onnxruntime-static"] and for_format("openvino") is RUNTIMES["openvino"]
    with pytest.raises(ValueError, match="unknown export format 'tflite'; use one of torch, onnx, onnx-static, openvino$"):
        for_format("tflite")


def test_config_accepts_registered_runtimes_and_rejects_others(tmp_path):
    import yaml

    base = {"task": {"train": "train.tsv", "dev": "dev.tsv"}}
    for name in names():
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({**base, "runtime": name}))
        assert Experiment.from_file(path).runtime == name
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**base, "runtime": "tensorrt"}))
    with pytest.raises(ConfigError) as err:
        Experiment.from_file(path)
    assert str(err.value) == (f"{path}: runtime: Input should be 'torch', 'onnxruntime', 'onnxruntime-static', "
                              "'openvino' or 'torch-cuda'")
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("flags, reduced", [
    ({"avx2"}, True),  # u8 x s8 pair sums saturate: 7-bit weights
    ({"avx2", "avx512f", "avx512_vnni"}, False),
    ({"avx2", "avx_vnni"}, False),
    ({"avx2", "amx_int8"}, False),
    (set(), False),  # flags unknown: as built elsewhere
])
def test_int8_weights_are_7_bit_only_on_a_cpu_without_int8_dot_products(flags, reduced, monkeypatch):
    from autocompress.engine.runtimes import base

    monkeypatch.setattr(base, "cpu_flags", lambda: frozenset(flags))
    assert base.int8_needs_reduced_range() is reduced
