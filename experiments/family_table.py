"""The README's family x technique x runtime table, generated from the tests that check it.

Runs the family tests (`tests/engine/test_families.py`, `tests/test_families_end_to_end.py`) with
AUTOCOMPRESS_FAMILY_RESULTS set, reads the outcome of every (family, check), and writes the table between
the `<!-- family-table -->` markers of README.md: a row per check, a column per family's tiny model. A cell
says what the test run said ("pass", "FAIL", "skipped", "not run"); what a family cannot take is listed
under the table with its reason. Usage:

    python experiments/family_table.py          # runs the tests (about a minute and a half), then writes
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARK = "<!-- family-table -->"
TESTS = ["tests/engine/test_families.py", "tests/test_families_end_to_end.py"]

# row -> the check (test name and its non-family parameters) that decides it
COLUMNS = {
    **{f"layers, heads, FFN, vocabulary, low-rank, 30 % unstructured, {label}: rebuilt from bytes":
       f"test_every_cut_is_stored_and_rebuilt_from_its_bytes[bits={b}][embedding_bits={e}]"
       for b, e, label in ((8, 8, "int8"), (4, 8, "4-bit (8-bit embeddings)"), (2, 4, "ternary (4-bit embeddings)"),
                           (1, 8, "binary (8-bit embeddings)"))},
    "cut removing nothing = teacher": "test_a_cut_that_removes_nothing_leaves_the_outputs_unchanged",
    "pruned vocabulary = teacher on kept tokens": "test_the_pruned_vocabulary_keeps_the_outputs_of_the_tokens_it_keeps",
    "elastic network: ranked = teacher, sub-network = its copy":
        "test_elastic_ranking_keeps_the_function_and_a_subnet_runs_as_its_extracted_copy",
    "layer-wise distillation (hidden states, attention maps)":
        "test_layer_wise_distillation_trains_a_student_of_every_family",
    "stored cut reloaded in a fresh process = same logits":
        "test_a_stored_cut_reloads_in_a_fresh_process_to_the_same_logits",
    **{f"{label} {bits}-bit": f"test_every_runtime_runs_every_family_and_reopens_its_files[bits={bits}][name={name}]"
       for name, label in (("torch", "torch"), ("onnxruntime", "ONNX Runtime"), ("openvino", "OpenVINO"))
       for bits in (32, 16, 8, 4)},
    "search (2 trials) + export to torch / ONNX / OpenVINO + predict": "test_search_and_export_on_every_runtime",
    "bare encoder fine-tuned into the teacher": "test_a_bare_encoder_of_every_family_is_fine_tuned_into_a_teacher",
}


def run_tests(results: Path) -> int:
    env = {**os.environ, "AUTOCOMPRESS_FAMILY_RESULTS": str(results)}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TESTS], cwd=ROOT,
                          env=env).returncode


def table(results: dict[str, dict[str, str]]) -> str:
    """One row per check, one column per tiny family model; notes for what a family cannot take."""
    from autocompress.engine.families import family_for
    from autocompress.testing import TINY_FAMILIES

    words = {"passed": "pass", "failed": "FAIL", "skipped": "skipped", None: "not run"}
    families = sorted(results, key=lambda f: TINY_FAMILIES.index(f) if f in TINY_FAMILIES else len(TINY_FAMILIES))
    lines = ["| check | " + " | ".join(families) + " |", "|---" * (len(families) + 1) + "|"]
    for column, check in COLUMNS.items():
        lines.append(f"| {column} | " + " | ".join(words[results[f].get(check)] for f in families) + " |")
    notes = {family_for(f).name: f"{family_for(f).name}: `{key}` stays at its default ({why})"
             for f in families for key, why in family_for(f).unsupported.items()}
    out = "\n".join(lines)
    if notes:
        out += "\n\n" + "\n".join(f"- {n}" for n in notes.values())
    return out


def write_readme(text: str) -> None:
    readme = ROOT / "README.md"
    body = readme.read_text()
    start, end = body.index(MARK), body.rindex(MARK)
    readme.write_text(body[: start + len(MARK)] + "\n" + text + "\n" + body[end:])


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        results_file = Path(tmp) / "families.json"
        code = run_tests(results_file)
        results = json.loads(results_file.read_text())
    write_readme(table(results))
    print(f"README.md: family table written from the test run (pytest exit code {code})")


if __name__ == "__main__":
    main()
