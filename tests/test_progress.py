"""Progress on long work: plain lines (fake clock), bars on a terminal, the trial hook, the search summary."""

import io
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import make_teacher_dir, write_experiment, write_task

from autocompress import cli
from autocompress.config import Experiment
from autocompress.log import silent
from autocompress.progress import (
    Console,
    LineProgress,
    StepBar,
    TerminalProgress,
    duration,
    no_progress,
    progress_for,
)
from autocompress.search.run import run_search
from autocompress.search.space import parse_space
from autocompress.search.study import SearchSettings
from autocompress.search.summary import search_summary
from autocompress.teacher import prepare


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_duration():
    assert [duration(s) for s in (0, 8.4, 59.6, 65, 3599, 3720)] == ["0s", "8s", "1m 00s", "1m 05s", "59m 59s",
                                                                    "1h 02m"]


def test_plain_lines_at_each_quarter_and_every_30_seconds():
    clock, lines = FakeClock(), []
    progress = LineProgress(lines.append, every_pct=25, every_s=30, clock=clock)
    with progress(8, "teacher: fine-tuning") as bar:
        for step in range(8):
            clock.now += 10  # a 10-second step: a 30-second line now and then besides the quarters
            bar.advance(1, note=f"loss {1 - step / 10:.4f}")
    assert lines == [
        "teacher: fine-tuning 2/8 steps (25%), 20s elapsed, ~1m 00s left, loss 0.9000",
        "teacher: fine-tuning 4/8 steps (50%), 40s elapsed, ~40s left, loss 0.7000",
        "teacher: fine-tuning 6/8 steps (75%), 1m 00s elapsed, ~20s left, loss 0.5000",
        "teacher: fine-tuning 8 steps in 1m 20s, loss 0.3000",
    ]

    lines.clear()
    with progress(1000, "teacher: logits on training rows", "row") as bar:
        for _ in range(10):
            clock.now += 16  # no quarter is reached before 30 seconds pass
            bar.advance(20)
    assert lines == [
        "teacher: logits on training rows 40/1,000 rows (4%), 32s elapsed, ~12m 48s left",
        "teacher: logits on training rows 80/1,000 rows (8%), 1m 04s elapsed, ~12m 16s left",
        "teacher: logits on training rows 120/1,000 rows (12%), 1m 36s elapsed, ~11m 44s left",
        "teacher: logits on training rows 160/1,000 rows (16%), 2m 08s elapsed, ~11m 12s left",
        "teacher: logits on training rows 200/1,000 rows (20%), 2m 40s elapsed, ~10m 40s left",
        "teacher: logits on training rows stopped at 200/1,000 rows after 2m 40s",
    ]


def test_a_bar_stopped_by_an_error_says_where_and_the_error_goes_on():
    clock, lines = FakeClock(), []
    with (pytest.raises(RuntimeError, match="pruned"),
          StepBar(LineProgress(lines.append, clock=clock), "search: trial 4 training") as hook):
        for step in range(1, 4):
            clock.now += 1
            hook(step, 100, 0.5, None)
        raise RuntimeError("pruned")
    assert lines == ["search: trial 4 training stopped at 3/100 steps after 2s"]  # timed from the first step

    lines.clear()
    with StepBar(LineProgress(lines.append, clock=clock), "search: trial 5 training"):
        pass  # no training step (train_steps 0): no bar, no line
    assert lines == []


def test_step_bar_notes_the_recent_mean_loss_and_advances_by_steps():
    lines = []
    with StepBar(LineProgress(lines.append, every_pct=50, clock=FakeClock()), "t", window=2) as hook:
        for step, loss in zip((2, 4, 6, 8), (4.0, 2.0, 1.0, 1.0)):  # a hook may see every other step
            hook(step, 8, loss, None)
    assert lines == ["t 4/8 steps (50%), 0s elapsed, ~0s left, loss 3.0000", "t 8 steps in 0s, loss 1.0000"]


def test_which_display_goes_with_a_log():
    assert progress_for(silent) is no_progress
    lines = []
    plain = progress_for(lines.append)
    assert isinstance(plain, LineProgress) and plain.log == lines.append
    with no_progress(3, "nothing") as bar:
        bar.advance(3)
    assert isinstance(progress_for(Console(io.StringIO())), LineProgress)  # not a terminal: plain lines
    assert isinstance(progress_for(Console(FakeTTY())), TerminalProgress)
    assert isinstance(progress_for(Console(FakeTTY(), bars=False)), LineProgress)
    assert isinstance(progress_for(Console(io.StringIO(), bars=True)), TerminalProgress)


def test_bars_on_a_terminal_end_in_the_plain_closing_line_with_log_lines_above_them():
    tty, clock = FakeTTY(), FakeClock()
    console = Console(tty, clock=clock)
    with StepBar(console.progress, "search: trial 2 training") as hook:
        for step in range(1, 11):
            clock.now += 3
            hook(step, 10, 0.25, None)
            if step == 5:
                console("a line logged while the bar runs")
    out = tty.getvalue()
    assert "\r" in out and "search: trial 2 training:" in out and "/10" in out  # tqdm drew the bar
    assert "\ra line logged while the bar runs\n" in out  # on a line of its own, not glued to the bar
    assert out.endswith("\rsearch: trial 2 training 10 steps in 27s, loss 0.2500\n")  # from the first step
    assert console.live == 0


