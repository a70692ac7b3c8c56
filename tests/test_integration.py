"""The real teacher (packaged all-MiniLM-L6-v2) on a 2,000-sentence SST-2 sample. CI runs these."""

from pathlib import Path

import pytest

from autocompress.config import Experiment
from autocompress.engine.measure import predict_logits, task_metrics
from autocompress.engine.storage import load_model
from autocompress.engine.recipe import Recipe
from autocompress.session import engine_inputs, run_recipe

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    exp = Experiment.from_file(ROOT / "experiments" / "sst2-small.yaml")
    exp = exp.model_copy(update={"cache_dir": str(tmp_path_factory.mktemp("cache"))})
    log: list[str] = []
    inputs, teacher = engine_inputs(exp, log.append)
    return inputs, teacher, log


def test_teacher_is_finetuned_into_a_real_classifier(real):
    inputs, teacher, log = real
    assert any("fine-tuning on 2000 rows" in m for m in log)
    data = inputs.data
    assert (len(data.train), len(data.validation), len(data.test)) == (2000, 872, 872)
    assert inputs.teacher_logits.shape == (2000, 2)
    # 63 steps on 2k sentences; the full run reaches ~0.9
    assert teacher.metrics["validation"]["accuracy"] > 0.75 and teacher.metrics["test"]["accuracy"] > 0.75


def test_distilled_int8_student_is_smaller_and_still_accurate(real, tmp_path):
    inputs, teacher, _ = real
    base = run_recipe(inputs, Recipe(), tmp_path / "teacher")
    res = run_recipe(inputs, Recipe(layers=(0, 2, 4), bits=8, vocab_prune=True, train_steps=120, lr=1e-4),
                     tmp_path / "student")
    m = res.metrics
    assert base.metrics.accuracy == pytest.approx(teacher.metrics["validation"]["accuracy"], abs=1e-9)
    assert base.metrics.test_accuracy == pytest.approx(teacher.metrics["test"]["accuracy"], abs=1e-9)
    assert m.accuracy > 0.7 and m.test_accuracy > 0.7
    assert m.weight_bytes < base.metrics.weight_bytes / 8  # half the layers, int8, a pruned vocabulary
    assert m.bytes < base.metrics.bytes / 6  # with the tokenizer both ship
    assert m.runtime == "torch-int8-dynamic"
    again = load_model(tmp_path / "student")
    assert task_metrics(predict_logits(again, inputs.data.test), inputs.data.test.labels)["accuracy"] > 0.7
