"""The teacher's fine-tuning: a run stopped part-way goes on from its checkpoint to the same teacher."""

import pytest
import torch
from conftest import make_teacher_dir, write_experiment, write_task

from autocompress import teacher as teacher_module
from autocompress.config import Experiment


class _Stop(Exception):
    pass


def test_a_stopped_fine_tuning_goes_on_from_its_checkpoint(tmp_path, monkeypatch):
    encoder = make_teacher_dir(tmp_path / "enc", task_model=False)  # a bare encoder: fine-tuned here
    task = write_task(tmp_path / "data", 96, 24)
    block = {"finetune": {"epochs": 1, "batch_size": 8}}
    (tmp_path / "whole").mkdir()
    whole_exp = Experiment.from_file(write_experiment(tmp_path / "whole", encoder, task, teacher=block))
    monkeypatch.setattr(teacher_module, "CHECKPOINT_EVERY", 3)
    whole = teacher_module.prepare(whole_exp)

    (tmp_path / "stopped").mkdir()
    exp = Experiment.from_file(write_experiment(tmp_path / "stopped", encoder, task, teacher=block))
    real_train = teacher_module.train_

    def stopping(model, batches, settings, hooks=(), **kw):
        def stop(step, *_):
            if step == 7:
                raise _Stop

        return real_train(model, batches, settings, hooks=[*hooks, stop], **kw)

    monkeypatch.setattr(teacher_module, "train_", stopping)
    with pytest.raises(_Stop):
        teacher_module.prepare(exp)
    partial = list((exp.cache / "teachers").glob("*.partial"))
    assert len(partial) == 1 and (partial[0] / "checkpoint.pt").is_file()
    assert not [p for p in (exp.cache / "teachers").iterdir() if not p.name.endswith(".partial")]  # no teacher yet

    monkeypatch.setattr(teacher_module, "train_", real_train)
    lines: list[str] = []
    resumed = teacher_module.prepare(exp, lines.append)
    assert any("going on from step 6" in ln for ln in lines), lines
    assert not partial[0].exists()  # removed once the teacher is cached
    a, b = whole.model.state_dict(), resumed.model.state_dict()
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    assert torch.allclose(whole.train_logits, resumed.train_logits, atol=1e-4)


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_the_shipped_tokenizer_is_written_compact_and_tokenizes_as_the_teachers(family, tmp_path):
    from transformers import AutoTokenizer

    from autocompress.engine import artifact

    source = make_teacher_dir(tmp_path / "t", family=family)
    exp = Experiment.from_file(write_experiment(tmp_path, source, write_task(tmp_path / "data", 40, 12)))
    shipped = teacher_module.prepare(exp).task_files / artifact.TOKENIZER
    text = (shipped / artifact.TOKENIZER_JSON).read_text()
    assert "\n" not in text.strip()  # no indentation: every model ships this file
    original, reloaded = AutoTokenizer.from_pretrained(str(source)), AutoTokenizer.from_pretrained(str(shipped))
    sentences = ["the film was good", "a dull , tedious movie !", "unseenword zzz", "two  spaces and UPPER"]
    assert reloaded(sentences)["input_ids"] == original(sentences)["input_ids"]
