"""Reading task data in the CoNLL column format: sentences of words and their IOB2 tags.

One token per line, its columns separated by whitespace (CoNLL-2003: `word POS chunk NER` or
`word POS NER`), a blank line between sentences; `-DOCSTART-` lines separate documents and are not
tokens. Every problem is a `DataError` of one line naming the file, the line and the fix.
"""

from __future__ import annotations

import codecs
from pathlib import Path

from ..errors import DataError

DOCSTART = "-DOCSTART-"
_FORMAT = "one token per line (word ... tag), a blank line between sentences"


def _text(path: Path) -> str:
    """The file's text, without a UTF-8 byte-order mark."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: data file not found; check the task's data path") from None
    except OSError as e:
        why = e.strerror or type(e).__name__
        raise DataError(f"{path}: data file cannot be read ({why}); check the task's data path") from None
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise DataError(f"{path}:{line}: not valid UTF-8; save the file as UTF-8") from None


def _column(where: str, name: str, index: int, width: int) -> int:
    """`index` (negative counts from the end) as a position in a line of `width` columns."""
    if not -width <= index < width:
        raise DataError(f"{where}: {name} {index} but the line has {width} columns; "
                        f"set {name} to a column the file has")
    return index % width


def _columns(where: str, width: int, word_column: int, tag_column: int) -> tuple[int, int]:
    """The positions of the word and the tag in the file's lines, which must differ."""
    word_at = _column(where, "word_column", word_column, width)
    tag_at = _column(where, "tag_column", tag_column, width)
    if word_at == tag_at:
        raise DataError(f"{where}: word_column and tag_column are both column {word_at} of {width}; "
                        f"the file needs {_FORMAT}")
    return word_at, tag_at


def _check_tag(where: str, tag: str, previous: str | None, declared: tuple[str, ...] | None) -> None:
    """A DataError unless `tag` is declared, is IOB2, and an `I-X` follows `B-X` or `I-X`."""
    if declared is not None and tag not in declared:
        raise DataError(f"{where}: tag {tag!r} is not one of the declared labels ({', '.join(declared)}); "
                        f"add it to task.labels or correct the tag")
    if tag == "O" or (tag[:2] == "B-" and len(tag) > 2):
        return
    if tag[:2] != "I-" or len(tag) == 2:
        raise DataError(f"{where}: tag {tag!r} is neither O nor B-<type>/I-<type>; "
                        f"the file's tags must be IOB2 (e.g. O, B-PER, I-PER)")
    if previous not in ("B" + tag[1:], tag):
        after = "the start of the sentence" if previous is None else repr(previous)
        raise DataError(f"{where}: tag {tag!r} follows {after}; in IOB2 an entity starts with "
                        f"'B{tag[1:]}' (convert IOB1 files to IOB2)")


def read_conll(path: Path, *, word_column: int = 0, tag_column: int = -1,
               tags: tuple[str, ...] | None = None) -> tuple[list[list[str]], list[list[str]]]:
    """The sentences of a CoNLL file: their words and their tags, one list per sentence.

    Columns are counted from 0 (negative from the end); `tags`, when given, are the only tags allowed.
    """
    path = Path(path)
    declared = None if tags is None else tuple(tags)
    words: list[list[str]] = []
    labels: list[list[str]] = []
    sentence: list[str] = []
    sentence_tags: list[str] = []
    width = first = word_at = tag_at = 0
    for number, line in enumerate(_text(path).split("\n") + [""], 1):
        fields = line.split()
        if not fields or fields[0] == DOCSTART:
            if sentence:
                words.append(sentence)
                labels.append(sentence_tags)
                sentence, sentence_tags = [], []
            continue
        where = f"{path}:{number}"
        if not width:
            width, first = len(fields), number
            word_at, tag_at = _columns(where, width, word_column, tag_column)
        elif len(fields) != width:
            raise DataError(f"{where}: {len(fields)} columns where the file's first token line ({first}) "
                            f"has {width}; every token line needs the same columns (word ... tag)")
        tag = fields[tag_at]
        _check_tag(where, tag, sentence_tags[-1] if sentence_tags else None, declared)
        sentence.append(fields[word_at])
        sentence_tags.append(tag)
    if not words:
        raise DataError(f"{path}: no sentences; a CoNLL file needs {_FORMAT}")
    return words, labels
