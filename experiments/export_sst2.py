"""Export the recommended pick of the SST-2 search, reload it in a fresh process, and compare
runtimes side by side: the pick on its own runtime, fp32 torch eager and ONNX Runtime int8 of the
same model.

    python experiments/export_sst2.py [--pick best] [--rounds 5] [--experiment E --name search-sst2]

Needs the study of experiments/search_sst2.py (same --experiment and --name). The pick was chosen on
validation rows; the reload check scores the task's dev file, the test split the search never used.
Writes experiments/results/export-sst2.md / .json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def reload_check(folder: str, experiment: str) -> None:
    """Run in a fresh process: accuracy of the reloaded export on the test split, the task's dev file
    (no teacher, study or MLflow)."""
    import numpy as np

    from autocompress import load_compressed
    from autocompress.config import Experiment
    from autocompress.data import load_raw

    exp = Experiment.from_file(experiment)
    dev = load_raw(exp)["test"]  # the task's dev file
    out = {}
    for runtime in ("torch", "onnxruntime"):
        model = load_compressed(folder, runtime=runtime)
        logits = model.logits([str(x) for x in dev[exp.task.text]])
        pred = np.array([int(model.label_names[i]) for i in logits.argmax(-1)])
        out[runtime] = float((pred == np.array(dev[exp.task.label])).mean())
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", default=str(HERE / "sst2.yaml"))
    ap.add_argument("--name", default="search-sst2", help="the search's work folder name (search_sst2.py --name)")
    ap.add_argument("--study", default=None, help="default: --name")
    ap.add_argument("--storage", default=None, help="the study's Optuna storage (default: the search script's)")
    ap.add_argument("--pick", default="best")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--reload-check", nargs=2, metavar=("FOLDER", "EXPERIMENT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.reload_check:
        reload_check(*args.reload_check)
        return


    from _common import provenance
    from search_sst2 import storage_url

    from autocompress.engine import artifact
    from autocompress.config import Experiment
    from autocompress.engine.measure import interleaved_latency
    from autocompress.engine.metrics import Metrics
    from autocompress.engine.pipeline import latency_inputs
    from autocompress.engine.runtimes.onnx_runtime import onnx_runtime
    from autocompress.engine.runtimes.torch_eager import torch_runtime
    from autocompress.engine.storage import load_model
    from autocompress.export import export_folder
    from autocompress.search.select import trial_for_pick
    from autocompress.teacher import prepare

    exp = Experiment.from_file(args.experiment)
    study = args.study or args.name
    trial = trial_for_pick(study, args.storage or storage_url(exp, args.name), args.pick)
    m = Metrics.from_dict(trial.user_attrs["metrics"])
    out = Path(tempfile.mkdtemp()) / "export"
    export_folder(Path(trial.user_attrs["folder"]), out, fmt="onnx")
    weight_bytes = (out / "weights.safetensors").stat().st_size
    proc = subprocess.run([sys.executable, __file__, "--reload-check", str(out), args.experiment],
                          capture_output=True, text=True, check=True)
    reloaded = json.loads(proc.stdout.strip().splitlines()[-1])

    model = load_model(out)
    bits = int(trial.user_attrs["recipe"]["bits"])
    rts = {
        "pick on its runtime": torch_runtime(model, bits),
        "fp32 torch eager (same model)": torch_runtime(model, 32),
        "ONNX Runtime int8 (same model)": onnx_runtime(model, 8, Path(tempfile.mkdtemp()), exp.measure.threads),
    }
    data = prepare(exp).data
    xs = {bs: latency_inputs(data.validation, bs, exp.measure.seq_len) for bs in (1, 32)}
    lat = interleaved_latency({n: rt.run for n, rt in rts.items()}, xs, rounds=args.rounds, repeats=args.repeats,
                              warmup=3, threads=exp.measure.threads)
    base = lat["fp32 torch eager (same model)"]
    onnx_bytes = (out / "model.onnx").stat().st_size
    lines = [
        f"# Export of the {exp.name} search's recommended pick",
        "",
        *provenance("export_sst2.py", exp.measure.threads),
        f"- sequence length {exp.measure.seq_len}",
        f"- study `{study}`, pick `{args.pick}` = trial {trial.number}, chosen on validation rows: "
        f"{json.dumps(trial.user_attrs['recipe'])}",
        "",
        "| check | trial reported | export, reloaded in a fresh process |",
        "|---|---|---|",
        f"| validation accuracy ({m.runtime}; chose the pick) | {m.accuracy:.4f} | not re-measured |",
        f"| test accuracy, the task's dev file ({m.runtime}) | {m.test_accuracy:.4f} | {reloaded['torch']:.4f} |",
        f"| bytes to run it (weights, architecture, task, tokenizer) | {m.bytes:,} | "
        f"{artifact.run_bytes(out, out / artifact.WEIGHTS):,} |",
        f"| weight bytes | {m.weight_bytes:,} | {weight_bytes:,} |",
        f"| batch-1 latency, ms | {m.latency_ms_b1:.2f} | {lat['pick on its runtime'][1]:.2f} |",
        "",
        f"ONNX export (`model.onnx`, {onnx_bytes:,} bytes, dynamic int8 when the recipe is 8-bit, else fp32): "
        f"test accuracy {reloaded['onnxruntime']:.4f}.",
        "",
        "| runtime (same weights) | batch-1 ms | batch-32 ms | x faster than fp32 eager (b1 / b32) |",
        "|---|---|---|---|",
    ]
    for n, l in lat.items():
        lines.append(f"| {n} | {l[1]:.2f} | {l[32]:.1f} | {base[1] / l[1]:.2f} / {base[32] / l[32]:.2f} |")
    lines += ["", f"Latency: median over {args.rounds} interleaved rounds of the median of {args.repeats} runs. "
              "The ONNX Runtime int8 row re-quantizes the same weights to int8 (per channel, dynamic "
              "activations) to show what that runtime gives on this shape; its accuracy is not measured here. "
              "Bits below 8 have no fast kernel, so a 4-bit pick runs at fp32 eager speed.", ""]
    results = HERE / "results"
    (results / "export-sst2.md").write_text("\n".join(lines))
    (results / "export-sst2.json").write_text(json.dumps({"trial": trial.number, "reported": m.to_dict(), "reloaded": reloaded,
                                                          "weight_bytes": weight_bytes, "latency": lat}, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
