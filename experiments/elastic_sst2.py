"""Issue 16 on SST-2: the elastic search (train once, cut every trial out) against per-trial distillation.

    python experiments/elastic_sst2.py [--experiment experiments/sst2-elastic.yaml] [--elastic-trials 60]
        [--compare-trials 60] [--seeds 0 1 2] [--timeout-min 0] [--solo-steps 2000] [--skip-compare | --compare-only]
        [--out experiments/results/elastic-sst2]

1. Elastic training: `elastic_net.prepare` on the experiment; its training seconds and steps as its cache
   records them (from the cache when it was trained before; the file says which).
2. Equal wall-clock: an elastic search (search_spaces/<--space>.yaml, default elastic.yaml, default sampler, --elastic-trials
   trials), then the per-trial distillation search (search_spaces/default.yaml) stopped at the elastic
   search's total time: elastic training seconds plus the elastic trials' seconds. Both under the budget of
   sst2_benchmark.py (--max-size-mb, --max-latency-ms, --min-retention). Trials per hour, median trial
   seconds, and the hypervolume of each front: chosen on validation, scored on test, with the teacher and
   both fronts timed side by side in this process. --timeout-min caps each of the two searches (the file
   then says the comparison is not at equal wall-clock). --equal-minutes M compares both at M minutes when
   the elastic search took longer: its fronts keep only the trials that ended inside M with its training
   counted, and the per-trial search is filled up to M (--per-trial-study reuses an earlier one).
3. Default sampler vs random search on the elastic space (--seeds, --compare-trials trials each, no
   enqueued starting points, no budget), hypervolume at equal trial counts, as sampler_compare.py does.
4. Recovery: the elastic search's best trial (highest validation score within budget) against the same
   shape, bits and vocabulary distilled on its own from the teacher for its own train_steps plus
   --solo-steps steps.

Resumable: every study lives in <cache>/elastic-bench/optuna.db (names carry the elastic network's id, the
mode, the sampler and the seed) and continues where it stopped; the solo student is kept in
<cache>/elastic-bench/solo/<recipe fingerprint>/ and reused. All studies reuse the one cached elastic
network. MLflow: the two searches of part 2 log to <cache>/elastic-bench/mlflow.db (as sst2_benchmark.py
does); the sampler studies are not tracked (as sampler_compare.py). Writes <out>.md and <out>.json.
Part 3's studies can be filled first by processes that each take some seeds or samplers (`--compare-only
--samplers random`, e.g. with `--threads 1` for one core each); the run that writes the files finds them
complete.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from _common import cached_run, log, provenance

from autocompress import elastic_net
from autocompress.config import Experiment
from autocompress.describe import summarize
from autocompress.engine.metrics import Metrics
from autocompress.engine.recipe import Recipe
from autocompress.search.budget import Budget
from autocompress.search.pareto import (
    Point,
    front,
    normalized_hypervolume,
    score_size_hypervolume,
)
from autocompress.search.recovery import counts
from autocompress.search.remeasure import side_by_side
from autocompress.search.run import run_search, with_threads
from autocompress.search.space import load_space
from autocompress.search.reference import trial_points
from autocompress.search.study import SearchSettings
from autocompress.session import engine_inputs
from autocompress.tracking import MlflowTracker, NullTracker

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TEACHER = "teacher"
MANY = 100_000  # the per-trial search's trial budget: only its time budget stops it
TRIALS_PER_HOUR_TODAY = 23  # issue 16: the per-trial search on this machine when the issue was filed


# ---- reading studies ---------------------------------------------------------------------------


def finished(study) -> list:
    """Trials that ran to an end (complete, pruned, or failed by their own error), in trial order."""
    return sorted((t for t in study.get_trials(deepcopy=False)
                   if counts(t) and t.datetime_start is not None and t.datetime_complete is not None),
                  key=lambda t: t.number)


def seconds(trial) -> float:
    """A trial's wall seconds, from its creation (sampling included) to its end."""
    return (trial.datetime_complete - trial.datetime_start).total_seconds()


def timing(trials: list, training_seconds: float = 0.0) -> dict:
    """Trial counts and rates: per hour of trial time, and per hour of trial time plus `training_seconds`."""
    secs = [seconds(t) for t in trials]
    total = sum(secs)
    states = [t.state.name for t in trials]
    return {
        "trials": len(secs), "complete": states.count("COMPLETE"), "pruned": states.count("PRUNED"),
        "failed": states.count("FAIL"), "trial_seconds": total, "training_seconds": training_seconds,
        "median_trial_seconds": statistics.median(secs) if secs else None,
        "per_hour": len(secs) / (total / 3600) if total > 0 else None,
        "per_hour_with_training": len(secs) / ((total + training_seconds) / 3600) if total + training_seconds > 0
        else None,
        # when the trials ran (a study reused from an earlier run says so)
        "first_start": min((t.datetime_start for t in trials), default=None),
        "last_end": max((t.datetime_complete for t in trials), default=None),
    }


def timing_by_kind(trials: list) -> dict[str, dict]:
    """Trial counts, median seconds and rate of the trials measured as cut (no training steps in their
    recipe) and of those that trained, apart."""
    kinds: dict[str, list[float]] = {}
    for t in trials:
        kind = "trained" if t.user_attrs.get("recipe", {}).get("train_steps", 0) else "as cut"
        kinds.setdefault(kind, []).append(seconds(t))
    return {kind: {"trials": len(secs), "median_seconds": statistics.median(secs),
                   "per_hour": len(secs) / (sum(secs) / 3600) if sum(secs) > 0 else None}
            for kind, secs in sorted(kinds.items())}


