"""Tiny randomly initialized teachers of every supported family and small generated tasks, for tests and
fault drills.

Everything here is built from a config and generated data: no download, runs in seconds. Each family's
tiny teacher has a tokenizer of that family's kind, built here from a small vocabulary: WordPiece (BERT,
DistilBERT, ELECTRA, MPNet), byte-level BPE (RoBERTa, ModernBERT) or Unigram / SentencePiece (XLM-RoBERTa, DeBERTa-v2).
"""

from __future__ import annotations

import numpy as np
import torch


def tiny_config(**overrides):
    from transformers import BertConfig

    kw = dict(
        vocab_size=120, hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64,
        max_position_embeddings=64, num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )
    kw.update(overrides)
    return BertConfig(**kw)


# ---- a tiny teacher folder with a real tokenizer, and generated task files -------------------

WORDS = ["good", "great", "fine", "nice", "fun", "bad", "awful", "dull", "poor", "sad"] + [
    f"w{i}" for i in range(60)
]
POSITIVE, NEGATIVE, FILLER = WORDS[:5], WORDS[5:10], WORDS[10:50]  # w40..w59: in the vocabulary, never used
BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # ids 0-4 of every WordPiece vocabulary of BERT's kind
_TRAINED: dict[tuple[str, int, int], dict] = {}  # (family, seed, labels) -> a tiny classifier's trained weights
_SIZES = dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, intermediate_size=64)
_NO_DROPOUT = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def _wordpiece(specials: list[str], cls):
    return cls(vocab={w: i for i, w in enumerate(specials + WORDS)})


def _byte_bpe():
    """A byte-level BPE tokenizer (RoBERTa's kind): characters, plus merges that build each word after a space."""
    from transformers import RobertaTokenizer

    vocab: dict[str, int] = {t: i for i, t in enumerate(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])}
    merges: list[tuple[str, str]] = []
    for word in WORDS:
        pieces = ["\u0120", *word]  # "Ġ": a space, as byte-level BPE spells it
        for p in pieces:
            vocab.setdefault(p, len(vocab))
        built = pieces[0]
        for p in pieces[1:]:
            if (built, p) not in merges:
                merges.append((built, p))
            built += p
            vocab.setdefault(built, len(vocab))
    return RobertaTokenizer(vocab=vocab, merges=merges, add_prefix_space=True)


def _unigram(specials: list[str], cls):
    """A Unigram (SentencePiece) tokenizer: every word a piece after "▁", single characters as the fallback."""
    chars = sorted({c for w in WORDS for c in w} | {"\u2581"})
    pieces = [(s, 0.0) for s in specials] + [("\u2581" + w, -1.0) for w in WORDS] + [(c, -5.0) for c in chars]
    return cls(vocab=pieces)


def tiny_family(family: str, vocab_size: int, num_labels: int = 2, pad_token_id: int = 0):
    """A tiny config of `family` (its own config class) with the sizes every tiny teacher shares."""
    import transformers as tf

    common = dict(vocab_size=vocab_size, num_labels=num_labels, pad_token_id=pad_token_id)
    if family == "bert":
        return tiny_config(**common)
    if family in ("roberta", "xlm-roberta"):
        cls = tf.RobertaConfig if family == "roberta" else tf.XLMRobertaConfig
        return cls(**common, **_SIZES, **_NO_DROPOUT, max_position_embeddings=66, type_vocab_size=1,
                   bos_token_id=0, eos_token_id=2)
    if family == "distilbert":
        return tf.DistilBertConfig(**common, dim=32, n_layers=3, n_heads=4, hidden_dim=64, max_position_embeddings=64,
                                   dropout=0.0, attention_dropout=0.0, seq_classif_dropout=0.0)
    if family == "electra":  # embeddings narrower than the layers, projected up, as ELECTRA-small has them
        return tf.ElectraConfig(**common, **_SIZES, **_NO_DROPOUT, embedding_size=16, max_position_embeddings=64)
    if family == "deberta-v2":  # v3's settings: relative positions only, no token types
        return tf.DebertaV2Config(**common, **_SIZES, **_NO_DROPOUT, max_position_embeddings=64,
                                  relative_attention=True, position_buckets=16, pos_att_type=["p2c", "c2p"],
                                  position_biased_input=False, type_vocab_size=0, norm_rel_ebd="layer_norm",
                                  share_att_key=True, pooler_hidden_size=32, pooler_dropout=0.0)
    if family == "mpnet":
        return tf.MPNetConfig(**common, **_SIZES, **_NO_DROPOUT, max_position_embeddings=66)
    if family == "modernbert":  # layers alternate full and sliding-window attention, as in the real ones
        return tf.ModernBertConfig(**common, **_SIZES, max_position_embeddings=64, global_attn_every_n_layers=2,
                                   local_attention=8, attention_dropout=0.0, mlp_dropout=0.0, embedding_dropout=0.0,
                                   classifier_dropout=0.0, bos_token_id=0, eos_token_id=2, cls_token_id=0,
                                   sep_token_id=2)
    raise ValueError(f"no tiny config for family {family!r}; known: {', '.join(TINY_FAMILIES)}")


