"""Training on a GPU, measuring where the model runs: the SST-2 teacher's fine-tuning and the elastic network of
`experiments/sst2-elastic.yaml`, timed on each device given in one run on one machine, and the cache the GPU
fills then read by a run that trains on the CPU (nothing is trained again) and measured there.

    python experiments/gpu_training.py --devices cuda,cpu --json out/gpu-training.json

The first device trains the experiment's full sizes (one epoch of the teacher, the elastic network's steps);
every other device is timed on `--short-teacher` teacher steps and `--short-elastic` elastic steps (a full
epoch on a 2-core CPU takes most of an hour). Per-step seconds compare the devices. Then the first device's
cache is opened with `train.device: cpu`: the teacher and the elastic network must come from it, and one
elastic recipe is cut from the network and measured on the CPU (bytes, validation and test accuracy, latency).

--teacher names the teacher (default: the experiment's, the packaged all-MiniLM-L6-v2); --data the folder
with SST-2's train.tsv and dev.tsv (default: ../shared/data/sst2 beside the repository).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from autocompress import elastic_net  # noqa: E402
from autocompress.config import Experiment  # noqa: E402
from autocompress.engine.device import describe, resolve  # noqa: E402
from autocompress.engine.student import evenly_spaced_layers  # noqa: E402
from autocompress.engine.recipe import Recipe  # noqa: E402
from autocompress.session import engine_inputs, run_recipe, with_elastic  # noqa: E402
from autocompress.teacher import prepare  # noqa: E402


def experiment(base: Experiment, *, data: Path, teacher: str | None, cache: Path, device: str,
               teacher_steps: int | None, elastic_steps: int | None) -> Experiment:
    """`base` reading `data`, training on `device` into `cache`; shortened to the given step counts."""
    ft = base.teacher.finetune
    if teacher_steps is not None:
        ft = ft.model_copy(update={"train_subset": teacher_steps * ft.batch_size})
    update = {
        "task": base.task.model_copy(update={"train": str(data / "train.tsv"), "dev": str(data / "dev.tsv"),
                                             "hub": None}),
        "teacher": base.teacher.model_copy(update={"source": teacher or base.teacher.source, "finetune": ft}),
        "elastic": base.elastic.model_copy(update={"steps": elastic_steps}) if elastic_steps else base.elastic,
        "train": base.train.model_copy(update={"device": device}),
        "cache_dir": str(cache),
    }
    return base.model_copy(update=update)


def train_on(exp: Experiment, lines: list[str]) -> dict:
    """Fine-tune the teacher and train the elastic network as `exp` says; their steps and seconds."""
    before = len(lines)
    started = time.perf_counter()
    t = prepare(exp, lines.append)
    teacher_total = time.perf_counter() - started
    cached = not any("fine-tuning" in line for line in lines[before:])  # then its seconds are the recorded ones
    meta = json.loads((t.folder / "meta.json").read_text())
    net = elastic_net.prepare(exp, t, lines.append)
    steps = meta["finetune_steps"]
    return {
        "device": describe(resolve(exp.train.device)),
        "trained_on": meta.get("trained_on"),
        "teacher_steps": steps,
        "teacher_seconds": meta["finetune_seconds"],
        "teacher_seconds_per_step": meta["finetune_seconds"] / steps if steps else None,
        "teacher_from_cache": cached,
        "teacher_logits_and_scores_seconds": None if cached else round(teacher_total - meta["finetune_seconds"], 1),
        "elastic_from_cache": net.cached,
        "teacher_validation_accuracy": t.metrics["validation"]["accuracy"],
        "teacher_test_accuracy": t.metrics["test"]["accuracy"],
        "elastic_id": net.info.id,
        "elastic_steps": net.info.steps,
        "elastic_seconds": net.info.train_seconds,
        "elastic_seconds_per_step": net.info.train_seconds / max(1, net.info.steps),
        "teacher_folder": t.folder.name,
    }


def reuse_on_cpu(exp: Experiment, trained: dict, lines: list[str]) -> dict:
    """Open the trained cache training on the CPU: nothing may train again; cut and measure one recipe."""
    cpu = exp.model_copy(update={"train": exp.train.model_copy(update={"device": "cpu"})})
    before = len(lines)
    started = time.perf_counter()
    inputs, teacher = engine_inputs(cpu, lines.append)
    inputs, info = with_elastic(cpu, inputs, teacher, lines.append)
    seconds = time.perf_counter() - started
    said = lines[before:]
    n = len(inputs.teacher.encoder_layers)
    recipe = Recipe(elastic=True, layers=list(evenly_spaced_layers(n, 4)), runtime="onnxruntime", bits=8,
                    vocab_prune=True)
    result = run_recipe(inputs, recipe, Path(cpu.cache_dir) / "reuse-trial")
    m = result.metrics
    return {
        "teacher_from_cache": teacher.folder.name == trained["teacher_folder"]
        and not any("fine-tuning" in line for line in said),
        "elastic_from_cache": info.id == trained["elastic_id"] and any("from the cache" in line for line in said),
        "open_seconds": round(seconds, 1),
        "recipe": recipe.to_dict(),
        "validation_accuracy": m.accuracy, "test_accuracy": m.test_accuracy, "bytes": m.bytes,
        "latency_ms_b1": m.latency_ms.get(1), "latency_ratio_b1": m.latency_ratio_b1, "runtime": m.runtime,
        "train_device": m.train_device,
    }


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return "unknown"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", default="cuda,cpu", help="comma-separated; the first trains the full sizes")
    ap.add_argument("--teacher", default=None)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "sst2")
    ap.add_argument("--work", type=Path, default=Path("out") / "gpu-training")
    ap.add_argument("--short-teacher", type=int, default=40, help="teacher steps timed on the other devices")
    ap.add_argument("--short-elastic", type=int, default=10, help="elastic steps timed on the other devices")
    ap.add_argument("--elastic-steps", type=int, default=None, help="the first device's elastic steps (default: "
                    "the experiment's)")
    ap.add_argument("--json", type=Path, required=True)
    args = ap.parse_args()
    base = Experiment.from_file(ROOT / "experiments" / "sst2-elastic.yaml")
    devices = args.devices.split(",")
    args.data = args.data.resolve()
    lines: list[str] = []
    runs = []
    for i, dev in enumerate(devices):
        short = i > 0
        exp = experiment(base, data=args.data, teacher=args.teacher, cache=args.work / f"cache-{dev}", device=dev,
                         teacher_steps=args.short_teacher if short else None,
                         elastic_steps=args.short_elastic if short else args.elastic_steps)
        runs.append({"spec": dev, "full": not short, **train_on(exp, lines)})
        print(json.dumps(runs[-1]), flush=True)
    first = experiment(base, data=args.data, teacher=args.teacher, cache=args.work / f"cache-{devices[0]}",
                       device=devices[0], teacher_steps=None, elastic_steps=args.elastic_steps)
    torch.set_num_threads(base.measure.threads)
    reuse = reuse_on_cpu(first, runs[0], lines)
    print(json.dumps(reuse), flush=True)
    record = {
        "command": "python experiments/gpu_training.py " + " ".join(sys.argv[1:]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpu": cpu_model(), "cpus": os.cpu_count(),
                    "torch": torch.__version__,
                    "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
        "runs": runs, "reuse_on_cpu": reuse, "log": lines,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=2) + "\n")
    print(f"written: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
