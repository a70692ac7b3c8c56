"""The command line: real runs on a tiny teacher; bad input gives one line and exit code 2."""

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_teacher_dir, run_cli, write_experiment, write_task
from autocompress.testing import ENTITY_TAGS, write_pair_task, write_token_task

from autocompress import cli
from autocompress.search.storage import DEFAULT_STORAGE
from autocompress.tracking import DEFAULT_TRACKING_URI


@pytest.fixture
def recipe_file(tmp_path):
    p = tmp_path / "recipe.yaml"
    p.write_text("layers: [0, 2]\nbits: 8\ntrain_steps: 4\nbatch_size: 16\n")
    return p


def test_compress_prints_and_writes_json(tiny_experiment, recipe_file, tmp_path, monkeypatch, capsys):
    out = tmp_path / "model"
    code, stdout, _ = run_cli(monkeypatch, capsys, "compress", tiny_experiment, "--recipe", recipe_file,
                              "--out", out, "--json", tmp_path / "m.json")
    assert code == 0
    assert "accuracy" in stdout and "torch-int8-dynamic" in stdout
    m = json.loads((tmp_path / "m.json").read_text())
    assert m["layers"] == 2 and m["bits"] == 8
    assert m["weight_bytes"] == (out / "weights.safetensors").stat().st_size < m["bytes"]  # bytes: tokenizer too
    assert json.loads((out / "recipe.json").read_text())["layers"] == [0, 2]
    assert (out / "tokenizer" / "tokenizer_config.json").is_file()


def test_teacher_that_is_no_classifier_is_finetuned_and_cached(tmp_path, recipe_file, monkeypatch, capsys):
    teacher = make_teacher_dir(tmp_path / "enc", task_model=False)
    exp = write_experiment(tmp_path, teacher, write_task(tmp_path / "d", 96, 32))
    code, _, err = run_cli(monkeypatch, capsys, "compress", exp, "--recipe", recipe_file, "--out", tmp_path / "o")
    assert code == 0 and "fine-tuning on 72 rows" in err  # a quarter of the 96 is held out for validation
    code, _, err = run_cli(monkeypatch, capsys, "compress", exp, "--recipe", recipe_file, "--out", tmp_path / "o2")
    assert code == 0 and "fine-tuning" not in err  # the fine-tuned teacher and its logits come from the cache