def tiny_tokenizer(family: str):
    """A tokenizer of `family`'s kind over WORDS (its special tokens first, as the family numbers them)."""
    import transformers as tf

    if family in ("bert", "distilbert", "electra"):
        return _wordpiece(BERT_SPECIALS, tf.BertTokenizerFast)
    if family in ("roberta", "modernbert"):
        return _byte_bpe()
    if family == "xlm-roberta":
        return _unigram(["<s>", "<pad>", "</s>", "<unk>", "<mask>"], tf.XLMRobertaTokenizer)
    if family == "deberta-v2":
        return _unigram(["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"], tf.DebertaV2Tokenizer)
    if family == "mpnet":
        return _wordpiece(["<s>", "<pad>", "</s>", "[UNK]", "<mask>"], tf.MPNetTokenizer)
    raise ValueError(f"no tiny tokenizer for family {family!r}; known: {', '.join(TINY_FAMILIES)}")


# one tiny teacher per family (XLM-RoBERTa: the RoBERTa family with a Unigram tokenizer)
TINY_FAMILIES = ("bert", "roberta", "xlm-roberta", "distilbert", "electra", "deberta-v2", "mpnet", "modernbert")


def write_vocab(folder) -> list[str]:
    vocab = BERT_SPECIALS + WORDS
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return vocab


def make_teacher_dir(folder, *, task_model: bool = True, seed: int = 0, num_labels: int = 2, family: str = "bert"):
    """A tiny classifier (or bare encoder) of `family` with a tokenizer of its kind, saved like a hub model.

    A two-label classifier is trained (about a second) on `make_sentences`, so that it solves the
    generated task the way a real teacher solves its own: well above the majority class.
    """
    from transformers import AutoModel, AutoModelForSequenceClassification

    from .engine.quiet import quiet_third_party

    quiet_third_party()
    folder.mkdir(parents=True, exist_ok=True)
    if family == "bert":
        write_vocab(folder)
    tokenizer = tiny_tokenizer(family)
    tokenizer.save_pretrained(folder)
    torch.manual_seed(seed)
    cfg = tiny_family(family, len(tokenizer), num_labels, pad_token_id=tokenizer.pad_token_id)
    model = AutoModelForSequenceClassification.from_config(cfg) if task_model else AutoModel.from_config(cfg)
    key = (family, seed, num_labels)
    if task_model and num_labels == 2:
        if key not in _TRAINED:
            _train_tiny_(model, tokenizer, seed)
            _TRAINED[key] = {k: v.clone() for k, v in model.state_dict().items()}
        model.load_state_dict(_TRAINED[key])
    model.save_pretrained(folder)
    return folder


def _train_tiny_(model, tokenizer, seed: int, steps: int = 100) -> None:
    """Fit a tiny classifier to the generated task (sentences of seeds the task files do not use)."""
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        texts, labels = make_sentences(16, seed=1000 + 100 * seed + step)
        batch = tokenizer(texts, padding=True, return_tensors="pt", return_token_type_ids=False)
        loss = model(**batch, labels=torch.tensor(labels)).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()


