"""CoNLL files as task data (`read_conll`) and exact-span entity scores (`entity_spans`, `entity_scores`)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from autocompress.engine.errors import DataError
from autocompress.engine.tasks.conll import read_conll
from autocompress.engine.tasks.entities import entity_scores, entity_spans

CONLL2003 = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "conll2003"


def write(tmp_path: Path, text: str, *, bom: bool = False, name: str = "ner.txt") -> Path:
    path = tmp_path / name
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def error_of(path: Path, **options) -> str:
    with pytest.raises(DataError) as caught:
        read_conll(path, **options)
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("tags, spans", [
    ([], []),
    (["O", "O"], []),
    (["B-PER", "I-PER", "O"], [("PER", 0, 2)]),
    (["O", "O", "B-LOC", "I-LOC"], [("LOC", 2, 4)]),
    (["O", "B-LOC"], [("LOC", 1, 2)]),
    (["B-PER", "B-PER", "I-PER"], [("PER", 0, 1), ("PER", 1, 3)]),
    (["I-ORG"], [("ORG", 0, 1)]),
    (["O", "I-PER", "I-PER", "O"], [("PER", 1, 3)]),
    (["B-PER", "I-LOC", "I-LOC"], [("PER", 0, 1), ("LOC", 1, 3)]),
    (["B-MISC", "O", "I-MISC"], [("MISC", 0, 1), ("MISC", 2, 3)]),
], ids=["empty", "all-O", "B-I", "at-end", "single-at-end", "adjacent-B", "I-first", "I-after-O",
        "I-other-type", "I-after-gap"])
def test_entity_spans(tags, spans):
    assert entity_spans(tags) == spans


@pytest.mark.parametrize("tag", ["PER", "B-", "I-", "X-PER", ""])
def test_entity_spans_refuses_a_tag_that_is_not_iob2(tag):
    with pytest.raises(ValueError, match="neither O nor"):
        entity_spans(["O", tag])


def test_entity_scores_by_hand():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["O", "B-ORG", "I-ORG", "I-ORG"], ["B-MISC", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["O", "B-ORG", "I-ORG", "O"], ["B-MISC", "B-MISC"]]
    # gold: PER 0-2, LOC 3-4 | ORG 1-4 | MISC 0-1                     -> 4 entities
    # pred: PER 0-2, ORG 3-4 | ORG 1-3 | MISC 0-1, MISC 1-2            -> 5 entities
    # right: PER 0-2 and MISC 0-1 (ORG 3-4: wrong type, ORG 1-3: wrong end) -> 2
    # precision 2/5, recall 2/4, F1 2 * 0.4 * 0.5 / 0.9 = 4/9; tokens right 3 + 3 + 1 of 10
    scores = entity_scores(gold, pred)
    assert scores == pytest.approx(
        {"entity_f1": 4 / 9, "entity_precision": 0.4, "entity_recall": 0.5, "token_accuracy": 0.7})


def test_entity_scores_zero_conventions():
    none_predicted = entity_scores([["B-PER", "O"]], [["O", "O"]])
    assert none_predicted == {"entity_f1": 0.0, "entity_precision": 0.0, "entity_recall": 0.0,
                              "token_accuracy": 0.5}
    none_in_gold = entity_scores([["O", "O"]], [["O", "B-LOC"]])
    assert none_in_gold == {"entity_f1": 0.0, "entity_precision": 0.0, "entity_recall": 0.0,
                            "token_accuracy": 0.5}
    assert entity_scores([["O"]], [["O"]])["entity_f1"] == 0.0
    assert entity_scores([], [])["token_accuracy"] == 0.0


def test_entity_scores_perfect_and_lenient():
    gold = [["B-PER", "I-PER", "O"], ["B-LOC"]]
    assert entity_scores(gold, gold) == {"entity_f1": 1.0, "entity_precision": 1.0, "entity_recall": 1.0,
                                         "token_accuracy": 1.0}
    # a predicted I-PER after O starts PER 0-2, the gold entity exactly
    lenient = entity_scores([["B-PER", "I-PER"]], [["I-PER", "I-PER"]])
    assert (lenient["entity_f1"], lenient["token_accuracy"]) == (1.0, 0.5)


@pytest.mark.parametrize("gold, pred", [
    ([["O", "O"]], [["O"]]),
    ([["O"], ["O"]], [["O"]]),
], ids=["sentence-length", "sentence-count"])
def test_entity_scores_refuses_unequal_lengths(gold, pred):
    with pytest.raises(ValueError):
        entity_scores(gold, pred)


def test_entity_scores_match_seqeval_on_random_sequences():
    metrics = pytest.importorskip("seqeval.metrics")
    from seqeval.metrics.sequence_labeling import get_entities

    rng = random.Random(0)
    names = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
    for _ in range(200):
        gold = [[rng.choice(names) for _ in range(rng.randint(1, 12))] for _ in range(rng.randint(1, 8))]
        pred = [[rng.choice(names) for _ in sentence] for sentence in gold]
        for tags in gold:
            theirs = sorted(get_entities(tags), key=lambda entity: entity[1])
            assert entity_spans(tags) == [(kind, start, end + 1) for kind, start, end in theirs]
        scores = entity_scores(gold, pred)
        assert scores["entity_f1"] == pytest.approx(metrics.f1_score(gold, pred))
        assert scores["entity_precision"] == pytest.approx(metrics.precision_score(gold, pred))
        assert scores["entity_recall"] == pytest.approx(metrics.recall_score(gold, pred))
        assert scores["token_accuracy"] == pytest.approx(metrics.accuracy_score(gold, pred))


SAMPLE = """-DOCSTART- -X- O

