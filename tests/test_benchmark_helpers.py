"""The benchmark scripts' shared helper that builds a candidate once and reuses it (experiments/_common.py)."""

import json
import sys
from pathlib import Path
from types import SimpleNamespace

from autocompress import session
from autocompress.config import Experiment
from autocompress.engine.recipe import Recipe
from autocompress.session import engine_inputs

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "experiments"))
from _common import cached_run


def test_cached_run_builds_once_then_reads_the_folder(tiny_experiment, tmp_path, monkeypatch):
    inputs, _teacher = engine_inputs(Experiment.from_file(tiny_experiment))
    recipe, folder = Recipe(layers=[0], bits=8, train_steps=2, batch_size=8), tmp_path / "row"
    steps: list[int] = []
    first = cached_run(inputs, recipe, folder, "row", hooks=[lambda step, *_: steps.append(step)])
    assert steps == [1, 2] and (folder / "metrics.json").is_file()

    def no_build(*args, **kwargs):
        raise AssertionError("a built folder must be reused")

    monkeypatch.setattr(session, "run_recipe", no_build)
    again = cached_run(inputs, recipe, folder, "row")
    assert again == first and again.train_steps == 2


def _benchmark():
    import sst2_benchmark

    return sst2_benchmark


def test_the_main_command_script_runs_what_the_readme_quotes():
    from main_command import readme_command

    command = readme_command()
    assert command.startswith("HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 .venv/bin/autocompress search ")
    assert "--beat-baselines" in command  # the first search is judged against the baselines


# sst2_benchmark.py drives the product's search, baselines, budget and confirmation; what it adds is tested here


def _front(*rows):
    return [{"trial": n, "score": v, "test_score": t, "bytes": b, "latency_ms_b1": ms} for n, v, t, b, ms in rows]


TEACHER = {"score": 0.90, "test_score": 0.90, "bytes": 100, "latency_ms_b1_side_by_side": 10.0}


def test_a_target_point_is_chosen_on_validation_and_only_reported_on_test():
    bench = _benchmark()
    front = _front((1, 0.90, 0.80, 20, 4.0),   # smaller and faster enough, best on validation: the point
                   (2, 0.85, 0.95, 20, 4.0),   # smaller and faster enough, best on test: never put in its place
                   (3, 0.99, 0.99, 50, 4.0))   # best on both, but only 2x smaller
    got = bench.check_target(front, TEACHER, keep=0.99, smaller=4, faster=2)
    assert got["candidates"] == [1, 2] and got["trial"] == 1
    assert not got["met"] and got["test_share"] == 0.80 / 0.90 and got["validation_share"] == 1.0
    assert (got["x_smaller"], got["x_faster"]) == (5.0, 2.5)
    tie = bench.check_target(_front((4, 0.9, 0.9, 20, 4.0), (5, 0.9, 0.85, 10, 4.0)), TEACHER, 0.99, 4, 2)
    assert tie["trial"] == 5 and not tie["met"]  # a validation tie goes to fewer bytes, whatever the test says
    lines = bench.target_lines([("target", got)])
    assert "**missed**: trial 1" in lines[0] and "test accuracy 0.8000, 88.9% of the teacher's" in lines[0]


def test_a_target_no_front_trial_reaches_is_missed_and_the_nearest_is_named():
    bench = _benchmark()
    front = _front((1, 0.90, 0.90, 20, 4.0), (2, 0.80, 0.80, 6, 2.5))
    got = bench.check_target(front, TEACHER, keep=0.97, smaller=20, faster=5)
    assert got["trial"] is None and not got["met"] and got["closest"]["trial"] == 2
    assert "**missed**; no front trial meets both ratios (nearest: trial 2" in bench.target_lines([("stretch", got)])[0]
    assert bench.check_target([], TEACHER, 0.97, 20, 5)["closest"] is None