def within(trials: list, budget_s: float) -> list:
    """The trials (in trial order) that ended before their cumulative trial seconds passed `budget_s`."""
    out, spent = [], 0.0
    for t in trials:
        spent += seconds(t)
        if spent > budget_s:
            break
        out.append(t)
    return out


def study_names(storage: str) -> set[str]:
    import optuna

    return set(optuna.study.get_all_study_names(storage=storage))  # a new sqlite file holds none


def stored_trials(name: str, storage: str) -> list:
    import optuna

    if name not in study_names(storage):
        return []
    return finished(optuna.load_study(study_name=name, storage=storage))


def validation_front(study, keep: set[int] | None = None) -> list[Point]:
    """The front of the complete, non-degenerate trials (those in `keep` when given), on validation scores."""
    return front([p for p in trial_points(study) if not p.degenerate and (keep is None or p.key in keep)])


def trial_metrics(study) -> dict[int, Metrics]:
    return {t.number: Metrics.from_dict(t.user_attrs["metrics"]) for t in study.get_trials(deepcopy=False)
            if "metrics" in t.user_attrs}


def hypervolumes(points: list[Point], ref_bytes: float, ref_latency: float) -> dict[str, float]:
    return {"2d": score_size_hypervolume(points, ref_bytes), "3d": normalized_hypervolume(points, ref_bytes, ref_latency)}


def ratio(a: float, b: float) -> float | None:
    return a / b if b > 0 else None


def fmt(v: float | None, spec: str = ".4f") -> str:
    return "n/a" if v is None else format(v, spec)


# ---- the parts ----------------------------------------------------------------------------------


def part_searches(exp: Experiment, args, inputs_el, teacher, net, work: Path, storage: str, budget: Budget) -> dict:
    """Part 2: the elastic search, then the per-trial search at equal wall-clock; fronts timed side by side."""
    tracker = (NullTracker() if args.no_tracking else
               MlflowTracker(f"sqlite:///{work / 'mlflow.db'}", experiment=f"elastic-bench-{exp.name}",
                             artifact_root=work / "mlartifacts"))
    cap = args.timeout_min * 60 if args.timeout_min else None
    net_id = net.info.id[:8]
    el_name = f"{args.space}-{net_id}-tpe-s{args.seed}"
    log(f"part 2: elastic search `{el_name}` ({args.elastic_trials} trials"
        + (f", at most {args.timeout_min:g} min)" if cap else ")"))
    el = run_search(exp, SearchSettings(study=el_name, space=load_space(args.space), budget=budget,
                                        trials=args.elastic_trials, timeout=cap, storage=storage, seed=args.seed,
                                        out_dir=work / "out"),
                    tracker=tracker, report_dir=work / "reports" / el_name, log=log, prepared=(inputs_el, teacher))
    el_trials = finished(el.study)
    el_time = net.info.train_seconds + sum(seconds(t) for t in el_trials)
    budget_s = min(el_time, cap) if cap else el_time
    el_in, equal_cut = el_trials, bool(args.equal_minutes) and args.equal_minutes * 60 < el_time
    if equal_cut:  # both searches cut at this wall-clock: the elastic one keeps its trials inside it
        budget_s = args.equal_minutes * 60
        el_in = within(el_trials, budget_s - net.info.train_seconds)

    # the per-trial search does not use the elastic network: another network may reuse its study
    dist_name = args.per_trial_study or f"distill-{net_id}-tpe-s{args.seed}"
    spent = sum(seconds(t) for t in stored_trials(dist_name, storage))
    left = max(0.0, budget_s - spent)
    left = left if left >= 60 else 0.0  # no per-trial trial fits in under a minute: none is started
    log(f"part 2: per-trial distillation search `{dist_name}`: budget {budget_s / 60:.1f} min of trial time "
        f"(elastic training {net.info.train_seconds / 60:.1f} min + elastic trials "
        f"{(el_time - net.info.train_seconds) / 60:.1f} min{', cut' if budget_s < el_time else ''}); "
        f"{spent / 60:.1f} min used before, {left / 60:.1f} min left")
    dist = run_search(exp, SearchSettings(study=dist_name, space=load_space("default"), budget=budget, trials=MANY,
                                          timeout=left, storage=storage, seed=args.seed, out_dir=work / "out"),
                      tracker=tracker, report_dir=work / "reports" / dist_name, log=log, prepared=(inputs_el, teacher))
    dist_all = finished(dist.study)
    dist_in = within(dist_all, budget_s)
    late = {"per-trial": [t.number for t in dist_all[len(dist_in):]],
            "elastic": [t.number for t in el_trials[len(el_in):]]}

    ref = el.reference  # the same teacher, measured once for the elastic study: its bytes are every study's
    fronts = {"elastic": validation_front(el.study, {t.number for t in el_in}),
              "per-trial": validation_front(dist.study, {t.number for t in dist_in})}
    folders: dict = {TEACHER: Path(el.study.user_attrs["teacher_folder"])}
    studies = {"elastic": el.study, "per-trial": dist.study}
    for mode, pts in fronts.items():
        trials = {t.number: t for t in studies[mode].get_trials(deepcopy=False)}
        folders.update({(mode, p.key): Path(trials[p.key].user_attrs["folder"]) for p in pts})
    log(f"part 2: timing the teacher and both fronts side by side ({len(folders) - 1} models)")
    lat = {k: v[1] for k, v in side_by_side(folders, seq_len=exp.measure.seq_len, batch_sizes=(1,),
                                              threads=exp.measure.threads, rounds=args.rounds,
                                              repeats=args.repeats).items()}
    out = {"budget_seconds": budget_s, "elastic_total_seconds": el_time, "capped": bool(cap) and cap < el_time,
           "equal_minutes": args.equal_minutes if equal_cut else None,
           "teacher_latency_ms_b1": lat[TEACHER], "teacher_bytes": ref.bytes, "searches": {}}
    for mode, study, trials, training in (("elastic", el.study, el_in, net.info.train_seconds),
                                          ("per-trial", dist.study, dist_in, 0.0)):
        metrics = trial_metrics(study)
        pts = fronts[mode]
        val = [Point(p.key, p.score, p.bytes, lat[(mode, p.key)]) for p in pts]
        test = [Point(p.key, metrics[p.key].test_score, p.bytes, lat[(mode, p.key)]) for p in pts]
        recipes = {t.number: t.user_attrs.get("recipe", {}) for t in study.get_trials(deepcopy=False)}
        out["searches"][mode] = {
            "study": study.study_name, "space": args.space if mode == "elastic" else "default",
            # rates from every trial the study finished (the cost of a trial); the front from those in the budget
            "timing": timing(finished(study), training), "by_kind": timing_by_kind(finished(study)),
            "in_budget": len(trials),
            "late_trials": late[mode],
            "validation_hv": hypervolumes(val, ref.bytes, lat[TEACHER]),
            "test_hv": hypervolumes(test, ref.bytes, lat[TEACHER]),
            "front": [{"trial": p.key, "validation": p.score, "test": metrics[p.key].test_score, "bytes": p.bytes,
                       "latency_ms_b1_trial": p.latency_ms, "latency_ms_b1_side_by_side": lat[(mode, p.key)],
                       "runtime": metrics[p.key].runtime, "train_steps": metrics[p.key].train_steps,
                       "recipe": summarize(recipes.get(p.key, {}))} for p in pts],
            "best": el.report.best.key if mode == "elastic" and el.report.best else None,
        }
    out["elastic_study"] = el.study
    out["reference"] = ref
    return out