def make_sentences(n: int, seed: int, positive_share: float = 0.5) -> tuple[list[str], list[int]]:
    """Sentences of filler words around one sentiment word; the label is 1 when that word is positive."""
    r = np.random.default_rng(seed)
    texts, labels = [], []
    for _ in range(n):
        label = int(r.random() < positive_share)
        words = list(r.choice(FILLER, size=int(r.integers(2, 8))))
        words.insert(int(r.integers(len(words) + 1)), str(r.choice(POSITIVE if label else NEGATIVE)))
        texts.append(" ".join(words))
        labels.append(label)
    return texts, labels


def write_task(folder, n_train: int = 160, n_dev: int = 48, fmt: str = "tsv", string_labels: bool = False,
               positive_share: float = 0.5):
    """Generated train and dev files (the dev file is the test split); `positive_share` of rows label 1."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, n, seed in (("train", n_train, 1), ("dev", n_dev, 2)):
        texts, labels = make_sentences(n, seed, positive_share)
        labs = [("positive" if y else "negative") for y in labels] if string_labels else labels
        path = folder / f"{split}.{fmt}"
        if fmt in ("tsv", "csv"):
            sep = "\t" if fmt == "tsv" else ","
            path.write_text(f"sentence{sep}label\n" + "".join(f"{t}{sep}{y}\n" for t, y in zip(texts, labs)))
        elif fmt == "jsonl":
            import json

            path.write_text("".join(json.dumps({"sentence": t, "label": y}) + "\n" for t, y in zip(texts, labs)))
        elif fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.table({"sentence": texts, "label": labs}), path)
        paths[split] = path
    return paths


def make_scored_sentence(r) -> tuple[str, float]:
    """A sentence of filler words around one to three sentiment words; its score is 5 times the share of them
    that are positive (0 to 5, as STS-B's)."""
    k = int(r.integers(1, 4))
    positive = r.random(k) < 0.5
    words = list(r.choice(FILLER, size=int(r.integers(2, 6))))
    for p in positive:
        words.insert(int(r.integers(len(words) + 1)), str(r.choice(POSITIVE if p else NEGATIVE)))
    return " ".join(words), float(5 * positive.mean())


def write_regression_task(folder, n_train: int = 160, n_dev: int = 48) -> dict:
    """Generated regression files (header sentence, score): the score follows the sentiment words."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, n, seed in (("train", n_train, 1), ("dev", n_dev, 2)):
        r = np.random.default_rng(seed)
        rows = [make_scored_sentence(r) for _ in range(n)]
        path = folder / f"{split}.tsv"
        path.write_text("sentence\tscore\n" + "".join(f"{t}\t{y:.2f}\n" for t, y in rows))
        paths[split] = path
    return paths


def write_pair_task(folder, n_train: int = 160, n_dev: int = 48) -> dict:
    """Generated sentence pairs (header sentence1, sentence2, score): the score is 5 minus the gap of the two
    sentences' sentiment scores, so pairs of like sentiment are similar."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, n, seed in (("train", n_train, 1), ("dev", n_dev, 2)):
        r = np.random.default_rng(seed)
        lines = []
        for _ in range(n):
            (a, x), (b, y) = make_scored_sentence(r), make_scored_sentence(r)
            lines.append(f"{a}\t{b}\t{5 - abs(x - y):.2f}\n")
        path = folder / f"{split}.tsv"
        path.write_text("sentence1\tsentence2\tscore\n" + "".join(lines))
        paths[split] = path
    return paths


ENTITY_TAGS = ("O", "B-POS", "I-POS", "B-NEG", "I-NEG")


def make_tagged_sentence(r) -> tuple[list[str], list[str]]:
    """Filler words with one or two entities: a run of one or two positive (POS) or negative (NEG) words."""
    words = [str(w) for w in r.choice(FILLER, size=int(r.integers(2, 6)))]
    tags = ["O"] * len(words)
    for _ in range(int(r.integers(1, 3))):
        kind = "POS" if r.random() < 0.5 else "NEG"
        run = [str(w) for w in r.choice(POSITIVE if kind == "POS" else NEGATIVE, size=int(r.integers(1, 3)))]
        at = int(r.integers(len(words) + 1))
        while 0 < at < len(words) and tags[at] != "O" and tags[at].startswith("I-"):
            at += 1  # never inside another entity
        words[at:at] = run
        tags[at:at] = [f"B-{kind}"] + [f"I-{kind}"] * (len(run) - 1)
    return words, tags


def write_token_task(folder, n_train: int = 160, n_dev: int = 48, n_test: int = 48) -> dict:
    """Generated CoNLL files (`word POS tag`, a blank line between sentences, a -DOCSTART- line first)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, n, seed in (("train", n_train, 1), ("dev", n_dev, 2), ("test", n_test, 3)):
        r = np.random.default_rng(seed)
        blocks = ["-DOCSTART- -X- O\n"]
        for _ in range(n):
            words, tags = make_tagged_sentence(r)
            blocks.append("".join(f"{w} NN {t}\n" for w, t in zip(words, tags)))
        path = folder / f"{split}.txt"
        path.write_text("\n".join(blocks))
        paths[split] = path
    return paths


def write_experiment(folder, teacher_dir, task_paths, **extra):
    import yaml

    exp = {
        "name": "tiny",
        "task": {"train": str(task_paths["train"]), "dev": str(task_paths["dev"]), "max_length": 16,
                 "validation_size": 0.25},
        "teacher": {"source": str(teacher_dir), "finetune": {"epochs": 1, "batch_size": 16}},
        "measure": {"threads": 1, "warmup": 1, "repeats": 2, "seq_len": 16},
        "cache_dir": str(folder / "cache"),
    }
    for k, v in extra.items():
        exp[k] = {**exp[k], **v} if isinstance(v, dict) and isinstance(exp.get(k), dict) else v
    path = folder / "experiment.yaml"
    path.write_text(yaml.safe_dump(exp))
    return path


# the keys metrics.json holds (final_loss and train_device: after training; teacher_score and retention: with a teacher
# above 0; test_* and metric: since test rows were split from validation rows)
STORED_METRIC_KEYS = frozenset({
    "accuracy", "f1", "mcc", "test_accuracy", "test_f1", "test_mcc", "metric", "latency_ms_b1", "latency_ms_b32",
    "bytes", "weight_bytes", "params", "sparsity", "layers", "heads", "ffn", "vocab", "bits", "embedding_bits",
    "runtime", "fast_kernel", "runtime_note", "seq_len", "threads", "train_seconds", "train_steps", "final_loss",
    "teacher_score", "retention", "reference_ms_b1", "latency_ratio_b1", "train_device",
})


def sample_metrics(**changes):
    """A plausible measured record (a small int8 student) for tests that need one; fields can be changed, and
    scores by their stored names (accuracy=0.9, test_mcc=0.5)."""
    from .engine.metrics import Metrics

    values = dict(
        validation={"accuracy": 0.875, "f1": 0.87, "mcc": 0.75}, test={"accuracy": 0.86, "f1": 0.855, "mcc": 0.72},
        metric="accuracy",
        latency_ms={1: 1.5, 32: 12.25}, bytes=250_000, weight_bytes=240_000,
        params=200_000, sparsity=0.0, layers=2, heads=8, ffn=256, vocab=120, bits=8, embedding_bits=8,
        runtime="torch-int8-dynamic", fast_kernel=True, runtime_note="fbgemm int8 kernels", seq_len=64, threads=2,
        train_seconds=3.5, train_steps=40, final_loss=0.31, train_device="cpu", teacher_score=0.9, retention=0.875 / 0.9,
        reference_ms_b1=12.0, latency_ratio_b1=0.125,
    )
    scores = {k: v for k, v in changes.items() if k in values["validation"]}  # accuracy=0.9: a validation score
    tested = {k[5:]: v for k, v in changes.items() if k.startswith("test_") and k[5:] in values["test"]}
    values.update({k: v for k, v in changes.items() if k not in scores and k[5:] not in tested})
    values["validation"] = {**values["validation"], **scores}
    values["test"] = {**values["test"], **tested}
    return Metrics(**values)