def test_an_absolute_target_is_judged_on_the_test_score_of_the_point_validation_chose():
    bench = _benchmark()
    front = _front((1, 0.91, 0.89, 10, 20.0),   # >= 10x smaller, best on validation: the point, 0.89 on test
                   (2, 0.90, 0.92, 10, 20.0),   # would pass on test, but validation did not choose it
                   (3, 0.95, 0.95, 50, 4.0))    # only 2x smaller
    got = bench.check_target(front, TEACHER, None, 10, 0, floor=0.90)
    assert got["trial"] == 1 and not got["met"] and got["candidates"] == [1, 2]
    assert bench.check_target(front, TEACHER, None, 10, 0, floor=0.89)["met"]
    both = bench.check_target(front, TEACHER, 0.99, 10, 0, floor=0.80)
    assert not both["met"]  # the share (0.89 / 0.90) misses even where the floor is met
    line = bench.target_lines([("(iv)", got)])[0]
    assert line.startswith("- (iv): test accuracy >= 0.90, >= 10x fewer bytes: **missed**: trial 1"), line
    assert "lower batch-1 latency" not in line
    assert bench.check_target(_front((4, 0.9, 0.9, 50, 1.0)), TEACHER, None, 10, 0, 0.9)["closest"]["trial"] == 4
    names = [t[0] for t in bench.TARGETS]
    assert names[:3] == ["(i)", "(ii)", "(iv)"] and bench.TARGETS[0][1:] == (0.99, None, 20.0, 10.0)
    assert bench.TARGETS[1][1:] == (0.97, None, 30.0, 12.0) and bench.TARGETS[2][1:] == (None, 0.90, 10.0, 0.0)


def test_the_results_file_opens_with_the_protocol_verbatim_and_its_commit(tmp_path):
    from _common import protocol_header, protocol_state

    bench = _benchmark()
    text = bench.PROTOCOL.read_text()
    lines = protocol_header(bench.PROTOCOL, "abc1234", False, [])
    assert "\n".join(lines).startswith(text.rstrip("\n") + "\n")
    assert "- protocol above: `sst2-benchmark-protocol.md`, fixed in commit abc1234" in lines
    assert "- departures from the protocol: none" in lines
    elsewhere = tmp_path / "protocol.md"
    elsewhere.write_text("# rules\n\n- one\n")
    assert protocol_state(elsewhere) == (None, False)  # outside the repository: no commit fixed it
    draft = protocol_header(elsewhere, None, False, ["--trials 10"])
    assert draft[0] == "# rules\n\n- one" and "NOT committed" in draft[4] and draft[5].endswith("--trials 10")
    assert "changed since commit abc1234" in protocol_header(elsewhere, "abc1234", True, [])[4]


def test_the_drivers_defaults_are_the_protocols_and_departures_are_listed():
    bench = _benchmark()
    ap = bench.parser()
    text = bench.PROTOCOL.read_text()
    assert bench.SPACES[bench.PROTOCOL_SPACE] == ("sst2-benchmark.yaml", "sst2-benchmark-lowbit", 200, 60.0)
    assert ap.get_default("space") == bench.PROTOCOL_SPACE == "elastic-lowbit"
    for phrase in ("200 finished trials", "60 minutes", "0.9 x the fastest", "in 5 rounds", "seed 0",
                   "`sst2-benchmark-lowbit`", "`search_spaces/elastic-lowbit.yaml`", "`experiments/sst2-benchmark.yaml`",
                   "`bits: [8, 4, 2]`", "`embedding_bits: [2]`", ">= 20x fewer bytes and >= 10x lower batch-1",
                   ">= 30x fewer bytes and >= 12x", "test accuracy >= 0.90 and >= 10x fewer bytes"):
        assert phrase in text
    assert (ap.get_default("latency_margin"), ap.get_default("confirm_rounds"), ap.get_default("seed")) == (0.9, 5, 0)
    args = ap.parse_args(["--trials", "200", "--confirm-rounds", "3", "--report-only"])
    args.timeout_min = 60.0
    protocol = {**{k: ap.get_default(k) for k in vars(args)}, "trials": 200, "timeout_min": 60.0}
    assert bench.departures(args, protocol) == ["--confirm-rounds 3"]


