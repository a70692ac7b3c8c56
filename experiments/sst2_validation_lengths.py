"""SST-2: how many training rows are whole sentences, and their lengths beside the dev (test) sentences.

    python experiments/sst2_validation_lengths.py

Prints the numbers in results/sst2-benchmark.md ("Reading the run"): the whole rows of train.tsv
(rows that are no run of words inside another row), their 25th/50th/75th percentile lengths in words,
the same for dev.tsv, and the median length of all training rows.
"""

import csv
from pathlib import Path

import numpy as np

from autocompress.phrases import whole_rows

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "sst2"


def texts(name: str) -> list[str]:
    with open(DATA / name) as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)  # GLUE files hold unbalanced quotes
        next(reader)
        return [row[0] for row in reader]


def words(rows: list[str]) -> np.ndarray:
    return np.array([len(t.split()) for t in rows])


def main() -> None:
    train, dev = texts("train.tsv"), texts("dev.tsv")
    mask = whole_rows(train)
    whole = [t for t, m in zip(train, mask) if m]
    print(f"whole rows: {len(whole):,} of {len(train):,}")
    print(f"words, 25th/50th/75th percentile: whole rows {np.percentile(words(whole), [25, 50, 75]).tolist()}, "
          f"dev {np.percentile(words(dev), [25, 50, 75]).tolist()}")
    print(f"median words, all training rows: {np.median(words(train)):g}")


if __name__ == "__main__":
    main()
