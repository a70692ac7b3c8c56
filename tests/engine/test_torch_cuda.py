"""The GPU runtime (torch eager on CUDA): what it says about each bit-width everywhere, what it does on a machine
without a GPU, and (marked `cuda`) that it runs close to the CPU's fp32 outputs and is timed to the end of a call."""

from __future__ import annotations

import pytest
import torch

from autocompress.engine.measure import latency_ms
from autocompress.engine.runtimes import get, make_runtime
from autocompress.engine.errors import ConfigError
from conftest import make_tiny, random_batch


def test_precisions_name_the_gpu_and_the_missing_low_bit_kernels():
    rt = get("torch-cuda")
    assert rt.device == "cuda" and rt.export_format == "torch" and rt.export_files == ()
    assert (rt.precision(32).name, rt.precision(32).fast_kernel) == ("torch-cuda-fp32", True)
    assert (rt.precision(16).name, rt.precision(16).fast_kernel) == ("torch-cuda-bf16", True)
    for bits in (8, 4, 2, 1):
        p = rt.precision(bits)
        assert p.name == "torch-cuda-bf16" and p.fast_kernel is False
        assert "no GPU kernel in torch eager" in p.note and "expanded at load" in p.deploys
    assert not rt.deploys_files(8) and not rt.needs_calibration(8)


def test_without_a_gpu_building_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError) as err:
        make_runtime(make_tiny(), 16, "torch-cuda", tmp_path, 1)
    assert str(err.value).startswith("device 'cuda': ") and "\n" not in str(err.value)


def _run(session, x):
    return session.run(x["input_ids"], x["attention_mask"], x["token_type_ids"])


@pytest.mark.cuda
@pytest.mark.parametrize("bits,tol", [(32, 1e-4), (16, 0.1), (8, 0.25)])
def test_gpu_outputs_close_to_the_cpu_fp32_model(bits, tol, tmp_path):
    model = make_tiny(seed=7)
    x = random_batch(8, 16, seed=1)
    with torch.inference_mode():
        ref = model(x["input_ids"], x["attention_mask"], x["token_type_ids"])
    session = make_runtime(model, bits, "torch-cuda", tmp_path, 1)
    out = _run(session, x)
    assert out.device.type == "cpu" and out.dtype == torch.float32 and out.shape == ref.shape
    assert (out - ref).abs().max().item() <= tol * ref.abs().max().item() + 1e-6
    assert next(model.parameters()).device.type == "cpu"  # the runtime ran a copy


@pytest.mark.cuda
def test_a_call_ends_when_the_gpu_is_done(tmp_path):
    """The call returns CPU logits, so nothing it queued is still running when it returns: a timed call
    covers the whole computation."""
    x = random_batch(1, 64, seed=2)
    session = make_runtime(make_tiny(seed=0, num_hidden_layers=12), 32, "torch-cuda", tmp_path, 1)
    for _ in range(3):
        _run(session, x)
        assert torch.cuda.current_stream().query()  # every queued kernel has finished
    assert latency_ms(lambda: _run(session, x), warmup=2, repeats=5, threads=1) > 0
