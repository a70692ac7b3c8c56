#!/usr/bin/env python3
"""Run this exported model on texts, with only numpy, tokenizers and onnxruntime (model.onnx) or openvino
(model.xml + model.bin) installed: no torch, transformers or autocompress.

    python predict.py "a sentence" ["another sentence" ...]   one answer per line: a classifier's label, a
                                                               regression's score, a tagger's entities
                                                               (TYPE: text; ...), an embedding (JSON)
    python predict.py --json "a sentence"                     each text's full answer (JSON)
    python predict.py < texts.txt                              one text per line from standard input

A pair task (task.json "text_pair": true) takes each pair as two arguments, first text then second
(on standard input: the two texts of a pair on one line, separated by a TAB).

`autocompress export` writes this file (from autocompress/deploy_script.py) beside the runtime's own files.
It runs them as `autocompress.load_compressed` does: the tokenizer's tokenizer.json, truncated to task.json's
max_length and padded to the longest text of each batch of 64; int64 input_ids, attention_mask and
token_type_ids; the thread count the model was measured with (--threads to change it), ONNX Runtime
without busy-waiting, OpenVINO with one stream, a latency hint and the precision the model was measured in.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ONNX, XML = "model.onnx", "model.xml"
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
BATCH = 64  # texts per run, as load_compressed: padding (and dynamic int8 ranges) are per batch


class DeployError(Exception):
    """A problem with the folder or the arguments: printed as one line, exit code 2."""


def read_json(folder: Path, name: str) -> dict:
    """One JSON file of the folder; DeployError when it is missing or unreadable."""
    try:
        return json.loads((folder / name).read_text())
    except (OSError, ValueError) as err:
        raise DeployError(f"{folder / name}: cannot be read ({err})") from None


# ---- tokenizer -------------------------------------------------------------------------------------


def _token(value) -> str | None:
    """A special token as tokenizer_config.json writes it: a string, or {"content": ...}."""
    return value.get("content") if isinstance(value, dict) else value


def load_tokenizer(folder: Path, max_length: int):
    """tokenizer/tokenizer.json, truncating to `max_length` (longest first, as transformers does) and
    padding to the longest text of a batch with the tokenizer's pad token."""
    from tokenizers import Tokenizer

    path = folder / "tokenizer" / "tokenizer.json"
    if not path.is_file():
        raise DeployError(f"{path} is missing; re-export the model")
    tok = Tokenizer.from_file(str(path))
    config = read_json(folder / "tokenizer", "tokenizer_config.json") if (
        folder / "tokenizer" / "tokenizer_config.json").is_file() else {}
    pad_token = _token(config.get("pad_token")) or (tok.padding or {}).get("pad_token") or "[PAD]"
    pad_id = tok.token_to_id(pad_token)
    if pad_id is None:
        pad_id = (tok.padding or {}).get("pad_id", 0)
    tok.enable_truncation(max_length, strategy="longest_first", direction=config.get("truncation_side", "right"))
    tok.enable_padding(direction=config.get("padding_side", "right"), pad_id=pad_id, pad_token=pad_token)
    return tok


def encode(tok, texts: list[str], pairs: list[str] | None = None) -> dict:
    """One batch as the int64 [batch, seq] arrays the model takes, by input name."""
    return arrays(tok.encode_batch(list(zip(texts, pairs)) if pairs else list(texts)))


