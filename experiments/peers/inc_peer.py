"""Peer baseline: Intel Neural Compressor (INC 3.x) accuracy-driven int8 post-training quantization.

Runs in its own venv (bash experiments/peers/setup_inc.sh), never in the project's .venv:

  .venv-inc/bin/python experiments/peers/inc_peer.py quantize --teacher DIR --dev DEV.tsv \
      --train TRAIN.tsv --out OUT [--tolerable-loss 0.01] [--max-length 64]
  .venv-inc/bin/python experiments/peers/inc_peer.py latency --model OUT [--threads 2] \
      [--seq-len 64] [--repeats 20] [--warmup 5]

INC's PyTorch int8 path is PT2E: the model is exported with torch.export (batch dimension
dynamic, sequence length fixed to --max-length), then `autotune` tries int8 configs (static
and dynamic) in order, each evaluated by dev accuracy, and stops at the first one whose
relative loss against fp32 is within --tolerable-loss (or after --max-trials). The chosen config
is then redone with INC's prepare/convert and fold_quantize=True so weights are stored as int8,
and saved as a torch.export program (quantized_weight.pt + qconfig.json).
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import os
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch


def die(msg: str) -> None:
    print(f"inc_peer: error: {msg}", file=sys.stderr)
    sys.exit(1)


def read_tsv(path: str, limit: int | None = None) -> tuple[list[str], list[int]]:
    """Read a GLUE TSV (columns `sentence`, `label`) with quoting off."""
    if not os.path.isfile(path):
        die(f"no such TSV file: {path}")
    sentences, labels = [], []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        if not {"sentence", "label"} <= set(reader.fieldnames or []):
            die(f"{path}: expected columns 'sentence' and 'label', got {reader.fieldnames}")
        for row in reader:
            sentences.append(row["sentence"])
            labels.append(int(row["label"]))
            if limit is not None and len(sentences) >= limit:
                break
    return sentences, labels


class Classifier(torch.nn.Module):
    """Positional (input_ids, attention_mask) -> logits, so torch.export sees plain tensors."""

    def __init__(self, hf_model: torch.nn.Module):
        super().__init__()
        self.model = hf_model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def encode(tokenizer, sentences: list[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    enc = tokenizer(sentences, padding="max_length", truncation=True, max_length=max_length,
                    return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


@torch.no_grad()
def accuracy(model, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor, batch: int = 32) -> float:
    correct = 0
    for i in range(0, len(ids), batch):
        logits = model(ids[i:i + batch], mask[i:i + batch])
        correct += int((logits.argmax(-1) == labels[i:i + batch]).sum())
    return correct / len(ids)


def folder_bytes(path: str, exclude: tuple[str, ...] = ("result.json",)) -> int:
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files if f not in exclude)
    return total


def drop_unused_tensors(gm: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Delete parameters / buffers no graph node reads (the fp32 weights replaced by folded int8
    ones); torch.export would otherwise save them too."""
    used = {n.target for n in gm.graph.nodes if n.op == "get_attr"}
    for name, _ in list(gm.named_parameters()) + list(gm.named_buffers()):
        if name not in used:
            owner, _, attr = name.rpartition(".")
            delattr(gm.get_submodule(owner) if owner else gm, attr)
    return gm


