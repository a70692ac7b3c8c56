"""Low-bit kernels on this CPU: does a 4-bit weight kernel run a 4-bit cut faster than int8?

    python experiments/lowbit_kernels.py --folder FOLDER [FOLDER ...] [--experiment experiments/sst2-benchmark.yaml]
                                         [--rounds 7] [--repeats 10]

Why: autocompress runs a 4-bit or ternary model on ONNX Runtime as dynamic int8 (its k-bit weights expanded at
load) and on OpenVINO as fp32. The SST-2 benchmark found its 4-bit cuts no faster than 8-bit cuts of the same
shape (sst2-benchmark.md) and asked whether real low-bit kernels would change that. This measures it.

Rules, fixed before the run:
- Each model folder (a trial or an export whose weights are k-bit values) on its own. Its fp32 ONNX graph is the source of
  every variant below, so all run the same weights:
  - ONNX Runtime: fp32; dynamic int8 per channel (what autocompress runs at 8 bits and below); `MatMulNBits`
    4-bit, symmetric, blocks of 32 (ONNX Runtime's `MatMulNBitsQuantizer`, round to nearest), with
    `accuracy_level` 4 (int8 compute) and 0 (fp32 compute).
  - OpenVINO: fp32 (what autocompress runs below 8 bits on a CPU without bf16); NNCF `compress_weights` int8
    (asymmetric, per channel) and int4 (symmetric, groups of 32, every layer it compresses by default).
- Latency: batch 1 and 32 at the experiment's `measure.seq_len`, on its threads, all variants interleaved in one
  process (`interleaved_latency`: the order rotates each round; a figure is the median over rounds of each
  round's median), ratios against ONNX Runtime dynamic int8. ONNX Runtime does not spin (autocompress's setting).
- Bytes: the file(s) each variant would deploy (model.onnx; model.xml + model.bin), written once.
- Accuracy: on the experiment's test rows (dev.tsv), each variant's own predictions; nothing is chosen on them.
- The CPU is named with its flags: a kernel's speed holds for that CPU only.
Writes experiments/results/lowbit-kernels.md and .json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from _common import log, provenance

from autocompress import load_compressed
from autocompress.config import Experiment
from autocompress.data import load_raw
from autocompress.engine.measure import folder_bytes, interleaved_latency
from autocompress.engine.runtimes.onnx_runtime import export_onnx, ort_run, quantize_dynamic_int8
from autocompress.engine.runtimes.openvino_runtime import XML, _core, ov_run, quiet_nncf
from autocompress.search.remeasure import latency_batches

HERE = Path(__file__).resolve().parent
NBITS_BLOCK = 32


def matmul_nbits(fp32: Path, dst: Path, accuracy_level: int) -> Path:
    """ONNX Runtime's 4-bit weight-only `MatMulNBits` of every MatMul with a constant weight in `fp32`."""
    import logging

    import onnx
    from onnxruntime.quantization import matmul_nbits_quantizer as mq

    logging.getLogger(mq.__name__).setLevel(logging.WARNING)  # a line for every node it visits
    cfg = mq.DefaultWeightOnlyQuantConfig(block_size=NBITS_BLOCK, is_symmetric=True, accuracy_level=accuracy_level,
                                          bits=4)
    quantizer = mq.MatMulNBitsQuantizer(onnx.load(str(fp32)), algo_config=cfg)
    quantizer.process()
    quantizer.model.save_model_to_file(str(dst), False)
    return dst


def openvino_weights(fp32: Path, dst: Path, mode: str) -> Path:
    """OpenVINO IR of `fp32` with NNCF weight-only compression `mode` ("int8_asym", or "int4_sym" in groups)."""
    import nncf
    import openvino as ov

    model = _core().read_model(str(fp32))
    if mode != "fp32":
        kw = {"group_size": NBITS_BLOCK, "ratio": 1.0} if mode.startswith("int4") else {}
        with quiet_nncf():
            model = nncf.compress_weights(model, mode=nncf.CompressWeightsMode(mode), **kw)
    dst.mkdir(parents=True, exist_ok=True)
    ov.save_model(model, str(dst / XML), compress_to_fp16=False)
    return dst


def variants(model, work: Path, threads: int) -> dict[str, tuple[Callable, int, str]]:
    """name -> (run, deployed bytes, what it is), every one from `model`'s fp32 graph."""
    fp32 = export_onnx(model, work / "fp32" / "model.onnx")
    ort: dict[str, tuple[Path, str]] = {
        "ort-fp32": (fp32, "ONNX Runtime fp32"),
        "ort-int8": (quantize_dynamic_int8(fp32, work / "int8.onnx"),
                     "ONNX Runtime dynamic int8, per channel (autocompress at <= 8 bits)"),
        "ort-nbits4-acc4": (matmul_nbits(fp32, work / "nbits4-acc4.onnx", 4),
                            f"ONNX Runtime MatMulNBits 4-bit, blocks of {NBITS_BLOCK}, int8 compute"),
        "ort-nbits4-acc0": (matmul_nbits(fp32, work / "nbits4-acc0.onnx", 0),
                            f"ONNX Runtime MatMulNBits 4-bit, blocks of {NBITS_BLOCK}, fp32 compute"),
    }
    out = {name: (ort_run(p, threads), p.stat().st_size, what) for name, (p, what) in ort.items()}
    for name, mode, what in [("ov-fp32", "fp32", "OpenVINO fp32 (autocompress below 8 bits without bf16)"),
                             ("ov-w8", "int8_asym", "OpenVINO, NNCF int8 weights (asymmetric, per channel)"),
                             ("ov-w4", "int4_sym", f"OpenVINO, NNCF int4 weights (symmetric, groups of {NBITS_BLOCK})")]:
        ir = openvino_weights(fp32, work / name, mode)
        out[name] = (ov_run(_core().read_model(str(ir / XML)), 32, threads), folder_bytes(ir), what)
    return out


