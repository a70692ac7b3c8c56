"""The runtime contract v2 on every registered runtime: each bit-width runs close to the torch fp32
outputs at any batch size and length, writes exactly its deployed files, opens them again to the
same outputs, and asks for calibration batches exactly where it needs them."""

from __future__ import annotations

import pytest
import torch

from autocompress.engine.runtimes import RUNTIMES, get, has_bf16, make_runtime, open_runtime
from conftest import make_tiny, random_batch

# every runtime; those that run on a GPU only where torch sees one
ALL = [pytest.param(n, marks=pytest.mark.cuda) if rt.device == "cuda" else n for n, rt in RUNTIMES.items()]
BITS = (32, 16, 8, 4)
LENGTHS = (16, 64)  # the tiny model has 64 positions
CALIBRATION = [random_batch(8, 16, seed=s) for s in (11, 12)] + [random_batch(8, 40, seed=13)]

# Largest |out - ref| allowed, as a share of max |ref|, by what runs in memory; argmax agreement floor.
REL_TOL = {"fp32": 1e-3, "bf16": 0.1, "int8": 0.25}
AGREE = {"fp32": 1.0, "bf16": 0.9, "int8": 0.8}


def kind(session) -> str:
    for k in ("int8", "bf16"):
        if k in session.name:
            return k
    return "fp32"


@pytest.fixture(scope="module")
def model():
    return make_tiny(seed=5, max_position_embeddings=64)


@pytest.fixture(scope="module")
def inputs():
    return {(n, length): random_batch(n, length, seed=n + length) for n in (1, 32) for length in LENGTHS}


@pytest.fixture(scope="module")
def built(model, tmp_path_factory):
    """(runtime, bits) -> (session, workdir), each built once; calibration only where it is needed
    (so every build without calibration here is one that must succeed without it)."""
    cache: dict[tuple[str, int], tuple] = {}

    def build(name: str, bits: int):
        if (name, bits) not in cache:
            workdir = tmp_path_factory.mktemp(f"{name}-{bits}")
            calibration = CALIBRATION if get(name).needs_calibration(bits) else ()
            cache[name, bits] = make_runtime(model, bits, name, workdir, 1, calibration), workdir
        return cache[name, bits]

    return build


def _run(session, x) -> torch.Tensor:
    with torch.inference_mode():
        return session.run(x["input_ids"], x["attention_mask"], x["token_type_ids"])


def _reference(model, x) -> torch.Tensor:
    with torch.inference_mode():
        return model(x["input_ids"], x["attention_mask"], x["token_type_ids"])


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("name", ALL)
def test_outputs_close_to_torch_fp32_at_every_shape(name, bits, model, inputs, built):
    session, _ = built(name, bits)
    assert session.name == get(name).precision(bits).name
    k = kind(session)
    for (n, length), x in inputs.items():
        ref = _reference(model, x)
        out = _run(session, x)
        assert out.dtype == torch.float32 and out.shape == (n, 2) == ref.shape
        assert torch.isfinite(out).all()
        err = ((out - ref).abs().max() / ref.abs().max()).item()
        assert err <= REL_TOL[k], (n, length, err)
        if n > 1:
            assert (out.argmax(1) == ref.argmax(1)).float().mean().item() >= AGREE[k], (n, length)


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("name", ALL)
def test_deployed_files_are_exactly_the_export_files(name, bits, built):
    session, workdir = built(name, bits)
    rt = get(name)
    if rt.deploys_files(bits):
        assert session.files == tuple(workdir / f for f in rt.export_files)
        assert all(p.is_file() and p.stat().st_size > 1_000 for p in session.files)
        assert session.artifact == session.files[0]
    else:
        assert session.files == () and session.artifact is None
    # no scratch left behind: the workdir holds the deployed files and nothing else
    assert sorted(p.name for p in workdir.iterdir()) == sorted(p.name for p in session.files)


@pytest.mark.parametrize("name", ["onnxruntime", "openvino", "torch"])
def test_expanded_at_load_deploys_nothing_at_4_bits(name, built):
    session, workdir = built(name, 4)
    assert session.files == () and list(workdir.iterdir()) == []
    assert session.fast_kernel is (name == "onnxruntime" or (name == "openvino" and has_bf16()))
    assert "expanded at load" in get(name).precision(4).deploys


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("name", ALL)
def test_open_runs_the_deployed_files_to_identical_outputs(name, bits, inputs, built, tmp_path):
    session, workdir = built(name, bits)
    rt = get(name)
    if not session.files:
        with pytest.raises(FileNotFoundError, match=f"{name} deploys no file"):
            open_runtime(name, workdir, bits, 1)
        return
    opened = open_runtime(name, workdir, bits, 1)
    assert (opened.name, opened.files, opened.fast_kernel) == (session.name, session.files, session.fast_kernel)
    for x in inputs.values():
        assert torch.equal(_run(opened, x), _run(session, x))
    with pytest.raises(FileNotFoundError, match=rt.export_files[0]):
        open_runtime(name, tmp_path, bits, 1)  # an empty folder


def test_open_names_the_missing_file(built, tmp_path):
    _, workdir = built("openvino", 32)
    (tmp_path / "model.xml").write_bytes((workdir / "model.xml").read_bytes())
    with pytest.raises(FileNotFoundError, match="model.bin"):
        open_runtime("openvino", tmp_path, 32, 1)


@pytest.mark.parametrize("name", ALL)
def test_calibration_is_needed_exactly_where_build_asks_for_it(name, model, built, tmp_path):
    rt = get(name)
    for bits in (32, 16, 8, 4, 1):
        if rt.needs_calibration(bits):
            with pytest.raises(ValueError, match=f"^{name} at {bits} bits needs calibration rows"):
                make_runtime(model, bits, name, tmp_path / str(bits), 1)
        elif bits in BITS:
            built(name, bits)  # built without calibration
        else:
            make_runtime(model, bits, name, tmp_path / str(bits), 1)
    expected = {"torch": set(), "onnxruntime": set(), "onnxruntime-static": {8, 4, 2, 1}, "openvino": {8},
                "torch-cuda": set()}[name]
    assert {b for b in (32, 16, 8, 4, 2, 1) if rt.needs_calibration(b)} == expected


def test_calibration_changes_static_ranges(model, inputs, tmp_path):
    """Static int8 really uses the batches: other calibration rows give other outputs."""
    x = inputs[32, 64]
    a = make_runtime(model, 8, "onnxruntime-static", tmp_path / "a", 1, CALIBRATION[:1])
    b = make_runtime(model, 8, "onnxruntime-static", tmp_path / "b", 1, [random_batch(8, 64, seed=99)])
    assert not torch.equal(_run(a, x), _run(b, x))


def test_every_precision_says_what_it_deploys():
    for name, rt in RUNTIMES.items():
        for bits in (32, 16, 8, 4, 2, 1):
            p = rt.precision(bits)
            assert p.deploys.startswith("stored: ") and "; in memory: " in p.deploys, (name, bits)
            assert p.name.startswith(name.split("-")[0]), (name, bits)


def test_openvino_16_bit_weights_are_half_the_32_bit_ones(built):
    size = {bits: (built("openvino", bits)[1] / "model.bin").stat().st_size for bits in (32, 16)}
    assert 0.45 < size[16] / size[32] < 0.6