def test_the_command_line_logs_to_stderr_and_workers_stay_on_plain_lines(tiny_experiment, monkeypatch):
    assert isinstance(cli._log, Console) and cli._log.bars is None  # bars only when stderr is a terminal
    tty = FakeTTY()
    monkeypatch.setattr(sys, "stderr", tty)
    assert isinstance(cli._log.progress, TerminalProgress)
    seen = {}

    def fake_join(exp, study, storage, **kw):
        seen.update(kw)
        return 0

    import autocompress.search.run as run_module

    monkeypatch.setattr(run_module, "join_search", fake_join)
    monkeypatch.setattr(sys, "argv", ["autocompress", "worker", str(tiny_experiment), "--study", "s"])
    cli.main()
    assert isinstance(progress_for(seen["log"]), LineProgress)  # even on a terminal
    assert "worker: done, ran 0 trials" in tty.getvalue()


def test_teacher_fine_tuning_and_its_logits_show_progress(tmp_path):
    teacher = make_teacher_dir(tmp_path / "enc", task_model=False)  # a bare encoder: fine-tuned here
    exp = Experiment.from_file(write_experiment(tmp_path, teacher, write_task(tmp_path / "d", 96, 32)))
    lines = []
    prepare(exp, lines.append, LineProgress(lines.append, clock=FakeClock()))  # time stands still: quarters only
    tuning = [ln for ln in lines if ln.startswith("teacher: fine-tuning ")]
    assert tuning[0].startswith("teacher: fine-tuning on 72 rows for 4 steps")  # said before it starts
    assert [re.sub(r", loss \d+\.\d{4}$", "", ln) for ln in tuning[1:]] == [
        "teacher: fine-tuning 1/4 steps (25%), 0s elapsed, ~0s left",
        "teacher: fine-tuning 2/4 steps (50%), 0s elapsed, ~0s left",
        "teacher: fine-tuning 3/4 steps (75%), 0s elapsed, ~0s left",
        "teacher: fine-tuning 4 steps in 0s",
    ]
    assert "teacher: logits on training rows 72 rows in 0s" in lines

    lines.clear()
    prepare(exp, lines.append)  # all cached: no progress at all
    assert not any("fine-tuning" in ln or "logits on" in ln for ln in lines), lines


SPACE = {"depth": {"low": 1, "high": 2}, "bits": {"choices": [32]}, "train_steps": {"low": 4, "high": 4},
         "fixed": {"batch_size": 16}}


def test_a_search_shows_each_trials_training_and_ends_with_where_everything_went(tiny_experiment, tmp_path):
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    settings = SearchSettings(baselines="none", memory=False, study="tiny-progress", space=parse_space(SPACE, "test-space"), trials=2, seed=0,
                              storage=storage, out_dir=tmp_path / "out", enqueue_starts=False)
    lines: list[str] = []
    done = run_search(Experiment.from_file(tiny_experiment), settings, log=lines.append)

    assert any(ln.startswith("teacher: logits on training rows 120 rows in ") for ln in lines), lines
    for n in (0, 1):
        mine = [ln for ln in lines if ln.startswith(f"search: trial {n} training ")]
        assert mine[-1].startswith(f"search: trial {n} training 4 steps in "), mine
        assert lines.index(mine[-1]) < next(i for i, ln in enumerate(lines) if ln.startswith(f"search: trial {n} "
                                                                                            "COMPLETE"))

    summary = lines[-6:]
    assert summary[0].startswith("search: finished in ") and "trials of study 'tiny-progress': 2 complete" in summary[0]
    text = "\n".join(summary)
    assert f"'tiny-progress' in {storage}" in text
    assert f"{done.report_md} and {done.plot_png}" in text
    assert f"{tmp_path / 'out' / 'tiny-progress'}/trial-NNNN/" in text
    assert "MLflow    off" in text
    assert (f"autocompress export --study tiny-progress --storage {storage} --pick best "
            f"--out export/tiny-progress  (trial {done.report.best.key})") in text


def test_the_summary_names_mlflow_and_how_to_export_when_nothing_is_within_budget():
    report = SimpleNamespace(study="s", counts={"COMPLETE": 3, "PRUNED": 1}, best=None, elastic=None,
                             verdict_lines=lambda: [])
    lines = search_summary(report, storage="sqlite:///autocompress.db", out_dir=Path("out"),
                           report_md=Path("out/s/report.md"), plot_png=Path("out/s/pareto.png"),
                           tracking_uri="http://mlflow:5000", parent_run="abc123", seconds=3725, who="search")
    assert lines == [
        "search: finished in 1h 02m; trials of study 's': 3 complete, 1 pruned",
        "search:   study     's' in sqlite:///autocompress.db (run the same command again to resume or add trials)",
        "search:   report    out/s/report.md and out/s/pareto.png",
        "search:   trials    out/s/trial-NNNN/ (model, recipe.json, metrics.json of each trial this machine ran)",
        "search:   MLflow    http://mlflow:5000, parent run abc123",
        ("search:   export    no trial is within budget and above the majority class yet; any completed trial: "
         "autocompress export --study s --tracking-uri http://mlflow:5000 --pick <trial number> --out export/s"),
    ]