EU NNP B-ORG
rejects VBZ O


Peter NNP B-PER
Blackburn NNP I-PER
-DOCSTART- -X- O
BRUSSELS NNP B-LOC



"""


def test_read_conll_skips_docstart_and_blank_runs(tmp_path):
    words, tags = read_conll(write(tmp_path, SAMPLE))
    assert words == [["EU", "rejects"], ["Peter", "Blackburn"], ["BRUSSELS"]]
    assert tags == [["B-ORG", "O"], ["B-PER", "I-PER"], ["B-LOC"]]


def test_read_conll_with_bom_crlf_and_no_final_newline(tmp_path):
    text = "Müller NNP B-PER\r\nsagt VVFIN O\r\n\r\nBerlin NE B-LOC"
    words, tags = read_conll(write(tmp_path, text, bom=True))
    assert words == [["Müller", "sagt"], ["Berlin"]]
    assert tags == [["B-PER", "O"], ["B-LOC"]]


def test_read_conll_columns_and_declared_tags(tmp_path):
    path = write(tmp_path, "B-PER Peter NNP\nI-PER Blackburn NNP\n")
    words, tags = read_conll(path, word_column=1, tag_column=0, tags=("O", "B-PER", "I-PER"))
    assert (words, tags) == ([["Peter", "Blackburn"]], [["B-PER", "I-PER"]])
    four = write(tmp_path, "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\n", name="four.txt")
    assert read_conll(four)[1] == [["B-ORG", "O"]]


def test_read_conll_missing_file(tmp_path):
    path = tmp_path / "absent.txt"
    message = error_of(path)
    assert message.startswith(f"{path}: data file not found;")


@pytest.mark.parametrize("text", ["", "\n\n\n", "-DOCSTART- -X- O\n\n"], ids=["empty", "blank", "docstart-only"])
def test_read_conll_without_sentences(tmp_path, text):
    path = write(tmp_path, text)
    assert error_of(path).startswith(f"{path}: no sentences;")


BAD = {
    "columns": ("EU NNP B-ORG\nrejects VBZ O\n\nPeter B-PER\n", 4, ["2 columns", "first token line (1) has 3"], {}),
    "undeclared": ("EU NNP B-ORG\n\nBRUSSELS NNP B-LOC\n", 3, ["'B-LOC'", "B-ORG", "task.labels"],
                   {"tags": ("O", "B-ORG", "I-ORG")}),
    "I-after-O": ("The DT O\nPeter NNP O\nBlackburn NNP I-PER\n", 3, ["'I-PER' follows 'O'", "'B-PER'"], {}),
    "I-after-other-type": ("Peter NNP B-PER\nBlackburn NNP I-LOC\n", 2, ["'I-LOC' follows 'B-PER'"], {}),
    "I-first-in-sentence": ("EU NNP B-ORG\n\n\nCommission NNP I-ORG\n", 4,
                            ["'I-ORG' follows the start of the sentence"], {}),
    "I-after-docstart": ("EU NNP B-ORG\n-DOCSTART- -X- O\nCommission NNP I-ORG\n", 3,
                         ["'I-ORG' follows the start of the sentence"], {}),
    "not-iob2": ("Peter NNP PER\n", 1, ["'PER' is neither O nor B-<type>/I-<type>"], {}),
    "tag-column": ("Peter NNP B-PER\n", 1, ["tag_column 5", "3 columns"], {"tag_column": 5}),
    "same-column": ("Peter B-PER\n", 1, ["both column 1"], {"word_column": 1}),
    "utf-8": ("EU NNP B-ORG\n\n\xff NNP O\n", 3, ["not valid UTF-8"], {}),
}


@pytest.mark.parametrize("case", list(BAD))
def test_read_conll_bad_input_names_file_and_line(tmp_path, case):
    text, line, fragments, options = BAD[case]
    path = tmp_path / "ner.txt"
    # "\xff" stands for an invalid byte; the byte-order mark must not shift the line numbers
    data = text.encode("utf-8").replace("\xff".encode("utf-8"), b"\xff")
    path.write_bytes(b"\xef\xbb\xbf" + data)
    message = error_of(path, **options)
    assert message.startswith(f"{path}:{line}: ")
    for fragment in fragments:
        assert fragment in message


@pytest.mark.integration
@pytest.mark.parametrize("split, sentences, tokens", [
    ("train", 14_039, 203_619), ("dev", 3_250, 51_362), ("test", 3_453, 46_435)])
def test_read_conll2003(split, sentences, tokens):
    path = CONLL2003 / f"{split}.txt"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    words, tags = read_conll(path)
    assert (len(words), sum(map(len, words))) == (sentences, tokens)
    assert [len(w) for w in words] == [len(t) for t in tags]
    assert entity_scores(tags, tags)["entity_f1"] == 1.0