def _bad_cases(tmp_path):
    teacher = make_teacher_dir(tmp_path / "t")
    task = write_task(tmp_path / "d", 20, 8)
    good = write_experiment(tmp_path, teacher, task)
    malformed = tmp_path / "malformed.yaml"
    malformed.write_text("task: {train: [\n")
    unknown_key = tmp_path / "unknown.yaml"
    unknown_key.write_text(good.read_text() + "budjet: 3\n")
    bad_recipe = tmp_path / "bad_recipe.yaml"
    bad_recipe.write_text("bits: 3\n")
    far_layer = tmp_path / "far.yaml"
    far_layer.write_text("layers: [0, 9]\n")
    ok_recipe = tmp_path / "ok.yaml"
    ok_recipe.write_text("bits: 32\n")
    def sub(name):
        (tmp_path / name).mkdir()
        return tmp_path / name

    binary_exp = tmp_path / "binary.yaml"
    binary_exp.write_bytes(b"\xff\xfe\x00\x01 not text")
    binary_recipe = tmp_path / "binary_recipe.yaml"
    binary_recipe.write_bytes(b"bits: \xe9\xff\n")
    blank = tmp_path / "blank_label.tsv"
    blank.write_text(Path(task["train"]).read_text() + "good fun\t\n")
    empty = tmp_path / "empty_dev.tsv"
    empty.write_text("sentence\tlabel\n")
    three = make_teacher_dir(tmp_path / "three_labels", num_labels=3)  # a classifier for another task
    scores = tmp_path / "scores.tsv"
    scores.write_text("sentence\tscore\ngood fun\t4.5\nbad w1\thigh\n")
    conll = write_token_task(tmp_path / "conll", 20, 8, 8)
    bad_tag, bad_iob, bad_columns = (tmp_path / f"{n}.txt" for n in ("bad_tag", "bad_iob", "bad_columns"))
    bad_tag.write_text("good NN B-POS\nw1 NN B-DATE\n")
    bad_iob.write_text("w1 NN O\nw2 NN O\n\nw3 NN O\ngood NN I-POS\n")
    bad_columns.write_text("good NN B-POS\nw1 O\n")
    tags = {"type": "token_classification", "labels": list(ENTITY_TAGS), "validation": str(conll["dev"])}
    pairs = write_pair_task(tmp_path / "pairs", 20, 8)
    copy = tmp_path / "pairs" / "copy.tsv"  # the training pairs are the test pairs: no text left to distill on
    copy.write_text(Path(pairs["train"]).read_text())
    embed = {"type": "embedding", "text": "sentence1", "text_pair": "sentence2", "label": "score"}

    return {
        "missing experiment": ([tmp_path / "nope.yaml", ok_recipe], "experiment file not found"),
        "malformed yaml": ([malformed, ok_recipe], "malformed YAML"),
        "unknown key": ([unknown_key, ok_recipe], "budjet: unknown key"),
        "bad recipe value": ([good, bad_recipe], "bits"),
        "missing recipe": ([good, tmp_path / "none.yaml"], "recipe file not found"),
        "layer out of range": ([good, far_layer], "the teacher has layers 0..2"),
        "missing data file": ([write_experiment(sub("e1"), teacher, {**task, "dev": tmp_path / "gone.tsv"}), ok_recipe],
                              "gone.tsv: data file not found"),
        "wrong column": ([write_experiment(sub("e2"), teacher, task, task={"text": "review"}), ok_recipe],
                         "no column 'review'"),
        "unknown teacher": ([write_experiment(sub("e3"), "no-such-teacher-pkg", task), ok_recipe], "not found"),
        "hub teacher offline": ([write_experiment(sub("e4"), "someone/missing-model", task), ok_recipe],
                                "could not be loaded"),
        "binary experiment file": ([binary_exp, ok_recipe], "binary.yaml: not a UTF-8 text file"),
        "binary recipe file": ([good, binary_recipe], "binary_recipe.yaml: not a UTF-8 text file"),
        "blank label": ([write_experiment(sub("e5"), teacher, {**task, "train": blank}), ok_recipe],
                        "blank_label.tsv (train data): row 21 has a blank label"),
        "empty dev split": ([write_experiment(sub("e6"), teacher, {**task, "dev": empty}), ok_recipe],
                            "empty_dev.tsv: test data has no rows; fix task.dev"),
        "teacher with other labels": ([write_experiment(sub("e7"), three, task), ok_recipe],
                                      "is a classification model that has 3 labels but the task has 2"),
        "validation larger than train": ([write_experiment(sub("e8"), teacher, task, task={"validation_size": 25}),
                                          ok_recipe], "task.validation_size 25 holds out 25 of the 20 training rows"),
        "validation size not whole": ([write_experiment(sub("e9"), teacher, task, task={"validation_size": 2.5}),
                                       ok_recipe], "give a fraction below 1 or a whole number of rows"),
        "label outside the declared labels": ([write_experiment(sub("e10"), teacher, task,
                                                                task={"labels": ["neg", "pos"]}), ok_recipe],
                                              "label '0' is not one of ['neg', 'pos']; fix task.labels"),
        "regression label not a number": ([write_experiment(sub("e11"), teacher, {"train": scores, "dev": scores},
                                                            task={"type": "regression", "label": "score"}),
                                           ok_recipe], "scores.tsv (train data): row 2 has label 'high', not a number"),
        "tag outside the declared tags": ([write_experiment(sub("e12"), teacher, {**conll, "train": bad_tag},
                                                            task=tags), ok_recipe], "bad_tag.txt:2: "),
        "malformed IOB": ([write_experiment(sub("e13"), teacher, {**conll, "train": bad_iob}, task=tags), ok_recipe],
                          "bad_iob.txt:5: "),
        "token line of the wrong column count": ([write_experiment(sub("e14"), teacher,
                                                                   {**conll, "train": bad_columns}, task=tags),
                                                  ok_recipe], "bad_columns.txt:2: 2 columns"),
        "embedding task with no text": ([write_experiment(sub("e15"), teacher, {"train": copy, "dev": pairs["train"]},
                                                          task={**embed, "validation": str(copy)}), ok_recipe],
                                        "an embedding task needs text to distill on"),
    }