def arrays(encodings) -> dict:
    """Padded encodings of one batch as the int64 [batch, seq] arrays the model takes, by input name."""
    import numpy as np

    return {"input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64)}


# ---- runtimes --------------------------------------------------------------------------------------


def has_bf16() -> bool:
    """True when this CPU computes in bfloat16 natively (AVX-512 BF16 or AMX BF16; Linux /proc/cpuinfo)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    for line in text.splitlines():
        if line.startswith("flags"):
            return bool(set(line.partition(":")[2].split()) & {"avx512_bf16", "amx_bf16"})
    return False


def openvino_config(bits: int, threads: int) -> dict:
    """The CPU plugin's properties: one stream, a latency hint, `threads` threads; f32 at 32 bits,
    else bf16 where the CPU computes in bf16 (16 bits, and the non-int8 ops of an 8-bit model)."""
    precision = "bf16" if bits != 32 and has_bf16() else "f32"
    return {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1, "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": precision}


def onnx_runner(path: Path, threads: int):
    """An ONNX Runtime session of `path` on the CPU: feeds -> float32 logits."""
    import numpy as np
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3  # errors only
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]

    def run(feeds: dict):
        return np.asarray(sess.run(["logits"], {k: feeds[k] for k in names})[0], dtype=np.float32)

    return run


def openvino_runner(path: Path, bits: int, threads: int):
    """The OpenVINO model `path` (its .bin beside it) compiled for the CPU: feeds -> float32 logits."""
    import numpy as np
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(path)), "CPU", openvino_config(bits, threads))
    request = compiled.create_infer_request()
    names = [i.get_any_name() for i in compiled.inputs]

    def run(feeds: dict):
        request.infer({k: feeds[k] for k in names})
        return np.array(request.get_output_tensor(0).data, dtype=np.float32, copy=True)

    return run


def open_model(folder: Path, bits: int, threads: int):
    """The runtime session of the files this folder ships: model.onnx, or model.xml + model.bin."""
    try:
        if (folder / ONNX).is_file():
            return onnx_runner(folder / ONNX, threads)
        if (folder / XML).is_file():
            return openvino_runner(folder / XML, bits, threads)
    except ImportError as err:
        raise DeployError(f"{err}; install the runtime this model needs (see README.md)") from None
    raise DeployError(f"{folder}: neither {ONNX} nor {XML} is here; export with --format onnx or openvino")


# ---- the model -------------------------------------------------------------------------------------


class Model:
    """The exported model: its labels, tokenizer and runtime session."""

    def __init__(self, folder: Path = HERE, threads: int | None = None):
        task = read_json(folder, "task.json")
        try:
            self.label_names = [str(n) for n in task["label_names"]]
            max_length = int(task["max_length"])
        except (KeyError, TypeError, ValueError):
            raise DeployError(f"{folder / 'task.json'}: no label_names or max_length; re-export the model") from None
        self.pairs = bool(task.get("text_pair", False))
        self.task = str(task.get("task", "classification"))
        if self.task not in ANSWER:
            raise DeployError(f"{folder / 'task.json'}: task '{self.task}' is not one this script answers "
                              f"({', '.join(ANSWER)}); re-export with a newer autocompress")
        self.tokenizer = load_tokenizer(folder, max_length)
        bits = int(read_json(folder, "recipe.json").get("bits", 32))
        threads = threads or int(read_json(folder, "metrics.json").get("threads", 2))
        self.run = open_model(folder, bits, threads)

    def logits(self, texts: list[str], pairs: list[str] | None = None):
        """float32 [texts, labels], in batches of BATCH texts."""
        import numpy as np

        out = [self.run(encode(self.tokenizer, texts[i:i + BATCH], pairs[i:i + BATCH] if pairs else None))
               for i in range(0, len(texts), BATCH)]
        return np.concatenate(out) if out else np.zeros((0, len(self.label_names)), np.float32)

    def predict(self, texts: list[str], pairs: list[str] | None = None) -> list[str]:
        return [self.label_names[i] for i in self.logits(texts, pairs).argmax(-1)]

    def answers(self, texts: list[str], pairs: list[str] | None = None) -> list[dict]:
        """Each text's answer in the task's terms (a label, a score, entities or an embedding)."""
        out = []
        for i in range(0, len(texts), BATCH):
            part, part_pairs = texts[i:i + BATCH], pairs[i:i + BATCH] if pairs else None
            encodings = self.tokenizer.encode_batch(list(zip(part, part_pairs)) if part_pairs else list(part))
            rows = self.run(arrays(encodings))
            out += [ANSWER[self.task](self, row, enc, text) for row, enc, text in zip(rows, encodings, part)]
        return out


def softmax(rows):
    import numpy as np

    e = np.exp(rows - rows.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def entity_spans(tags: list[str]) -> list[tuple[str, int, int]]:
    """(type, first word, last word + 1) of each entity: B-X starts one, I-X continues one of type X (and
    otherwise starts one), O ends one (as autocompress scores entities)."""
    spans, kind, start = [], "", 0
    for i, tag in enumerate(tags + ["O"]):
        prefix, tag_kind = (tag[0], tag[2:]) if tag[:2] in ("B-", "I-") else ("O", "")
        if kind and (prefix != "I" or tag_kind != kind):
            spans.append((kind, start, i))
            kind = ""
        if prefix != "O" and not kind:
            kind, start = tag_kind, i
    return spans


def entities(model: Model, row, enc, text: str) -> dict:
    """A tagger's answer: each word tagged as its first sub-word token, runs of tags as character spans."""
    first: dict[int, int] = {}
    for pos, word in enumerate(enc.word_ids):
        if word is not None and word not in first:
            first[word] = pos
    words = sorted(first)
    tags = [model.label_names[int(row[first[w]].argmax())] for w in words]
    found = []
    for kind, a, z in entity_spans(tags):
        start, end = enc.word_to_chars(words[a])[0], enc.word_to_chars(words[z - 1])[1]
        found.append({"type": kind, "text": text[start:end], "start": start, "end": end})
    return {"entities": found}


ANSWER = {  # task.json's task -> one row's answer
    "classification": lambda m, row, enc, text: {
        "label": m.label_names[int(row.argmax())],
        "probabilities": {n: round(float(v), 6) for n, v in zip(m.label_names, softmax(row))}},
    "regression": lambda m, row, enc, text: {"score": round(float(row[0]), 6)},
    "token_classification": entities,
    "embedding": lambda m, row, enc, text: {"embedding": [round(float(v), 6) for v in row]},
}


def line(answer: dict) -> str:
    """One printed line: the label, the score, the entities (TYPE: text; ...) or the embedding as JSON."""
    if "label" in answer:
        return answer["label"]
    if "score" in answer:
        return f"{answer['score']:.4f}"
    if "entities" in answer:
        return "; ".join(f"{e['type']}: {e['text']}" for e in answer["entities"]) or "(no entities)"
    return json.dumps(answer["embedding"])


# ---- command line ----------------------------------------------------------------------------------


def read_inputs(args: list[str], pairs: bool) -> tuple[list[str], list[str] | None]:
    """The texts (and their pairs) from the arguments, else from standard input, one per line."""
    if not args:
        if sys.stdin.isatty():
            raise DeployError("give texts as arguments, or one per line on standard input")
        lines = [ln.rstrip("\n") for ln in sys.stdin if ln.strip()]
        if not pairs:
            return lines, None
        split = [ln.split("\t", 1) for ln in lines]
        if any(len(p) != 2 for p in split):
            raise DeployError("a pair task reads two texts per line, separated by a TAB")
        return [p[0] for p in split], [p[1] for p in split]
    if not pairs:
        return list(args), None
    if len(args) % 2:
        raise DeployError("a pair task takes texts two at a time (first text, then its pair): "
                          f"got {len(args)} arguments")
    return list(args[0::2]), list(args[1::2])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run this exported model on texts: a label, a score, entities "
                                     "or an embedding per text, as its task is.")
    parser.add_argument("texts", nargs="*", help="texts (none: one per line on standard input)")
    parser.add_argument("--json", action="store_true", help="print each text's full answer as JSON (a classifier: "
                        "its label and probabilities)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: as measured)")
    args = parser.parse_args(argv)
    try:
        model = Model(HERE, args.threads)
        texts, pairs = read_inputs(args.texts, model.pairs)
        answers = model.answers(texts, pairs)
    except DeployError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not args.json:
        for answer in answers:
            print(line(answer))
        return 0
    print(json.dumps([{"text": texts[k], **({"pair": pairs[k]} if pairs else {}), **answer}
                      for k, answer in enumerate(answers)], ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