def curves(study, ref_bytes: float, ref_latency: float) -> dict[str, list[float]]:
    """Hypervolume (validation scores, each trial's own latency) of the first k finished trials, k = 1, 2, ..."""
    pts = {p.key: p for p in trial_points(study) if not p.degenerate}
    seen: list[Point] = []
    c2, c3 = [], []
    for t in finished(study):
        if t.number in pts:
            seen.append(pts[t.number])
        c2.append(score_size_hypervolume(seen, ref_bytes))
        c3.append(normalized_hypervolume(seen, ref_bytes, ref_latency))
    return {"2d": c2, "3d": c3}


def compare_studies(exp: Experiment, args, inputs_el, teacher, net, work: Path, storage: str) -> dict:
    """Part 3's studies, run or resumed: {sampler: {seed: study}} for the default sampler (TPE) and random
    search on the elastic space, per seed, from nothing."""
    studies: dict[str, dict[int, Any]] = {sampler: {} for sampler in args.samplers}
    for seed in args.seeds:
        for sampler in args.samplers:
            name = f"cmp-{args.space}-{net.info.id[:8]}-{sampler}-s{seed}"
            log(f"part 3: `{name}` ({args.compare_trials} trials)")
            done = run_search(exp, SearchSettings(study=name, space=load_space(args.space), trials=args.compare_trials,
                                                  storage=storage, sampler=sampler, seed=seed, out_dir=work / "out",
                                                  enqueue_starts=False),
                              report_dir=work / "reports" / name, log=log, prepared=(inputs_el, teacher),
                              remeasure=False)  # hypervolume on validation and bytes / trial latency only
            studies[sampler][seed] = done.study
    return studies