def cmd_quantize(args: argparse.Namespace) -> None:
    import neural_compressor
    from neural_compressor.torch.export import export
    from neural_compressor.torch.quantization import (
        DynamicQuantConfig,
        StaticQuantConfig,
        TuningConfig,
        autotune,
        load,
        prepare,
    )
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if not os.path.isfile(os.path.join(args.teacher, "config.json")):
        die(f"{args.teacher} is not a Hugging Face model folder (no config.json)")
    tokenizer = AutoTokenizer.from_pretrained(args.teacher, local_files_only=True)
    hf_model = AutoModelForSequenceClassification.from_pretrained(args.teacher, local_files_only=True)
    fp32 = Classifier(hf_model.eval()).eval()

    dev_s, dev_y = read_tsv(args.dev)
    dev_ids, dev_mask = encode(tokenizer, dev_s, args.max_length)
    dev_labels = torch.tensor(dev_y)
    cal_s, _ = read_tsv(args.train, limit=args.calib_size)
    cal_ids, cal_mask = encode(tokenizer, cal_s, args.max_length)
    print(f"dev {len(dev_s)} sentences, calibration {len(cal_s)} sentences, length {args.max_length}",
          file=sys.stderr)

    # Batch is dynamic (min 1), sequence length is fixed to max_length.
    example = (dev_ids[:2], dev_mask[:2])
    batch = torch.export.Dim("batch", min=1, max=4096)
    try:
        exported = export(fp32, example, dynamic_shapes=({0: batch}, {0: batch}))
    except Exception as e:  # noqa: BLE001 - report INC/torch.export failures plainly
        die(f"torch.export of the teacher failed ({type(e).__name__}: {e})")

    history: list[float] = []  # first entry: fp32 baseline, then one per trial

    def eval_fn(model) -> float:
        t = time.perf_counter()
        acc = accuracy(model, dev_ids, dev_mask, dev_labels)
        history.append(acc)
        label = "fp32 baseline" if len(history) == 1 else f"trial {len(history) - 1}"
        print(f"{label}: dev accuracy {acc:.4f} ({time.perf_counter() - t:.0f} s)", file=sys.stderr)
        return acc

    def run_fn(model) -> None:  # calibration for static configs
        with torch.no_grad():
            for i in range(0, len(cal_ids), 32):
                model(cal_ids[i:i + 32], cal_mask[i:i + 32])

    # Tried in this order; tuning stops at the first config within tolerable_loss.
    config_set = [
        StaticQuantConfig(),  # int8 per-channel sym weights, uint8 per-tensor asym activations, minmax
        DynamicQuantConfig(),  # int8 weights, activations quantized at run time
        StaticQuantConfig(act_algo="kl"),  # static with histogram (KL) activation observers
        StaticQuantConfig(act_sym=True, act_dtype="int8"),
        DynamicQuantConfig(w_granularity="per_channel"),
    ]
    tune_config = TuningConfig(config_set=config_set, tolerable_loss=args.tolerable_loss,
                               max_trials=args.max_trials)
    t0 = time.perf_counter()
    try:
        q_model = autotune(exported, tune_config=tune_config, eval_fn=eval_fn, run_fn=run_fn,
                           example_inputs=example)
    except Exception as e:  # noqa: BLE001
        die(f"INC autotune failed ({type(e).__name__}: {e})")
    tune_seconds = time.perf_counter() - t0
    trials = len(history) - 1
    if q_model is None:  # autotune returns None when the configs run out before the goal is met
        die(f"no INC config met tolerable_loss={args.tolerable_loss} in {trials} trials "
            f"(fp32 {history[0]:.4f}, trials {[round(a, 4) for a in history[1:]]})")

    mapping = q_model.qconfig
    chosen = next(iter(mapping.values()))
    chosen_text = f"{type(chosen).__name__}({json.dumps(chosen.to_dict(), sort_keys=True)})"
    del q_model
    # autotune's model keeps fp32 weights followed by quantize ops: INC 3.10 converts with
    # fold_quantize=False and its convert() entry does not pass that option on, so the saved file
    # is no smaller than fp32. Redo the chosen config: INC prepare + calibration, then the PT2E
    # convert_pt2e that INC wraps, with fold_quantize=True (weights stored as int8), then INC's save.
    from neural_compressor.torch.algorithms.pt2e_quant.pt2e_compat import convert_pt2e
    from neural_compressor.torch.algorithms.pt2e_quant.save_load import save

    base = copy.deepcopy(exported)
    base._exported, base.dynamic_shapes = True, exported.dynamic_shapes  # lost by deepcopy
    try:
        prepared = prepare(base, chosen, example_inputs=example)
        run_fn(prepared)
        final = drop_unused_tensors(convert_pt2e(prepared, fold_quantize=True))
        final.dynamic_shapes, final.qconfig = exported.dynamic_shapes, mapping
        os.makedirs(args.out, exist_ok=True)
        save(final, example, args.out)  # torch.export program + qconfig.json
    except Exception as e:  # noqa: BLE001
        die(f"re-quantizing / saving the chosen config failed ({type(e).__name__}: {e})")

    try:
        reloaded = load(args.out)
        reload_note = "reloaded with neural_compressor.torch.quantization.load"
    except Exception as e:  # noqa: BLE001
        print(f"warning: reload failed ({type(e).__name__}: {e}); measuring in-memory model",
              file=sys.stderr)
        reloaded, reload_note = final, f"reload failed: {type(e).__name__}: {e}"
    q_acc = accuracy(reloaded, dev_ids, dev_mask, dev_labels)

    result = {
        "inc_version": neural_compressor.__version__,
        "torch_version": torch.__version__,
        "transformers_version": __import__("transformers").__version__,
        "teacher": os.path.abspath(args.teacher),
        "format": "INC PT2E: torch.export program (quantized_weight.pt) + qconfig.json, "
                  "int8 weights (folded) + quantize/dequantize graph, batch dynamic, seq len fixed; "
                  "embeddings and LayerNorm stay fp32",
        "max_length": args.max_length,
        "calibration_sentences": len(cal_s),
        "tolerable_loss": args.tolerable_loss,
        "chosen_config": chosen_text,
        "fp32_dev_accuracy": history[0],
        "quantized_dev_accuracy": q_acc,
        "quantized_dev_accuracy_in_tuning": history[-1] if trials else None,
        "dev_sentences": len(dev_s),
        "reload": reload_note,
        "bytes_on_disk": folder_bytes(args.out),
        "tuning_seconds": round(tune_seconds, 1),
        "trials": trials,
        "trial_accuracies": history[1:],
        "threads": args.threads,
    }
    with open(os.path.join(args.out, "result.json"), "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


def time_forward(model, ids, mask, repeats: int, warmup: int) -> float:
    with torch.no_grad():
        for _ in range(warmup):
            model(ids, mask)
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            model(ids, mask)
            times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def cmd_latency(args: argparse.Namespace) -> None:
    from neural_compressor.torch.quantization import load

    torch.set_num_threads(args.threads)
    if not os.path.isfile(os.path.join(args.model, "qconfig.json")):
        die(f"{args.model} has no qconfig.json: not an INC-saved model folder")
    try:
        model = load(args.model)
    except Exception as e:  # noqa: BLE001
        die(f"could not load INC model from {args.model} ({type(e).__name__}: {e})")
    saved_len = None
    result_path = os.path.join(args.model, "result.json")
    if os.path.isfile(result_path):
        with open(result_path) as f:
            saved_len = json.load(f).get("max_length")
    if saved_len is not None and saved_len != args.seq_len:
        die(f"model was exported with sequence length {saved_len}; rerun with --seq-len {saved_len}")

    g = torch.Generator().manual_seed(0)

    def inputs(b: int):
        return (torch.randint(1000, 20000, (b, args.seq_len), generator=g),
                torch.ones(b, args.seq_len, dtype=torch.long))

    out = {}
    for tag, m in (("eager", model), ("compiled", None)):
        if tag == "compiled":
            if args.no_compile:
                break
            try:
                # freezing lets inductor prepack the int8 weights and lower quantize/dequantize +
                # linear to onednn::qlinear_pointwise; without it the weights are dequantized on
                # every call and the matmuls run in fp32 (aten::addmm)
                import torch._inductor.config as inductor_config

                inductor_config.freezing = True
                m = torch.compile(model, dynamic=False)
            except Exception as e:  # noqa: BLE001
                out["compile_error"] = f"{type(e).__name__}: {e}"
                break
        suffix = "" if tag == "eager" else "_compiled"
        for b in (1, 32):
            try:
                t = time.perf_counter()
                m(*inputs(b))  # first call (compiles, for torch.compile)
                first = time.perf_counter() - t
                out[f"latency_ms_b{b}{suffix}"] = round(time_forward(m, *inputs(b), args.repeats,
                                                                     args.warmup), 2)
                if tag == "compiled":
                    out[f"compile_seconds_b{b}"] = round(first, 1)
            except Exception as e:  # noqa: BLE001
                out[f"{tag}_error_b{b}"] = f"{type(e).__name__}: {str(e)[:300]}"
    if args.teacher:  # fp32 reference under the same conditions (eager)
        from transformers import AutoModelForSequenceClassification

        hf = AutoModelForSequenceClassification.from_pretrained(args.teacher, local_files_only=True)
        fp32 = Classifier(hf.eval()).eval()
        for b in (1, 32):
            out[f"fp32_latency_ms_b{b}"] = round(time_forward(fp32, *inputs(b), args.repeats,
                                                              args.warmup), 2)
    out["note"] = (
        f"INC PT2E int8 (qdq graph from torch.export), median of {args.repeats} after {args.warmup} "
        f"warmup, {args.threads} threads, seq len {args.seq_len}; latency_ms_* = eager (qdq ops run "
        "as fp32 with quantize/dequantize, no int8 kernels); *_compiled = torch.compile with "
        "inductor freezing (qdq patterns lowered to oneDNN int8 qlinear kernels); fp32_* = --teacher, eager")
    print(json.dumps(out))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("quantize", help="INC accuracy-driven int8 PTQ")
    q.add_argument("--teacher", required=True)
    q.add_argument("--dev", required=True)
    q.add_argument("--train", required=True)
    q.add_argument("--out", required=True)
    q.add_argument("--tolerable-loss", type=float, default=0.01, help="relative to fp32")
    q.add_argument("--max-length", type=int, default=64)
    q.add_argument("--calib-size", type=int, default=256, help="training sentences for calibration")
    q.add_argument("--max-trials", type=int, default=5)
    q.add_argument("--threads", type=int, default=1)
    q.set_defaults(func=cmd_quantize)
    lat = sub.add_parser("latency", help="time the saved INC model")
    lat.add_argument("--model", required=True)
    lat.add_argument("--threads", type=int, default=2)
    lat.add_argument("--seq-len", type=int, default=64)
    lat.add_argument("--repeats", type=int, default=20)
    lat.add_argument("--warmup", type=int, default=5)
    lat.add_argument("--teacher", help="also time this fp32 Hugging Face model (eager) for reference")
    lat.add_argument("--no-compile", action="store_true", help="skip the torch.compile timing")
    lat.set_defaults(func=cmd_latency)
    args = p.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
