"""An ONNX or OpenVINO export runs without torch: its predict.py in a virtual environment holding only
numpy, tokenizers and the runtime gives the labels `load_compressed` gives; `load_compressed` opens the
shipped files without building the torch module; `resident_memory` measures a folder in a fresh process."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_sentences

from autocompress import load_compressed
from autocompress.config import Experiment
from autocompress.engine.errors import ArtifactError
from autocompress.export import export_folder
from autocompress.engine.recipe import Recipe
from autocompress.session import engine_inputs, run_recipe

STANDALONE_PACKAGES = ("numpy", "tokenizers", "onnxruntime", "openvino")
"""What predict.py may use (their compiled libraries come along in <name>.libs folders, if any)."""

CASES = {  # name: (recipe, export format, runtime whose files the export ships)
    "onnx-fp32-vocab": (Recipe(layers=(0, 1), vocab_prune=True), "onnx", "onnxruntime"),
    "onnx-int8": (Recipe(layers=(0, 1), bits=8), "onnx", "onnxruntime"),
    "openvino-fp32": (Recipe(layers=(0, 1)), "openvino", "openvino"),
    "openvino-16": (Recipe(layers=(0, 1), bits=16), "openvino", "openvino"),
}


@pytest.fixture(scope="session")
def torch_free_python(tmp_path_factory) -> Path:
    """The python of a virtual environment that sees only STANDALONE_PACKAGES (symlinked from this one's
    site-packages through a .pth file): no torch, transformers or autocompress. Run it with -I, so that
    neither PYTHONPATH nor the user's site-packages add them back."""
    root = tmp_path_factory.mktemp("torch-free")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root / "venv")], check=True)
    python = root / "venv" / "bin" / "python"
    packages = root / "packages"
    packages.mkdir()
    for name in STANDALONE_PACKAGES:
        where = Path(importlib.util.find_spec(name).origin).parent
        for path in (where, *where.parent.glob(f"{name}.libs")):
            (packages / path.name).symlink_to(path)
    site = subprocess.run([python, "-I", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    (Path(site) / "standalone.pth").write_text(f"{packages}\n")
    imports = "; ".join(f"import {name}" for name in STANDALONE_PACKAGES)
    subprocess.run([python, "-I", "-c", imports], check=True)
    for absent in ("torch", "transformers", "autocompress"):
        probe = subprocess.run([python, "-I", "-c", f"import {absent}"], capture_output=True, text=True)
        assert probe.returncode != 0 and "ModuleNotFoundError" in probe.stderr, f"{absent} is importable"
    return python


def run_predict(python: Path, folder: Path, *args: str, stdin: str | None = None) -> str:
    """stdout of `python -I folder/predict.py args` (its exit code must be 0)."""
    proc = subprocess.run([python, "-I", str(folder / "predict.py"), *args], input=stdin, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def long_texts(n: int, seed: int) -> list[str]:
    """Texts of two or three generated sentences: many run past task.json's max_length (16)."""
    parts, _ = make_sentences(3 * n, seed=seed)
    return [" ".join(parts[3 * i : 3 * i + 1 + i % 3]) for i in range(n)]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    from conftest import make_teacher_dir, write_experiment, write_task

    root = tmp_path_factory.mktemp("exp")
    exp = Experiment.from_file(write_experiment(root, make_teacher_dir(root / "t"), write_task(root / "d")))
    return engine_inputs(exp)[0]


@pytest.mark.parametrize("case", list(CASES))
def test_predict_py_runs_the_export_without_torch(prepared, torch_free_python, tmp_path, case):
    recipe, fmt, runtime = CASES[case]
    run_recipe(prepared, recipe, tmp_path / "trial")  # measured on torch: the export builds the runtime's files
    out = export_folder(tmp_path / "trial", tmp_path / "export", fmt=fmt)
    manifest = json.loads((out / "manifest.json").read_text())
    assert "predict.py" in manifest["files"] and manifest["runtime"] == runtime
    assert "`predict.py` runs them with only" in (out / "README.md").read_text()
    assert (out / "tokenizer" / "tokenizer.json").is_file()

    model = load_compressed(out)
    assert model.runtime == runtime and model.model is None  # the shipped files, as predict.py runs them
    texts = long_texts(6, seed=7) + ["good", "awful w1 w2"]
    assert run_predict(torch_free_python, out, *texts).splitlines() == model.predict(texts)
    shown = json.loads(run_predict(torch_free_python, out, "--json", *texts))
    logits = model.logits(texts)
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    assert [r["text"] for r in shown] == texts and [r["label"] for r in shown] == model.predict(texts)
    assert np.allclose([[r["probabilities"][n] for n in model.label_names] for r in shown], probs, atol=1e-5)


def test_predict_py_reads_standard_input_in_batches_of_64(prepared, torch_free_python, tmp_path):
    run_recipe(prepared, Recipe(layers=(0, 1), bits=8), tmp_path / "trial")
    out = export_folder(tmp_path / "trial", tmp_path / "export", fmt="onnx")
    texts = long_texts(70, seed=8)  # two batches: padding and dynamic int8 ranges are per batch, as in load_compressed
    shown = run_predict(torch_free_python, out, stdin="".join(f"{t}\n" for t in texts))
    assert shown.splitlines() == load_compressed(out).predict(texts)


def test_predict_py_takes_text_pairs(tmp_path, torch_free_python):
    from conftest import make_teacher_dir, write_experiment

    data = tmp_path / "d"
    data.mkdir()
    paths = {}
    for split, n, seed in (("train", 96, 1), ("dev", 32, 2)):
        a, labels = make_sentences(n, seed)
        b, _ = make_sentences(n, seed + 10)
        paths[split] = data / f"{split}.tsv"
        rows = "".join(f"{x}\t{y}\t{z}\n" for x, y, z in zip(a, b, labels))
        paths[split].write_text("sentence\tother\tlabel\n" + rows)
    exp = Experiment.from_file(write_experiment(tmp_path, make_teacher_dir(tmp_path / "t"), paths,
                                                task={"text_pair": "other"}))
    inputs = engine_inputs(exp)[0]
    run_recipe(inputs, Recipe(layers=(0, 1)), tmp_path / "trial")
    out = export_folder(tmp_path / "trial", tmp_path / "export", fmt="onnx")
    assert json.loads((out / "task.json").read_text())["text_pair"] is True
    first, second = long_texts(5, seed=3), long_texts(5, seed=4)  # pairs past max_length: truncated longest first
    expected = load_compressed(out).predict(first, second)
    args = [t for pair in zip(first, second) for t in pair]
    assert run_predict(torch_free_python, out, *args).splitlines() == expected
    stdin = "".join(f"{x}\t{y}\n" for x, y in zip(first, second))
    assert run_predict(torch_free_python, out, stdin=stdin).splitlines() == expected
    odd = subprocess.run([torch_free_python, "-I", str(out / "predict.py"), "one text"], capture_output=True,
                         text=True)
    assert odd.returncode == 2 and odd.stderr.strip() == (
        "error: a pair task takes texts two at a time (first text, then its pair): got 1 arguments")


def test_an_export_of_the_weights_ships_no_script(prepared, tmp_path):
    run_recipe(prepared, Recipe(layers=(0,)), tmp_path / "trial")
    out = export_folder(tmp_path / "trial", tmp_path / "export", fmt="torch")
    assert not (out / "predict.py").exists() and "runtime" not in json.loads((out / "manifest.json").read_text())
    assert "predict.py" not in (out / "README.md").read_text()


@pytest.mark.parametrize("fmt, runtime", [("onnx", "onnxruntime"), ("openvino", "openvino")])
def test_load_compressed_runs_shipped_files_without_building_the_torch_module(prepared, tmp_path, monkeypatch,
                                                                             fmt, runtime):
    import autocompress.engine.storage as storage

    texts, _ = make_sentences(16, seed=3)
    run_recipe(prepared, Recipe(layers=(0, 1)), tmp_path / "trial")
    out = export_folder(tmp_path / "trial", tmp_path / "export", fmt=fmt)
    on_torch = load_compressed(out, runtime="torch").logits(texts)

    def no_module(folder):
        raise AssertionError(f"the torch module of {folder} was built")

    monkeypatch.setattr(storage, "load_model", no_module)
    for model in (load_compressed(out), load_compressed(out, runtime=runtime)):  # by default: what it ships
        assert model.runtime == runtime and model.model is None
        assert np.allclose(model.logits(texts), on_torch, atol=1e-4)


@pytest.mark.parametrize("pairs", [False, True])
def test_the_script_tokenizes_as_load_compressed_does(prepared, tmp_path, pairs):
    """The same ids, masks and token types from tokenizer.json as from the transformers tokenizer
    load_compressed runs: truncated to max_length (longest first for a pair), padded to the longest."""
    from autocompress import deploy_script

    run_recipe(prepared, Recipe(layers=(0,)), tmp_path / "trial")
    out = export_folder(tmp_path / "trial", tmp_path / "export", fmt="onnx")
    model = load_compressed(out)
    texts = long_texts(12, seed=5)
    second = long_texts(12, seed=6)[::-1] if pairs else None
    ours = deploy_script.encode(deploy_script.load_tokenizer(out, model.max_length), texts, second)
    theirs = model.tokenizer(texts, second, truncation=True, max_length=model.max_length, padding=True,
                             return_tensors="np", return_token_type_ids=True)
    assert ours["input_ids"].shape[1] == model.max_length  # some texts were truncated
    for name in ("input_ids", "attention_mask", "token_type_ids"):
        assert ours[name].dtype == np.int64 and np.array_equal(ours[name], theirs[name]), name


def test_the_script_compiles_openvino_as_the_runtime_does():
    from autocompress import deploy_script
    from autocompress.engine.runtimes.openvino_runtime import compile_config

    for bits in (32, 16, 8):
        assert deploy_script.openvino_config(bits, 3) == compile_config(bits, 3)


def test_resident_memory_in_a_fresh_process(prepared, tmp_path):
    from autocompress.memory import resident_memory

    run_recipe(prepared, Recipe(layers=(0, 1)), tmp_path / "trial")
    out = export_folder(tmp_path / "trial", tmp_path / "export", fmt="onnx")
    memory = resident_memory(out, threads=1)
    assert set(memory) == {"resident", "peak"}
    assert memory["resident"] > 0 and memory["peak"] >= memory["resident"]
    nowhere = tmp_path / "nowhere"
    with pytest.raises(ArtifactError) as err:  # one line, the reason the fresh process gave
        resident_memory(nowhere, threads=1)
    assert str(err.value) == f"{nowhere}: memory not measured ({nowhere}: no such export folder)"
