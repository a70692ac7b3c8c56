"""Entity-level scores of tag sequences: exact-span micro precision, recall and F1 (conlleval's and
seqeval's default IOB2 mode), plus token accuracy.

Both gold and predicted sequences are decoded the lenient way conlleval decodes them: `B-X` always starts
an entity, `I-X` continues an entity of type X and otherwise (after `O`, at the start, or after another
type) starts a new one, and `O` ends one. An entity counts as found only when a predicted entity has the
same type, start and end as a gold one.
"""

from __future__ import annotations

from collections.abc import Sequence

Span = tuple[str, int, int]
"""An entity: its type, its first token, and the token after its last (end exclusive)."""


def _split(tag: str) -> tuple[str, str]:
    """A tag's prefix (`O`, `B` or `I`) and entity type (empty for `O`); a ValueError for anything else."""
    if tag == "O":
        return "O", ""
    if tag[:2] in ("B-", "I-") and len(tag) > 2:
        return tag[0], tag[2:]
    raise ValueError(f"tag {tag!r} is neither O nor B-<type>/I-<type> (IOB2)")


def entity_spans(tags: Sequence[str]) -> list[Span]:
    """The entities of one sentence's tags as (type, start, end exclusive), in order."""
    spans: list[Span] = []
    kind, start = "", -1
    for i, tag in enumerate(tags):
        prefix, tag_kind = _split(tag)
        if kind and (prefix != "I" or tag_kind != kind):
            spans.append((kind, start, i))
            kind = ""
        if prefix != "O" and not kind:
            kind, start = tag_kind, i
    if kind:
        spans.append((kind, start, len(tags)))
    return spans


def _ratio(part: float, whole: float) -> float:
    return part / whole if whole else 0.0


def entity_scores(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> dict[str, float]:
    """Micro entity precision, recall and F1 over all sentences, and the fraction of tokens tagged right.

    Precision is 0.0 with no predicted entity, recall 0.0 with no gold entity, F1 0.0 when both are 0.
    A ValueError when the two differ in their number of sentences or any sentence in its length.
    """
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold sentences but {len(pred)} predicted ones")
    n_gold = n_pred = n_found = n_tokens = n_right = 0
    for i, (g, p) in enumerate(zip(gold, pred)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted ones")
        gold_spans, pred_spans = set(entity_spans(g)), set(entity_spans(p))
        n_gold += len(gold_spans)
        n_pred += len(pred_spans)
        n_found += len(gold_spans & pred_spans)
        n_tokens += len(g)
        n_right += sum(a == b for a, b in zip(g, p))
    precision, recall = _ratio(n_found, n_pred), _ratio(n_found, n_gold)
    f1 = _ratio(2 * precision * recall, precision + recall)
    return {
        "entity_f1": f1,
        "entity_precision": precision,
        "entity_recall": recall,
        "token_accuracy": _ratio(n_right, n_tokens),
    }
