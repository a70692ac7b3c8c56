"""ONNX Runtime's busy-waiting thread pool, on and off: what it costs the model timed next in the same process.

    python experiments/ort_spinning.py [--rounds 5] [--repeats 10] [--pairs 2]

The SST-2 teacher (the cache of experiments/sst2.yaml) as ONNX Runtime dynamic int8 and as OpenVINO bf16,
timed at batch 1, length 64, on the experiment's threads. For each setting of ONNX Runtime's
`session.intra_op.allow_spinning` (1, its default; 0, what autocompress sets): the two interleaved, ONNX Runtime
first, so OpenVINO runs right after it; then OpenVINO alone. The settings alternate --pairs times (a fresh ONNX
Runtime session each time), so a drifting machine hits both. Writes experiments/results/ort-spinning.md.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from _common import log, provenance

from autocompress.config import Experiment
from autocompress.engine.measure import interleaved_latency
from autocompress.engine.pipeline import latency_inputs
from autocompress.engine.runtimes import get as get_runtime
from autocompress.engine.runtimes import onnx_runtime
from autocompress.session import engine_inputs

HERE = Path(__file__).resolve().parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--experiment", default=str(HERE / "sst2.yaml"))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--pairs", type=int, default=2)
    args = ap.parse_args()
    exp = Experiment.from_file(args.experiment)
    threads = exp.measure.threads
    _inputs, teacher = engine_inputs(exp, log)
    tmp = Path(tempfile.mkdtemp())
    xs = {1: latency_inputs(teacher.data.test, 1, exp.measure.seq_len)}
    openvino = get_runtime("openvino").build(teacher.model, 16, tmp / "openvino", threads).run
    got: dict[bool, dict[str, list[float]]] = {s: {"ort": [], "after": [], "alone": []} for s in (True, False)}
    for k in range(args.pairs):
        for spinning in (True, False):
            log(f"pair {k + 1}/{args.pairs}: allow_spinning {int(spinning)}")
            onnx_runtime.SPINNING = spinning
            ort = get_runtime("onnxruntime").build(teacher.model, 8, tmp / f"ort-{k}-{int(spinning)}", threads).run
            both = interleaved_latency({"ort": ort, "after": openvino}, xs, rounds=args.rounds, repeats=args.repeats,
                                       warmup=3, threads=threads)
            del ort  # its pool stops before OpenVINO is timed alone
            alone = interleaved_latency({"alone": openvino}, xs, rounds=args.rounds, repeats=args.repeats, warmup=3,
                                        threads=threads)
            for name, v in {**both, **alone}.items():
                got[spinning][name].append(v[1])
    onnx_runtime.SPINNING = False

    def med(spinning: bool, name: str) -> float:
        return statistics.median(got[spinning][name])

    lines = ["# ONNX Runtime's busy-waiting pool: what it costs the next model in the process", ""]
    lines += provenance("ort_spinning.py", threads)
    lines += [(f"- the SST-2 teacher (`{Path(args.experiment).name}`), batch 1, length {exp.measure.seq_len}; "
              f"each figure the median over {args.pairs} sessions of the median of {args.rounds} interleaved rounds "
              f"of {args.repeats} runs"), "",
              ("| allow_spinning | ONNX Runtime int8 ms | OpenVINO bf16 ms, right after it | OpenVINO bf16 ms, alone | "
              "after / alone |"), "|---|---|---|---|---|"]
    for spinning in (True, False):
        lines.append(f"| {int(spinning)}{' (ONNX Runtime default)' if spinning else ' (autocompress)'} | "
                     f"{med(spinning, 'ort'):.2f} | {med(spinning, 'after'):.2f} | {med(spinning, 'alone'):.2f} | "
                     f"{med(spinning, 'after') / med(spinning, 'alone'):.2f} |")
    lines += ["", "Every session, in order (ONNX Runtime ms / OpenVINO after it / OpenVINO alone):", ""]
    for k in range(args.pairs):
        for spinning in (True, False):
            g = got[spinning]
            lines.append(f"- pair {k + 1}, allow_spinning {int(spinning)}: {g['ort'][k]:.2f} / {g['after'][k]:.2f} / "
                         f"{g['alone'][k]:.2f}")
    out = HERE / "results" / "ort-spinning.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