@pytest.mark.parametrize("case", ["missing experiment", "malformed yaml", "unknown key", "bad recipe value",
                                  "missing recipe", "layer out of range", "missing data file", "wrong column",
                                  "unknown teacher", "hub teacher offline", "binary experiment file",
                                  "binary recipe file", "blank label", "empty dev split", "teacher with other labels",
                                  "validation larger than train", "validation size not whole",
                                  "label outside the declared labels", "regression label not a number",
                                  "tag outside the declared tags", "malformed IOB",
                                  "token line of the wrong column count", "embedding task with no text"])
def test_bad_input_gives_one_line_and_exit_2(case, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (exp, recipe), needle = _bad_cases(tmp_path)[case]
    code, out, err = run_cli(monkeypatch, capsys, "compress", exp, "--recipe", recipe, "--out", tmp_path / "o")
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert code == 2
    assert len(lines) == 1 and needle in lines[0], err
    assert "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_console_script_runs_in_a_fresh_process(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "autocompress.cli", "compress", str(tmp_path / "x.yaml"),
                           "--recipe", str(tmp_path / "r.yaml")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error:") and len(proc.stderr.strip().splitlines()) == 1


def test_search_then_report(tiny_experiment, tmp_path, monkeypatch, capsys):
    space = tmp_path / "space.yaml"
    space.write_text("depth: {low: 1, high: 3}\nbits: {choices: [32, 8]}\ntrain_steps: {low: 2, high: 3}\n"
                     "fixed: {batch_size: 16}\n")
    monkeypatch.chdir(tmp_path)  # default sqlite stores land in the working directory
    code, out, err = run_cli(monkeypatch, capsys, "search", tiny_experiment, "--space", space, "--trials", 3,
                             "--study", "demo", "--max-size-mb", 1)
    assert code == 0, err
    assert "Search report: study `demo`" in out and "autocompress ui" in out
    assert (tmp_path / "autocompress.db").is_file() and (tmp_path / "mlflow.db").is_file()
    assert (tmp_path / "out" / "demo" / "pareto.png").is_file()
    assert "trial 2" in err and "3/3 done" in err  # live progress
    # the baselines of every installed runtime, measured before the trials and shown beside the front
    assert "baselines: ONNX Runtime dynamic int8: validation accuracy" in err
    assert "## Baselines: the teacher on each runtime, no search" in out
    for label in ("ONNX Runtime dynamic int8", "OpenVINO + NNCF static int8", "torch dynamic int8"):
        assert f"| {label} |" in out
    assert "Resident / peak MB" in out
    code, out, _ = run_cli(monkeypatch, capsys, "report", "--study", "demo", "--confirm-rounds", "2", "--no-memory")
    assert code == 0 and "hypervolume" in out and "confirmed side by side over 2 rounds" in out


@pytest.mark.parametrize(
    "args, needle",
    [
        (["--space", "nope.yaml"], "search space file not found"),
        (["--min-retention", "1.5"], "--min-retention 1.5 is impossible"),
        (["--min-score", "1.5"], "--min-score 1.5 is impossible"),
        (["--min-score", "0.5", "--min-accuracy", "0.5"], "give --min-score or --min-accuracy, not both"),
        (["--storage", "postgresql://nobody@127.0.0.1:1/none"], "cannot be opened"),
        (["--eta", "1"], "eta must be at least 2"),
    ],
)
def test_search_bad_input(tiny_experiment, tmp_path, monkeypatch, capsys, args, needle):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(monkeypatch, capsys, "search", tiny_experiment, "--baselines", "none", "--no-memory", "--trials", 1, "--no-tracking", *args)
    assert code == 2 and needle in err and "Traceback" not in err


def test_min_accuracy_on_a_task_scored_in_mcc_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exp = write_experiment(tmp_path, make_teacher_dir(tmp_path / "t"), write_task(tmp_path / "d"),
                           task={"metric": "mcc"})
    code, _, err = run_cli(monkeypatch, capsys, "search", exp, "--baselines", "none", "--no-memory", "--trials", 1, "--no-tracking", "--min-accuracy", "0.8")
    assert code == 2 and "--min-accuracy: this task is scored in mcc (task.metric); use --min-score" in err
    assert not (tmp_path / "out").exists()


def test_search_with_an_unusable_tracking_store(tiny_experiment, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(monkeypatch, capsys, "search", tiny_experiment, "--baselines", "none", "--no-memory", "--trials", 1,
                             "--tracking-uri", "nosuch://x")
    lines = err.strip().splitlines()
    assert code == 2 and out == ""
    assert len(lines) == 1 and lines[0].startswith("error: MLflow tracking store 'nosuch://x' cannot be used (")
    assert lines[0].endswith("check --tracking-uri or pass --no-tracking")
    assert not (tmp_path / "autocompress.db").exists()  # refused before the study is created


def test_report_of_unknown_study(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(monkeypatch, capsys, "report", "--study", "ghost")
    assert code == 2 and "no study named 'ghost'" in err
    assert not (tmp_path / "autocompress.db").exists()  # opened read-only: no empty database left behind


def test_export_format_must_be_torch_or_onnx(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(monkeypatch, capsys, "export", "--study", "s", "--out", "m", "--format", "tflite")
    assert code == 2 and err.strip() == "error: --format tflite: use one of torch, onnx, onnx-static, openvino"


@pytest.mark.parametrize("command, option, default", [
    (cli.search, "storage", DEFAULT_STORAGE), (cli.worker, "storage", DEFAULT_STORAGE),
    (cli.report, "storage", DEFAULT_STORAGE), (cli.export, "storage", DEFAULT_STORAGE),
    (cli.search, "tracking_uri", DEFAULT_TRACKING_URI), (cli.export, "tracking_uri", DEFAULT_TRACKING_URI),
    (cli.ui, "tracking_uri", DEFAULT_TRACKING_URI),
])
def test_option_defaults_are_the_library_defaults(command, option, default):
    assert inspect.signature(command).parameters[option].default is default


def test_export_predict_and_register(tiny_experiment, tmp_path, monkeypatch, capsys):
    space = tmp_path / "space.yaml"
    space.write_text("depth: {low: 1, high: 3}\nbits: {choices: [32, 8]}\ntrain_steps: {low: 2, high: 3}\n"
                     "fixed: {batch_size: 16}\n")
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(monkeypatch, capsys, "search", tiny_experiment, "--baselines", "none", "--no-memory", "--space", space, "--trials", 2,
                           "--study", "s")
    assert code == 0, err
    code, out, err = run_cli(monkeypatch, capsys, "export", "--study", "s", "--pick", "best", "--out", "model",
                             "--register", "tiny-classifier")
    assert code == 0, err
    assert "registered as 'tiny-classifier' version 1" in out
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=DEFAULT_TRACKING_URI)
    assert client.get_registered_model("tiny-classifier").name == "tiny-classifier"
    code, out, err = run_cli(monkeypatch, capsys, "predict", "model", "good fun great", "awful sad")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 2 and all(ln.split("\t")[0] in ("0", "1") for ln in lines)
    # an existing folder, an unknown trial, a corrupted export: one line, exit 2
    for args, needle in [
        (["export", "--study", "s", "--out", "model"], "already exists"),
        (["export", "--study", "s", "--pick", "99", "--out", "m2"], "no trial 99"),
        (["export", "--study", "nope", "--out", "m3"], "no study named 'nope'"),
    ]:
        code, _, err = run_cli(monkeypatch, capsys, *args)
        assert code == 2 and needle in err, err
    (tmp_path / "model" / "task.json").write_text("{}")
    code, _, err = run_cli(monkeypatch, capsys, "predict", "model", "good")
    assert code == 2 and "task.json is corrupted" in err


@pytest.mark.parametrize("args, needle", [
    (("report",), "Missing option '--study'"),
    (("search", "x.yaml", "--trials", "0"), "Invalid value for '--trials'"),
    (("search", "x.yaml", "--trials", "many"), "Invalid value for '--trials'"),
    (("frobnicate",), "No such command 'frobnicate'"),
    (("search", "x.yaml", "--timeout", "-5"), "Invalid value for '--timeout'"),
    (("search", "x.yaml", "--rung-steps", "-1"), "Invalid value for '--rung-steps'"),
])
def test_usage_errors_are_one_line_and_exit_2(args, needle, monkeypatch, capsys):
    code, out, err = run_cli(monkeypatch, capsys, *args)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and needle in err and "autocompress --help" in err
    assert len(err.strip().splitlines()) == 1


# ---- autocompress data ------------------------------------------------------------------------


def test_data_without_an_experiment_prints_the_four_examples(monkeypatch, capsys):
    import yaml

    from autocompress.config import TaskConfig
    from autocompress.datacheck import EXAMPLES

    code, out, _ = run_cli(monkeypatch, capsys, "data")
    assert code == 0 and out.splitlines().count("task:") == 4
    for title, block in EXAMPLES.items():
        assert f"# {title}\n{block}" in out
        TaskConfig.model_validate(yaml.safe_load(block)["task"])  # every example is a valid task block
    for ext in ("csv", "jsonl", "parquet"):
        assert f"train: data/train.{ext}" in out
    assert "path: nyu-mll/glue" in out and "autocompress data EXPERIMENT.yaml" in out


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_data_checks_an_experiment_split_by_split(fmt, tmp_path, monkeypatch, capsys):
    paths = write_task(tmp_path / "d", 40, 12, fmt=fmt, string_labels=True)
    exp = write_experiment(tmp_path, make_teacher_dir(tmp_path / "t"), paths)
    code, out, err = run_cli(monkeypatch, capsys, "data", exp)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[1] == "source: local files"
    assert lines[2] == "columns: text 'sentence', label 'label'; labels negative, positive"
    rows = {ln.split()[0]: ln for ln in lines if ln.split()[0] in ("train", "validation", "test")}
    assert rows["train"].split()[1:3] == ["30", "rows"] and rows["train"].endswith(f"train.{fmt}")
    assert rows["validation"].split()[1:3] == ["10", "rows"] and "held out from train" in rows["validation"]
    assert rows["test"].split()[1:3] == ["12", "rows"] and rows["test"].endswith(f"dev.{fmt}")
    counts = [ln.split("labels: ")[1] for ln in lines if "labels: " in ln]
    assert len(counts) == 3 and all(c.startswith("negative ") and ", positive " in c for c in counts)


def test_data_shows_when_the_hub_stands_in(tmp_path, monkeypatch, capsys):
    from conftest import fake_hub, hub_dataset

    calls = fake_hub(monkeypatch, hub_dataset(40, 10))
    paths = write_task(tmp_path / "d", 40, 10)
    paths["train"].unlink()
    exp = write_experiment(tmp_path, make_teacher_dir(tmp_path / "t"), paths,
                           task={"hub": {"path": "fake/glue", "name": "sst2"}})
    code, out, err = run_cli(monkeypatch, capsys, "data", exp)
    assert code == 0, err
    assert calls == [("fake/glue", "sst2")]
    assert f"source: hub dataset 'fake/glue' (sst2), because {paths['train']} was not found" in out
    assert "train       30 rows  hub 'fake/glue' (sst2) split 'train'" in out
    assert "test        10 rows  hub 'fake/glue' (sst2) split 'validation'" in out


def test_data_with_neither_files_nor_hub_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")  # the real hub client, switched off
    paths = write_task(tmp_path / "d", 40, 10)
    paths["dev"].unlink()
    exp = write_experiment(tmp_path, make_teacher_dir(tmp_path / "t"), paths,
                           task={"hub": {"path": "nyu-mll/glue", "name": "sst2"}})
    code, out, err = run_cli(monkeypatch, capsys, "data", exp)
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert code == 2 and out == "" and "Traceback" not in err
    assert errors == [f"error: tiny data: {paths['dev']} not found and hub dataset 'nyu-mll/glue' (sst2) not "
                      "reachable (hub off: HF_DATASETS_OFFLINE=1); put the files there or go online"]


def test_data_of_a_missing_local_file_without_a_hub(tmp_path, monkeypatch, capsys):
    paths = write_task(tmp_path / "d", 40, 10)
    exp = write_experiment(tmp_path, make_teacher_dir(tmp_path / "t"), {**paths, "train": tmp_path / "gone.csv"})
    code, _, err = run_cli(monkeypatch, capsys, "data", exp)
    assert code == 2 and err.strip().splitlines()[-1] == (
        f"error: {tmp_path / 'gone.csv'}: data file not found; fix task.train in the experiment file")