def part_compare(exp: Experiment, args, inputs_el, teacher, net, work: Path, storage: str, ref) -> dict:
    """Part 3: the default sampler (TPE) against random search at equal trial counts."""
    per: dict[str, dict[int, dict]] = {"tpe": {}, "random": {}}
    for sampler, by_seed in compare_studies(exp, args, inputs_el, teacher, net, work, storage).items():
        for seed, study in by_seed.items():
            trials = finished(study)
            per[sampler][seed] = {"study": study.study_name, "curves": curves(study, ref.bytes, ref.latency_ms_b1),
                                  "timing": timing(trials), "numbers": [t.number for t in trials],
                                  "metrics": trial_metrics(study), "study_obj": study}
    n = min(len(s["curves"]["2d"]) for by_seed in per.values() for s in by_seed.values())
    result: dict = {"trials": n, "seeds": list(args.seeds), "per_seed": {}, "summary": {}}
    for sampler, by_seed in per.items():
        for seed, s in by_seed.items():
            keep = set(s["numbers"][:n])
            f = validation_front(s["study_obj"], keep)
            test = [Point(p.key, s["metrics"][p.key].test_score, p.bytes, p.latency_ms) for p in f]
            result["per_seed"].setdefault(sampler, {})[seed] = {
                "study": s["study"], "curve_2d": s["curves"]["2d"], "curve_3d": s["curves"]["3d"],
                "at_n_2d": s["curves"]["2d"][n - 1] if n else 0.0, "at_n_3d": s["curves"]["3d"][n - 1] if n else 0.0,
                "test_2d_at_n": score_size_hypervolume(test, ref.bytes),
                "median_trial_seconds": s["timing"]["median_trial_seconds"],
            }
    for key in ("at_n_2d", "at_n_3d", "test_2d_at_n"):
        tpe = [result["per_seed"]["tpe"][s][key] for s in args.seeds]
        rnd = [result["per_seed"]["random"][s][key] for s in args.seeds]
        ratios = [ratio(a, b) for a, b in zip(tpe, rnd)]
        result["summary"][key] = {
            "tpe": tpe, "random": rnd, "ratios": ratios,
            "mean_tpe": statistics.mean(tpe), "mean_random": statistics.mean(rnd),
            "ratio_of_means": ratio(statistics.mean(tpe), statistics.mean(rnd)),
            "mean_ratio": statistics.mean(r for r in ratios if r is not None) if any(r is not None for r in ratios)
            else None,
            "tpe_ahead": sum(a > b for a, b in zip(tpe, rnd)),
        }
    return result


