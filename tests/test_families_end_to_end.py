"""A search and an export per model family: a tiny teacher of each family's own config class, with a tokenizer
of its kind, through `autocompress search` (2 trials) and `export` to torch, ONNX and OpenVINO, each export
predicting again from its files. And a teacher of a model type no family takes: one line, exit 2."""

from __future__ import annotations

import pytest
from conftest import run_cli, write_experiment, write_task

from autocompress.testing import TINY_FAMILIES, make_teacher_dir

SPACE = ("depth: {choices: [2]}\nheads_keep: {choices: [0.5]}\nffn_keep: {choices: [0.5]}\nvocab_prune: {choices: [true]}\n"
         "bits: {choices: [32]}\nprune_ratio: {choices: [0.25]}\ntrain_steps: {choices: [2]}\nfixed: {batch_size: 16}\n")


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_search_and_export_on_every_runtime(family, tmp_path, monkeypatch, capsys):
    teacher = make_teacher_dir(tmp_path / "teacher", family=family)
    exp = write_experiment(tmp_path, teacher, write_task(tmp_path / "data", 96, 32))
    space = tmp_path / "space.yaml"
    space.write_text(SPACE)
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(monkeypatch, capsys, "search", exp, "--baselines", "none", "--no-memory", "--space", space,
                             "--trials", 2, "--study", "s")
    assert code == 0, err
    assert "2/2 done" in err and "Search report: study `s`" in out
    assert "is left out of search space" not in err  # every family takes every dimension
    for fmt in ("torch", "onnx", "openvino"):
        code, out, err = run_cli(monkeypatch, capsys, "export", "--study", "s", "--pick", "best", "--format", fmt,
                                 "--out", f"model-{fmt}")
        assert code == 0, err
        code, out, err = run_cli(monkeypatch, capsys, "predict", f"model-{fmt}", "good fun great", "awful sad w3")
        assert code == 0, err
        lines = out.strip().splitlines()
        assert len(lines) == 2 and all(line.split("\t")[0] in ("0", "1") for line in lines), out


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_a_bare_encoder_of_every_family_is_fine_tuned_into_a_teacher(family, tmp_path, monkeypatch, capsys):
    teacher = make_teacher_dir(tmp_path / "encoder", family=family, task_model=False)
    exp = write_experiment(tmp_path, teacher, write_task(tmp_path / "data", 96, 32))
    recipe = tmp_path / "r.yaml"
    recipe.write_text("layers: [0, 2]\nffn_keep: 0.5\nbits: 8\ntrain_steps: 2\nbatch_size: 16\n")
    code, out, err = run_cli(monkeypatch, capsys, "compress", exp, "--recipe", recipe, "--out", tmp_path / "o")
    assert code == 0, err
    assert "fine-tuning on 72 rows" in err and "accuracy" in out


def test_a_teacher_of_another_model_type_is_one_line(tmp_path, monkeypatch, capsys):
    from transformers import GPT2Config, GPT2ForSequenceClassification

    teacher = tmp_path / "gpt2"
    GPT2ForSequenceClassification(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50, n_positions=32)).save_pretrained(teacher)
    make_teacher_dir(tmp_path / "bert")  # a tokenizer to sit beside it
    for f in (tmp_path / "bert").iterdir():
        if f.name.startswith(("tokenizer", "vocab", "special")):
            (teacher / f.name).write_bytes(f.read_bytes())
    exp = write_experiment(tmp_path, teacher, write_task(tmp_path / "data", 40, 16))
    recipe = tmp_path / "r.yaml"
    recipe.write_text("bits: 8\n")
    code, _, err = run_cli(monkeypatch, capsys, "compress", exp, "--recipe", recipe, "--out", tmp_path / "o")
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err  # progress lines may come before it
    assert "is a gpt2 model; autocompress compresses these encoder model types: bert, roberta" in errors[0]
