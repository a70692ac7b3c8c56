"""A search and an export per task type beyond classification, on a tiny encoder and generated data: regression,
token classification (CoNLL files) and sentence embeddings through `autocompress search` (2 trials, the
product's ONNX Runtime baseline beside them) and `export` to torch, ONNX and OpenVINO; each export reloads to
the outputs its trial measured and `predict` answers in the task's terms."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import run_cli, write_experiment

from autocompress.testing import make_teacher_dir, write_pair_task, write_regression_task, write_token_task

SPACE = ("depth: {choices: [1]}\nheads_keep: {choices: [0.5]}\nvocab_prune: {choices: [true, false]}\n"
         "bits: {choices: [32]}\ntrain_steps: {choices: [20]}\nfixed: {batch_size: 16, lr: 0.003, alpha: 0.7}\n")


def _experiment(kind: str, tmp_path, epochs: int = 6):
    teacher = make_teacher_dir(tmp_path / "encoder", task_model=False)
    if kind == "regression":
        paths, task = write_regression_task(tmp_path / "data", 96, 32), {"type": "regression", "label": "score"}
    elif kind == "token_classification":
        paths = write_token_task(tmp_path / "data", 96, 32, 32)
        task = {"type": kind, "validation": str(paths["dev"]), "dev": str(paths["test"])}
    else:
        paths = write_pair_task(tmp_path / "data", 96, 32)
        task = {"type": kind, "text": "sentence1", "text_pair": "sentence2", "label": "score"}
    return write_experiment(tmp_path, teacher, paths, task=task,
                            teacher={"finetune": {"epochs": epochs, "batch_size": 16, "lr": 0.003}})


ANSWERS = {
    "regression": lambda row: isinstance(row["score"], float),
    "token_classification": lambda row: {e["type"] for e in row["entities"]} <= {"POS", "NEG"}
    and all(len(t) for t in row["tags"]),
    "embedding": lambda row: len(row["embedding"]) == 32,
}


@pytest.mark.parametrize("kind", ["regression", "token_classification", "embedding"])
def test_search_export_and_predict(kind, tmp_path, monkeypatch, capsys):
    from autocompress.export import load_compressed
    from autocompress.testing import make_sentences

    exp = _experiment(kind, tmp_path)
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(monkeypatch, capsys, "search", exp, "--baselines", "onnxruntime-int8", "--no-memory",
                             "--space", space, "--trials", 2, "--study", "s")
    assert code == 0, err
    assert "2/2 done" in err and "Search report: study `s`" in out
    metric = {"regression": "spearman", "token_classification": "entity_f1", "embedding": "spearman"}[kind]
    assert f"metric: {metric}" in out and "ONNX Runtime dynamic int8" in out
    texts = ["good fun w3 great", "w1 awful sad w2 w7"]
    for fmt in ("torch", "onnx", "openvino"):
        code, out, err = run_cli(monkeypatch, capsys, "export", "--study", "s", "--pick", "best", "--format", fmt,
                                 "--out", f"model-{fmt}")
        assert code == 0, err
        code, out, err = run_cli(monkeypatch, capsys, "predict", f"model-{fmt}", *texts, "--json")
        assert code == 0, err
        rows = json.loads(out)
        assert [r["text"] for r in rows] == texts and all(ANSWERS[kind](r) for r in rows), out
        code, out, err = run_cli(monkeypatch, capsys, "predict", f"model-{fmt}", *texts)
        assert code == 0 and len(out.strip().splitlines()) == 2, err
        if fmt != "torch":  # the standalone script answers as `autocompress predict --json` does
            alone = json.loads(_standalone(tmp_path / f"model-{fmt}", *texts, "--json"))
            assert [r["text"] for r in alone] == texts
            for r, ours in zip(alone, rows):
                _same_answer(kind, r, ours)
            assert len(_standalone(tmp_path / f"model-{fmt}", *texts).strip().splitlines()) == 2
    # the exports answer alike (ONNX and OpenVINO run the same graph the torch module traces)
    sentences = make_sentences(6, seed=9)[0]
    outs = [load_compressed(tmp_path / f"model-{fmt}").outputs(sentences) for fmt in ("torch", "onnx", "openvino")]
    for other in outs[1:]:
        assert all(np.allclose(a, b, atol=2e-2) for a, b in zip(outs[0], other))
    if kind == "embedding":
        _loads_in_sentence_transformers(tmp_path / "model-onnx", sentences, outs[1])


def _standalone(folder, *args: str) -> str:
    proc = subprocess.run([sys.executable, str(folder / "predict.py"), *args], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _same_answer(kind: str, alone: dict, ours: dict) -> None:
    if kind == "regression":
        assert alone["score"] == pytest.approx(ours["score"], abs=1e-4)
    elif kind == "token_classification":
        assert alone["entities"] == ours["entities"]
    else:
        assert np.allclose(alone["embedding"], ours["embedding"], atol=1e-4)


def _loads_in_sentence_transformers(folder, sentences, expected):
    st = pytest.importorskip("sentence_transformers")
    model = st.SentenceTransformer(str(folder), trust_remote_code=True, device="cpu")
    assert np.allclose(model.encode(sentences), np.stack(expected), atol=1e-5)


def test_the_teacher_of_a_token_task_learns_the_entities(tmp_path, monkeypatch, capsys):
    exp = _experiment("token_classification", tmp_path, epochs=40)
    recipe = tmp_path / "r.yaml"
    recipe.write_text("layers: [0, 1]\nbits: 8\ntrain_steps: 80\nbatch_size: 16\nlr: 0.003\nalpha: 0.7\n")
    code, out, err = run_cli(monkeypatch, capsys, "compress", exp, "--recipe", recipe, "--out", tmp_path / "o",
                             "--json", tmp_path / "m.json")
    assert code == 0, err
    m = json.loads((tmp_path / "m.json").read_text())
    # the most frequent tag (O) for every word finds no entity: F1 0
    assert m["metric"] == "entity_f1" and m["teacher_score"] > 0.4 and m["entity_f1"] > 0.4, m


@pytest.mark.parametrize("kind", ["regression", "token_classification", "embedding"])
def test_an_elastic_network_trains_and_cuts_for_every_task(kind, tmp_path, monkeypatch, capsys):
    import yaml

    exp = _experiment(kind, tmp_path)
    data = yaml.safe_load(exp.read_text())
    data["elastic"] = {"steps": 4, "batch_size": 16, "depths": [1, 2], "heads": [0.5, 1.0], "ffn": [0.5, 1.0]}
    exp.write_text(yaml.safe_dump(data))
    recipe = tmp_path / "r.yaml"
    recipe.write_text("elastic: true\nlayers: [0]\nheads_keep: 0.5\nffn_keep: 0.5\nbits: 8\ntrain_steps: 4\n"
                      "batch_size: 16\n")
    code, out, err = run_cli(monkeypatch, capsys, "compress", exp, "--recipe", recipe, "--out", tmp_path / "o",
                             "--json", tmp_path / "m.json")
    assert code == 0, err
    m = json.loads((tmp_path / "m.json").read_text())
    metric = {"regression": "spearman", "token_classification": "entity_f1", "embedding": "spearman"}[kind]
    assert m["metric"] == metric and m["elastic_id"] and m["layers"] == 1 and np.isfinite(m[metric])