def test_the_inc_peer_tunes_on_the_validation_rows_written_from_their_token_ids():
    import numpy as np

    from autocompress.engine.batches import Encoded

    class Tok:  # ids 1 and 2 are [CLS] and [SEP]; word k is id k + 10
        cls_token_id, sep_token_id, pad_token_id = 1, 2, 0

        def decode(self, ids):
            return " ".join(f"w{i - 10}" for i in ids)

        def __call__(self, text, truncation, max_length):
            return {"input_ids": ([1] + [int(w[1:]) + 10 for w in text.split()] + [2])[:max_length]}

    rows = Encoded(ids=np.array([1, 13, 14, 2, 1, 15, 2], dtype=np.int32), types=np.zeros(7, dtype=np.int8),
                   offsets=np.array([0, 4, 7]), labels=np.array([1, 0]))
    tsv, off = _benchmark().rows_tsv(Tok(), rows, max_length=64)
    assert tsv == "sentence\tlabel\nw3 w4\t1\nw5\t0\n" and off == 0
    assert _benchmark().rows_tsv(Tok(), rows, max_length=64, idx=[1]) == ("sentence\tlabel\nw5\t0\n", 0)
    assert _benchmark().rows_tsv(Tok(), rows, max_length=3)[1] == 1  # a row that tokenizes back otherwise is counted


def test_the_benchmark_experiment_trains_every_width_its_space_searches():
    from autocompress.engine.elastic import embedding_width
    from autocompress.search.space import load_space

    bench = _benchmark()
    exp = Experiment.from_file(bench.HERE / bench.SPACES[bench.PROTOCOL_SPACE][0])
    space = load_space(bench.PROTOCOL_SPACE)
    assert {b for b in space.values_of("bits") if b < 16} <= set(exp.elastic.bits)
    tables = {embedding_width(b) for b in exp.elastic.bits} | set(exp.elastic.embedding_bits)
    assert set(space.values_of("embedding_bits")) <= tables


def test_the_results_file_gains_the_teacher_and_ablation_sections_once_and_no_number_changes(tmp_path):
    bench = _benchmark()
    exp = Experiment.from_file(Path(bench.HERE) / "sst2-benchmark.yaml")
    teacher = tmp_path / "teacher"
    teacher.mkdir()
    (teacher / "meta.json").write_text(json.dumps({"finetune_steps": 5393, "trained_on": "cpu"}))
    report = {"teacher": {"metric": "accuracy", "score": 0.8899, "test_score": 0.8956}}  # as Report.to_dict has it
    md = tmp_path / "sst2-benchmark.md"
    before = "# results\n\n| trial | 0.8100 |\n\n## Search cost\n\n- trials: 200 finished\n"
    md.write_text(before)
    md.with_suffix(".json").write_text(json.dumps({"report": report}))

    bench.add_context(md, exp, teacher)
    text = md.read_text()
    assert text.startswith("# results\n\n| trial | 0.8100 |\n") and text.endswith("## Search cost\n\n- trials: 200 finished\n")
    assert "3 epochs at lr 5e-05, batch 32 (5393 steps on cpu); validation accuracy 0.8899, test 0.8956" in text
    sweep = json.loads((Path(bench.HERE) / "results" / "teacher-sweep.json").read_text())["rows"]
    assert all(f"| {r['epochs']:g} | {r['lr']:g} | {r['validation']:.4f} | {r['test']:.4f} |" in text for r in sweep)
    ablation = json.loads((Path(bench.HERE) / "results" / "elastic-ablation.json").read_text())["summary"]
    assert all(f"| {name} | {v['hv_validation']:.4f} |" in text for name, v in ablation.items())
    assert "| base | 3.1421 | +0.0000 |" in text and "| w2-e2 | 2.36 | 0.7208 | 0.7859 | +6.51 pts |" in text
    bench.add_context(md, exp, teacher)  # a second call adds nothing
    assert md.read_text() == text