def part_recovery(exp: Experiment, args, inputs, searches: dict, work: Path) -> dict | None:
    """Part 4: the elastic search's best trial against the same shape distilled on its own."""
    study = searches["elastic_study"]
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    pick = searches["searches"]["elastic"]["best"]
    how = "highest validation score within the budget"
    if pick is None:
        pts = [p for p in trial_points(study) if not p.degenerate]
        if not pts:
            return None
        pick = max(pts, key=lambda p: (p.score, -p.bytes)).key
        how = "highest validation score (no trial met the budget)"
    recipe = Recipe.from_dict(trials[pick].user_attrs["recipe"])
    el_m = Metrics.from_dict(trials[pick].user_attrs["metrics"])
    lr = args.solo_lr if args.solo_lr else exp.elastic.lr
    solo = recipe.replace(elastic=False, train_steps=recipe.train_steps + args.solo_steps, lr=lr)
    folder = work / "solo" / solo.fingerprint()
    every = max(1, solo.train_steps // 10)

    def progress(step: int, total: int, loss: float, _model) -> None:
        if step % every == 0 or step == total:
            log(f"part 4: solo step {step}/{total}, loss {loss:.4f}")

    solo_m = cached_run(inputs, solo, folder, f"part 4: trial {pick}'s shape distilled on its own", hooks=[progress])
    return {
        "trial": pick, "chosen_by": how, "recipe": recipe.to_dict(), "solo_recipe": solo.to_dict(),
        "solo_folder": str(folder), "elastic_folder": trials[pick].user_attrs.get("folder"),
        "elastic": {"validation": el_m.score, "test": el_m.test_score, "bytes": el_m.bytes,
                    "train_steps": el_m.train_steps, "train_seconds": el_m.train_seconds, "layers": el_m.layers,
                    "heads": el_m.heads, "ffn": el_m.ffn, "vocab": el_m.vocab, "bits": el_m.bits},
        "solo": {"validation": solo_m.score, "test": solo_m.test_score, "bytes": solo_m.bytes,
                 "train_steps": solo_m.train_steps, "train_seconds": solo_m.train_seconds, "layers": solo_m.layers,
                 "heads": solo_m.heads, "ffn": solo_m.ffn, "vocab": solo_m.vocab, "bits": solo_m.bits},
        "test_gap_points": 100 * (el_m.test_score - solo_m.test_score),
        "validation_gap_points": 100 * (el_m.score - solo_m.score),
        "solo_steps": args.solo_steps, "solo_lr": lr,
    }


# ---- the results file ----------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def targets(info: dict, s: dict, cmp: dict | None, rec: dict | None) -> list[str]:
    el, dist = s["searches"]["elastic"], s["searches"]["per-trial"]
    out = []
    er, dr = el["timing"]["per_hour"], dist["timing"]["per_hour"]
    today = TRIALS_PER_HOUR_TODAY
    if er is None:
        out.append("- elastic trials per hour >= 10x the per-trial search's: **not measured** (the elastic search "
                   "finished no trial)")
    elif dr is None:
        out.append(f"- elastic trials per hour >= 10x the per-trial search's: **not measured in this run** (the "
                   f"per-trial search finished no trial); elastic {er:.1f} per hour against the issue's {today}: "
                   f"{verdict(er >= 10 * today)} ({er / today:.1f}x)")
    else:
        out.append(f"- elastic trials per hour >= 10x the per-trial search's (trial time only; elastic training stated "
                   f"separately): {verdict(er >= 10 * dr)}: {er:.1f} against {dr:.1f} per hour measured in this run, "
                   f"{er / dr:.1f}x. Against the issue's {today} per hour: {verdict(er >= 10 * today)} "
                   f"({er / today:.1f}x). With the elastic training counted: "
                   f"{el['timing']['per_hour_with_training']:.1f} per hour ({el['timing']['per_hour_with_training'] / dr:.1f}x)")
    equal = "" if not s["capped"] else " (NOT at equal wall-clock: --timeout-min capped the searches)"
    e2, d2, e3, d3 = el["test_hv"]["2d"], dist["test_hv"]["2d"], el["test_hv"]["3d"], dist["test_hv"]["3d"]
    higher = {"3-D": e3 > d3, "2-D": e2 > d2}
    where = ("higher on both measures" if all(higher.values()) else
             f"higher on the {next(k for k, v in higher.items() if v)} only" if any(higher.values()) else
             "not higher on either measure")
    empty = "; the per-trial search finished no trial inside the budget" if not dist["front"] else ""
    out.append(f"- higher test hypervolume than the per-trial search at equal wall-clock ({s['budget_seconds'] / 60:.1f} "
               f"min each, elastic training included){equal}: {verdict(all(higher.values()))}, {where}: 3-D (test "
               f"accuracy, bytes, side-by-side batch-1 latency) {e3:.4f} against {d3:.4f}; 2-D (test accuracy, bytes) "
               f"{e2:.4f} against {d2:.4f}{empty}")
    if cmp is None:
        out.append("- the default sampler beats random search at equal trial counts: **not measured** (--skip-compare)")
    else:
        for key, what in (("at_n_2d", "2-D validation hypervolume (accuracy, bytes)"),
                          ("at_n_3d", "3-D validation hypervolume (accuracy, bytes, each trial's latency)")):
            sm = cmp["summary"][key]
            ok = (sm["mean_ratio"] or 0) > 1 and sm["tpe_ahead"] * 2 > len(cmp["seeds"])
            out.append(f"- the default sampler beats random search after {cmp['trials']} trials, on the {what}: "
                       f"{verdict(ok)}: mean of per-seed ratios TPE / random {fmt(sm['mean_ratio'], '.3f')} "
                       f"(per seed {', '.join(fmt(r, '.3f') for r in sm['ratios'])}; mean hypervolume "
                       f"{sm['mean_tpe']:.4f} against {sm['mean_random']:.4f}); TPE ahead on {sm['tpe_ahead']} of "
                       f"{len(cmp['seeds'])} seeds")
    if rec is None:
        out.append("- the best sub-network within 0.5 points of the same shape distilled on its own: **not measured** "
                   "(the elastic search has no complete trial above the majority class)")
    else:
        gap = rec["test_gap_points"]
        out.append(f"- the best sub-network within 0.5 points (test accuracy) of the same shape distilled on its own: "
                   f"{verdict(gap >= -0.5)}: trial {rec['trial']} {rec['elastic']['test']:.4f} against the solo "
                   f"student's {rec['solo']['test']:.4f} ({gap:+.2f} points)")
    return out


def render(info: dict, s: dict, cmp: dict | None, rec: dict | None) -> str:
    e = info["elastic"]
    lines = ["# Elastic search on SST-2 (issue 16): train once, cut every trial out", ""]
    lines += info["provenance"]
    lines += [
        (f"- experiment `{info['experiment']}`: teacher validation accuracy {info['teacher_validation']:.4f}, test "
        f"accuracy {info['teacher_test']:.4f}, {info['train_rows']:,} training rows, {info['validation_rows']} "
        f"validation rows (choose), {info['test_rows']} test rows (report)"),
        f"- elastic network `{e['id']}` ({'trained in this run' if not e['cached'] else 'read from the cache, trained ' + e['date']})",
        f"- budget of both searches in part 2 (as sst2_benchmark.py): {info['budget']}",
        (f"- {info['threads']} torch threads for training and timing; wall time of this invocation "
        f"{info['wall_seconds'] / 60:.1f} min"),
        "", "## Targets", "",
    ]
    lines += targets(info, s, cmp, rec)

    lines += ["", "## 1. Elastic training (once, apart from every trial)", "",
              (f"- {e['steps']} steps of {e['batch_size']} rows, each training {e['subnets']} sub-networks (the largest, "
              f"the smallest, {e['subnets'] - 2} random): {e['steps'] * e['subnets']:,} sub-network passes"),
              (f"- {e['train_seconds'] / 60:.1f} min ({e['train_seconds']:.0f} s, ranking included; "
              f"{e['train_seconds'] / max(1, e['steps']):.2f} s a step), as `elastic.json` in its cache folder records it"),
              f"- depths {e['depths']}, heads {e['heads']}, FFN {e['ffn']}, lr {e['lr']:g}"]

    lines += ["", "## 2. Elastic search against per-trial distillation at equal wall-clock", "",
              (f"- time budget: the elastic search's elastic training ({e['train_seconds'] / 60:.1f} min) plus its "
               f"trials' time ({(s['elastic_total_seconds'] - e['train_seconds']) / 60:.1f} min) = "
               f"{s['elastic_total_seconds'] / 60:.1f} min"
               + (f", capped to {s['budget_seconds'] / 60:.1f} min by --timeout-min" if s["capped"] else "")
               + (f"; both searches cut at {s['budget_seconds'] / 60:.1f} min (--equal-minutes "
                  f"{s['equal_minutes']:g}): the elastic search's fronts count only its trials that ended inside "
                  "that time with its training included" if s.get("equal_minutes") else "")
               + "; the per-trial search counts only its trials that ended inside that much trial time"),
              ("- trial time: from a trial's creation (sampling included) to its end, summed over the trials that ran "
              "to an end (complete, pruned, failed by their own error); the studies' teacher measurement and reports "
              "are outside it for both"),
              ("- fronts: the non-degenerate complete trials' Pareto front on (validation accuracy, bytes, each trial's "
              "batch-1 latency); scored on the test rows, with the teacher and both fronts timed again side by side "
              f"in this process ({info['rounds']} rounds of {info['repeats']} runs; teacher "
              f"{s['teacher_latency_ms_b1']:.2f} ms at batch 1)"),
              ("- hypervolume: 2-D (1 - accuracy, bytes / teacher), reference (1, 2); 3-D adds side-by-side batch-1 "
              "latency / teacher, reference (1, 2, 2) (`search/pareto.py`)"),
              "",
              ("- trials per hour: every trial the study finished, over their summed trial time (a trial that ended "
              "after the budget still tells what a trial costs); the front only from the trials inside the budget"),
              "",
              ("| search | study | trials (complete / pruned / failed) | trial time h | median trial s | trials / h | "
              "trials / h with elastic training | trials in the budget | front | validation HV 2-D | test HV 2-D | "
              "validation HV 3-D | test HV 3-D |"),
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for mode, r in s["searches"].items():
        t = r["timing"]
        with_training = fmt(t["per_hour_with_training"], ".1f") if mode == "elastic" else "—"
        lines.append(f"| {mode} ({r['space']}.yaml) | `{r['study']}` | {t['trials']} ({t['complete']} / {t['pruned']} / "
                     f"{t['failed']}) | {t['trial_seconds'] / 3600:.2f} | {fmt(t['median_trial_seconds'], '.1f')} | "
                     f"{fmt(t['per_hour'], '.1f')} | {with_training} | {r['in_budget']} | {len(r['front'])} | "
                     f"{r['validation_hv']['2d']:.4f} | {r['test_hv']['2d']:.4f} | {r['validation_hv']['3d']:.4f} | "
                     f"{r['test_hv']['3d']:.4f} |")
    for mode, r in s["searches"].items():
        kinds = "; ".join(f"{kind} {k['trials']} trials, median {k['median_seconds']:.1f} s, {fmt(k['per_hour'], '.0f')} "
                          "per hour of their own time" for kind, k in r["by_kind"].items())
        lines += ["", f"- {mode} search by kind of trial (every finished trial): {kinds}"]
        t = r["timing"]
        if t["first_start"] and t["last_end"]:
            lines += ["", (f"- {mode} search's trials ran from {t['first_start']:%Y-%m-%d %H:%M} to "
                           f"{t['last_end']:%Y-%m-%d %H:%M} (local time of the machine)")]
    for mode, r in s["searches"].items():
        late = r["late_trials"]
        if late:
            lines += ["", (f"- {mode} search: trial{'s' if len(late) > 1 else ''} {', '.join(map(str, late))} ended "
                      "after the time budget (left out of its front, counted in its trials per hour)")]
    for mode, r in s["searches"].items():
        lines += ["", f"Front of the {mode} search (chosen on validation):", "",
                  "| trial | validation acc | test acc | MB | batch-1 ms (side by side) | runtime | train steps | recipe |",
                  "|---|---|---|---|---|---|---|---|"]
        for p in r["front"]:
            mark = " (best)" if r["best"] == p["trial"] else ""
            lines.append(f"| {p['trial']}{mark} | {p['validation']:.4f} | {fmt(p['test'])} | {p['bytes'] / 1e6:.2f} | "
                         f"{p['latency_ms_b1_side_by_side']:.2f} | {p['runtime']} | {p['train_steps']} | {p['recipe']} |")

    lines += ["", "## 3. Default sampler (multivariate TPE) against random search on the elastic space", ""]
    if cmp is None:
        lines.append("Skipped (--skip-compare).")
    else:
        seeds = cmp["seeds"]
        lines += [(f"- search_spaces/{info['args']['space']}.yaml, {cmp['trials']} finished trials per study compared (equal trial "
                  f"counts), seeds {seeds}, no enqueued starting points, no budget, no MLflow; every study cuts from "
                  "the same cached elastic network"),
                  ("- hypervolume of the non-degenerate complete trials among the first k finished ones, on validation "
                  "(what the samplers see), objectives normalized by one reference (the part-2 elastic study's teacher: "
                  "bytes, batch-1 latency measured once); 3-D uses each trial's own latency, so it carries the load "
                  "noise of the moment; 2-D (accuracy, bytes) does not"),
                  "- test 2-D: the front chosen on validation among the first k trials, scored on the test rows", ""]
        for key, title in (("curve_2d", "2-D validation hypervolume"), ("curve_3d", "3-D validation hypervolume")):
            lines += [f"{title} after k trials:", "",
                      "| k | " + " | ".join(f"TPE s{x}" for x in seeds) + " | " + " | ".join(f"random s{x}" for x in seeds)
                      + " | mean TPE / mean random |", "|---" * (2 * len(seeds) + 2) + "|"]
            n = cmp["trials"]
            ks = sorted({k for k in range(5, n + 1, 5)} | {1, n}) if n else []
            for k in ks:
                tpe = [cmp["per_seed"]["tpe"][x][key][k - 1] for x in seeds]
                rnd = [cmp["per_seed"]["random"][x][key][k - 1] for x in seeds]
                lines.append(f"| {k} | " + " | ".join(f"{v:.4f}" for v in tpe + rnd)
                             + f" | {fmt(ratio(statistics.mean(tpe), statistics.mean(rnd)), '.3f')} |")
            lines.append("")
        lines += [f"After {cmp['trials']} trials:", "", ("| measure | mean TPE | mean random | ratio of means | "
                  "mean per-seed ratio | per-seed ratios | TPE ahead on |"), "|---|---|---|---|---|---|---|"]
        for key, what in (("at_n_2d", "validation 2-D"), ("at_n_3d", "validation 3-D"), ("test_2d_at_n", "test 2-D")):
            sm = cmp["summary"][key]
            lines.append(f"| {what} | {sm['mean_tpe']:.4f} | {sm['mean_random']:.4f} | {fmt(sm['ratio_of_means'], '.3f')} | "
                         f"{fmt(sm['mean_ratio'], '.3f')} | {', '.join(fmt(r, '.3f') for r in sm['ratios'])} | "
                         f"{sm['tpe_ahead']} of {len(seeds)} seeds |")
        med = {smp: [cmp["per_seed"][smp][x]["median_trial_seconds"] for x in seeds] for smp in ("tpe", "random")}
        lines += ["", "Median trial seconds (untracked): " + "; ".join(
            f"{smp} {', '.join(fmt(v, '.1f') for v in vals)}" for smp, vals in med.items())]

    lines += ["", "## 4. Recovery: the best sub-network against the same shape distilled on its own", ""]
    if rec is None:
        lines.append("Not measured: the elastic search has no complete trial above the majority class.")
    else:
        el_m, so = rec["elastic"], rec["solo"]
        lines += [
            (f"- elastic: trial {rec['trial']} of the part-2 elastic search ({rec['chosen_by']}): "
            f"{summarize(rec['recipe'])}; cut from the elastic network, then {el_m['train_steps']} recovery steps "
            f"(lr {rec['recipe']['lr']:g}) distilled from the teacher's logits"),
            (f"- solo: the same recipe with `elastic: false`: the teacher's evenly spaced layers, its most important "
            f"heads and FFN neurons (the heads/FFN technique's own Taylor ranking), the same bits, vocabulary setting "
            f"and runtime, distilled from the teacher for the trial's own {rec['recipe']['train_steps']} steps plus "
            f"--solo-steps {rec['solo_steps']} = {so['train_steps']} steps at lr {rec['solo_lr']:g} "
            f"({'--solo-lr' if info['solo_lr_given'] else 'the elastic block lr'}), temperature and alpha as the recipe"),
            (f"- what the elastic side trained: the shared network's {e['steps']} steps ({e['steps'] * e['subnets']:,} "
            f"sub-network passes over all shapes, not attributable to one) plus its {el_m['train_steps']} recovery "
            "steps; the solo side's steps are all its own"),
            "",
            ("| model | layers | heads (total) | FFN neurons (total) | vocabulary | bits | train steps | train s | "
            "validation acc | test acc | MB |"),
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for name, m in (("elastic sub-network", el_m), ("solo student", so)):
            lines.append(f"| {name} | {m['layers']} | {m['heads']} | {m['ffn']} | {m['vocab']:,} | {m['bits']} | "
                         f"{m['train_steps']} | {m['train_seconds']:.0f} | {m['validation']:.4f} | {fmt(m['test'])} | "
                         f"{m['bytes'] / 1e6:.2f} |")
        lines += ["", (f"Gap, elastic minus solo: test {rec['test_gap_points']:+.2f} points, validation "
                  f"{rec['validation_gap_points']:+.2f} points.")]

    lines += ["", "## How each number was produced", "",
              ("- elastic training seconds and steps: `elastic.json` of the network's cache folder, written when it was "
              "trained (`elastic_net.prepare`); not part of any trial's time"),
              ("- trial seconds: Optuna's datetime_start to datetime_complete of each trial in the sqlite study "
              f"(`{info['storage']}`), so a resumed run counts the same trials the same way"),
              ("- accuracy: the trial's `metrics.json` (validation rows chose, test rows reported); bytes: everything "
              "running the model needs (`artifact.run_bytes`)"),
              ("- per-trial search: run_search with a timeout of the remaining budget; a trial under way when the time "
              "runs out finishes but is left out"),
              "- MLflow: part 2 logs to `mlflow.db` beside the studies (its calls are inside each trial's time, for "
              "both searches); part 3 does not track" if not info["no_tracking"] else "- MLflow: off (--no-tracking)",
              ""]
    return "\n".join(lines)


def strip(obj):
    """The JSON form: drop live objects; paths inside the repository relative to it."""
    if isinstance(obj, dict):
        return {str(k): strip(v) for k, v in obj.items() if k not in ("elastic_study", "reference", "study_obj",
                                                                      "metrics")}
    if isinstance(obj, list | tuple):
        return [strip(v) for v in obj]
    if isinstance(obj, str | Path) and str(obj).startswith(f"{REPO}/"):
        return str(obj)[len(f"{REPO}/"):]
    return obj


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", default=str(HERE / "sst2-elastic.yaml"))
    ap.add_argument("--space", default="elastic", choices=["elastic", "elastic-recovery"],
                    help="the elastic search space of parts 2 and 3 (search_spaces/<space>.yaml; names the studies)")
    ap.add_argument("--elastic-trials", type=int, default=60, help="trials of the part-2 elastic search")
    ap.add_argument("--compare-trials", type=int, default=60, help="trials of each part-3 sampler study")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="part-3 sampler seeds")
    ap.add_argument("--seed", type=int, default=0, help="sampler seed of the two part-2 searches")
    cut = ap.add_mutually_exclusive_group()
    cut.add_argument("--timeout-min", type=float, default=0.0,
                    help="cap each part-2 search at this many minutes (0: the elastic search runs all its trials and "
                         "the per-trial search gets exactly its time)")
    ap.add_argument("--solo-steps", type=int, default=2000, help="part 4: steps added to the pick's own train_steps")
    ap.add_argument("--solo-lr", type=float, default=None, help="part 4: the solo student's lr (default: the elastic "
                                                                "block's lr)")
    ap.add_argument("--skip-compare", action="store_true", help="skip part 3")
    ap.add_argument("--compare-only", action="store_true",
                    help="only run (or resume) part 3's studies for --seeds and write nothing: several processes can "
                         "fill different seeds, then a run without it reads them")
    ap.add_argument("--samplers", nargs="+", choices=["tpe", "random"], default=["tpe", "random"],
                    help="with --compare-only: the part-3 samplers this process runs")
    ap.add_argument("--max-size-mb", type=float, default=10.0, help="part-2 budget (0: none)")
    ap.add_argument("--max-latency-ms", type=float, default=4.5, help="part-2 budget, batch-1 ms (0: none)")
    ap.add_argument("--min-retention", type=float, default=0.97, help="part-2 budget (0: none)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: the experiment's measure.threads)")
    ap.add_argument("--rounds", type=int, default=5, help="side-by-side latency rounds")
    ap.add_argument("--repeats", type=int, default=10, help="side-by-side runs per round")
    cut.add_argument("--equal-minutes", type=float, default=0.0,
                    help="part 2: compare both searches at this wall-clock (elastic training included) when the elastic "
                         "search took longer: its fronts keep the trials inside it (0: the elastic search's whole time)")
    ap.add_argument("--per-trial-study", default=None,
                    help="part 2: the per-trial search's study (default distill-<network id>-tpe-s<seed>); it does not "
                         "depend on the elastic network, so an earlier network's study can be reused and resumed")
    ap.add_argument("--no-tracking", action="store_true", help="no MLflow for the part-2 searches")
    ap.add_argument("--out", default=str(HERE / "results" / "elastic-sst2"), help="writes <out>.md and <out>.json")
    args = ap.parse_args()
    t0 = time.time()
    exp = Experiment.from_file(args.experiment)
    exp = with_threads(exp, args.threads or exp.measure.threads)
    if exp.elastic is None:
        raise SystemExit(f"{args.experiment} has no `elastic:` block (see experiments/sst2-elastic.yaml)")
    work = exp.cache / "elastic-bench"
    work.mkdir(parents=True, exist_ok=True)
    storage = f"sqlite:///{work / 'optuna.db'}"
    budget = Budget(max_bytes=int(args.max_size_mb * 1e6) if args.max_size_mb else None,
                    max_latency_ms=args.max_latency_ms or None, min_retention=args.min_retention or None)

    inputs, teacher = engine_inputs(exp, log)
    log("part 1: the elastic network")
    net = elastic_net.prepare(exp, teacher, log)
    inputs_el = replace(inputs, elastic=net.model, elastic_id=net.info.id)
    if not args.compare_only and len(set(args.samplers)) < 2:
        raise SystemExit("--samplers is for --compare-only: part 3 compares tpe with random")
    if args.compare_only:
        compare_studies(exp, args, inputs_el, teacher, net, work, storage)
        log(f"part 3: the studies of seeds {args.seeds} are done; run without --compare-only to write the results")
        return
    searches = part_searches(exp, args, inputs_el, teacher, net, work, storage, budget)
    cmp = None if args.skip_compare else part_compare(exp, args, inputs_el, teacher, net, work, storage,
                                                      searches["reference"])
    rec = part_recovery(exp, args, inputs, searches, work)

    st = net.info.settings
    ref = searches["reference"]
    info = {
        "provenance": provenance("elastic_sst2.py", exp.measure.threads), "experiment": Path(args.experiment).name,
        "teacher_validation": teacher.metrics["validation"][exp.task.metric],
        "teacher_test": teacher.metrics["test"][exp.task.metric], "train_rows": len(teacher.data.train),
        "validation_rows": ref.validation_rows, "test_rows": ref.test_rows, "budget": budget.describe("accuracy"),
        "threads": exp.measure.threads, "wall_seconds": time.time() - t0, "rounds": args.rounds,
        "repeats": args.repeats, "storage": storage, "no_tracking": args.no_tracking,
        "solo_lr_given": args.solo_lr is not None, "args": vars(args),
        "elastic": {"id": net.info.id, "cached": net.cached, "date": net.info.date, "steps": net.info.steps,
                    "train_seconds": net.info.train_seconds, "batch_size": st.get("batch_size"),
                    "subnets": 2 + int(st.get("random_subnets", 2)), "depths": st.get("depths"),
                    "heads": st.get("heads_fracs"), "ffn": st.get("ffn_fracs"), "lr": st.get("lr"),
                    "folder": str(net.info.folder)},
    }
    md = render(info, searches, cmp, rec)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text(md)
    payload = strip({"info": info, "targets": targets(info, searches, cmp, rec), "part2": searches, "part3": cmp,
                     "part4": rec})
    out.with_suffix(".json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    print(md)


if __name__ == "__main__":
    main()