def accuracy(model, run: Callable, texts: list[str], labels: np.ndarray) -> float:
    logits = dataclasses.replace(model, run=run).logits(texts)
    return float((logits.argmax(-1) == labels).mean())


def measure(folder: Path, exp: Experiment, texts: list[str], labels: np.ndarray, rounds: int,
            repeats: int) -> dict:
    """Every variant of the model in `folder`, built, timed side by side and scored on the test rows."""
    threads, seq_len = exp.measure.threads, exp.measure.seq_len
    reference = load_compressed(folder, runtime="torch")
    log(f"{folder.name}: building the variants")
    runs = variants(reference.model, Path(tempfile.mkdtemp(prefix="lowbit-kernels-")), threads)
    per_bs = {1: repeats, 32: max(2, repeats // 5)}
    batches = latency_batches(folder, seq_len, tuple(per_bs))
    ms: dict[str, dict[int, float]] = {name: {} for name in runs}
    for bs, n in per_bs.items():
        log(f"{folder.name}: timing {len(runs)} variants at batch {bs}, length {seq_len}, {rounds} rounds")
        got = interleaved_latency({name: r for name, (r, _b, _w) in runs.items()}, {bs: batches[bs]}, rounds=rounds,
                                  repeats=n, warmup=2, threads=threads)
        for name, v in got.items():
            ms[name][bs] = v[bs]
    log(f"{folder.name}: accuracy on the test rows")
    base = ms["ort-int8"]
    rows = [{"variant": name, "what": what, "bytes": size, "ms_b1": ms[name][1], "ms_b32": ms[name][32],
             "speed_vs_int8_b1": base[1] / ms[name][1], "speed_vs_int8_b32": base[32] / ms[name][32],
             "test_accuracy": accuracy(reference, run, texts, labels)} for name, (run, size, what) in runs.items()]
    return {"folder": folder.name, "recipe": json.loads((folder / "recipe.json").read_text()), "repeats": per_bs,
            "rows": rows}


def table(result: dict) -> list[str]:
    r = result["recipe"]
    depth = f"{len(r['layers'])} layers" if r.get("layers") is not None else "every layer"
    lines = [f"## `{result['folder']}`: {depth}, heads kept {r['heads_keep']}, FFN kept {r['ffn_keep']}, weights at "
             f"{r['bits']} bits, embedding tables at {r.get('embedding_bits') or r['bits']} bits", "",
             "| variant | what | bytes | ms b1 | speed vs int8, b1 | ms b32 | speed vs int8, b32 | test accuracy |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {x['variant']} | {x['what']} | {x['bytes']:,} | {x['ms_b1']:.2f} | {x['speed_vs_int8_b1']:.2f}x | "
              f"{x['ms_b32']:.1f} | {x['speed_vs_int8_b32']:.2f}x | {x['test_accuracy']:.4f} |" for x in result["rows"]]
    fastest = max(result["rows"], key=lambda x: x["speed_vs_int8_b1"])
    return lines + ["", f"Fastest at batch 1: {fastest['variant']} ({fastest['speed_vs_int8_b1']:.2f}x ONNX Runtime "
                        "int8).", ""]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--folder", required=True, nargs="+", help="trial or export folders, each measured on its own")
    ap.add_argument("--experiment", default=str(HERE / "sst2-benchmark.yaml"))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    exp = Experiment.from_file(args.experiment)
    test = load_raw(exp)["test"]
    texts, labels = list(test[exp.task.text]), np.array([int(x) for x in test[exp.task.label]])
    results = [measure(Path(f), exp, texts, labels, args.rounds, args.repeats) for f in args.folder]
    lines = ["# Low-bit kernels on this CPU: 4-bit weight kernels against dynamic int8", ""]
    lines += provenance("lowbit_kernels.py", exp.measure.threads)
    lines += [f"- every variant is built from the model's fp32 ONNX graph; latency at length {exp.measure.seq_len}, "
              f"{exp.measure.threads} threads, {args.rounds} interleaved rounds (a figure is the median of round "
              "medians); speed = ONNX Runtime int8 ms / variant ms",
              f"- accuracy: the {len(texts)} test rows of `{Path(args.experiment).name}`; nothing is chosen on them", ""]
    for result in results:
        lines += table(result)
    (HERE / "results" / "lowbit-kernels.md").write_text("\n".join(lines))
    (HERE / "results" / "lowbit-kernels.json").write_text(json.dumps(
        {"seq_len": exp.measure.seq_len, "threads": exp.measure.threads, "rounds": args.rounds, "models": results},
        indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
