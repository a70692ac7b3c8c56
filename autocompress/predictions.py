"""What `predict` says about texts: each task's answer for a row, and, for a per-token task, its entities.

A per-token model tags sub-word tokens; a user asks about words and spans of the text. The tag of a word is
its first sub-word token's (as it was trained), the words' tags become entity spans (`tasks/entities.py`,
lenient the way conlleval is), and each span is given back as the characters of the text it covers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from .engine.tasks import Task
from .engine.tasks.entities import entity_spans


def encode(tokenizer, texts: Sequence[str], pairs: Sequence[str] | None, max_length: int):
    return tokenizer(list(texts), list(pairs) if pairs else None, truncation=True, max_length=max_length,
                     padding=True, return_tensors="pt", return_token_type_ids=True)


def _runs(run: Callable, tokenizer, texts: Sequence[str], pairs: Sequence[str] | None, max_length: int,
          batch_size: int = 64):
    """(each text's output, its tokenizer encoding) in text order: an output is a row (`[width]`), or for a
    per-token model its real tokens' rows (`[tokens, labels]`)."""
    for i in range(0, len(texts), batch_size):
        b = encode(tokenizer, texts[i:i + batch_size], pairs[i:i + batch_size] if pairs else None, max_length)
        with torch.inference_mode():
            y = np.asarray(run(b["input_ids"], b["attention_mask"], b["token_type_ids"]), dtype=np.float32)
        if y.ndim == 3:
            y = [y[r, :n] for r, n in enumerate(b["attention_mask"].sum(1).tolist())]
        yield from zip(y, b.encodings)


def row_outputs(run: Callable, tokenizer, texts: Sequence[str], pairs: Sequence[str] | None, max_length: int,
                batch_size: int = 64) -> list[np.ndarray]:
    """Each text's output: a row (`[width]`), or for a per-token model its real tokens' rows (`[tokens, labels]`)."""
    return [y for y, _ in _runs(run, tokenizer, texts, pairs, max_length, batch_size)]


def entities(tags: Sequence[str], text: str, encoding) -> list[dict[str, Any]]:
    """The entities of one text: words tagged by their first sub-word token, spans as characters of `text`."""
    first: dict[int, int] = {}
    for pos, word in enumerate(encoding.word_ids):
        if word is not None and word not in first:
            first[word] = pos
    words = sorted(first)
    word_tags = [tags[first[w]] if first[w] < len(tags) else "O" for w in words]
    found = []
    for kind, start, end in entity_spans(word_tags):
        a, _ = encoding.word_to_chars(words[start])
        _, z = encoding.word_to_chars(words[end - 1])
        found.append({"type": kind, "text": text[a:z], "start": a, "end": z})
    return found


def predictions(task: Task, run: Callable, tokenizer, label_names: Sequence[str], texts: Sequence[str],
                pairs: Sequence[str] | None, max_length: int) -> list[dict[str, Any]]:
    """The task's answer for each text (`Task.prediction`); a per-token task's tags grouped into entities."""
    rows = []
    for text, (y, encoding) in zip(texts, _runs(run, tokenizer, texts, pairs, max_length)):
        row = task.prediction(y, label_names)
        if task.per_token:
            row["entities"] = entities(row["tags"], text, encoding)
        rows.append(row)
    return rows


def line(task: Task, row: dict[str, Any], text: str) -> str:
    """One printed line of `autocompress predict`: the answer, a TAB, the text."""
    if "label" in row:
        return f"{row['label']}\t{row['probability']:.3f}\t{text}"
    if "score" in row:
        return f"{row['score']:.4f}\t{text}"
    if "entities" in row:
        found = "; ".join(f"{e['type']}: {e['text']}" for e in row["entities"]) or "(no entities)"
        return f"{found}\t{text}"
    return f"{len(row['embedding'])}-d embedding {row['embedding'][:4]}...\t{text}"
