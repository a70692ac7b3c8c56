"""The `autocompress` command line: parse, build the config, call one library function, render."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from .errors import AutocompressError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="AutoML compression for transformer classifiers.")


@app.callback()
def _root() -> None:
    """AutoML compression for transformer classifiers: distill, prune, quantize, measure."""


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _fmt_bytes(n: float) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def render_metrics(m: dict) -> str:
    rows = [
        ("accuracy", f"{m['accuracy']:.4f}" + (f"  ({m['retention']:.1%} of teacher)" if "retention" in m else "")),
        ("f1 / mcc", f"{m['f1']:.4f} / {m['mcc']:.4f}"),
        ("bytes", f"{m['bytes']:,} ({_fmt_bytes(m['bytes'])})"),
    ]
    rows += [(k.replace("latency_ms_", "latency ").replace("b", "batch ", 1), f"{v:.2f} ms")
             for k, v in m.items() if k.startswith("latency_ms_")]
    rows += [
        ("runtime", f"{m['runtime']} ({m['runtime_note']})"),
        ("shape", f"{m['layers']} layers, {m['heads']} heads, {m['ffn']} FFN neurons, vocab {m['vocab']}"),
        ("parameters", f"{m['params']:,}"),
        ("sparsity", f"{m['sparsity']:.1%}"),
        ("bits", f"{m['bits']} (embeddings {m['embedding_bits']})"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


@app.command()
def compress(
    experiment: Annotated[Path, typer.Argument(help="experiment YAML (task, teacher, measurement)")],
    recipe: Annotated[Path, typer.Option("--recipe", "-r", help="recipe YAML/JSON: the candidate to build")],
    out: Annotated[Path | None, typer.Option(help="folder for the compressed model (default out/<name>-<recipe>)")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="also write the measurements here")] = None,
) -> None:
    """Build one compressed candidate from a recipe, store it, reload it and measure it."""
    from .config import Experiment
    from .recipe import Recipe
    from .session import engine_inputs, run_recipe

    exp = Experiment.from_file(experiment)
    rec = Recipe.from_file(recipe)
    folder = out or Path("out") / f"{exp.name}-{rec.fingerprint()}"
    inputs, teacher = engine_inputs(exp, _log)
    _log(f"compress: building {recipe} into {folder}")
    result = run_recipe(inputs, rec, folder, teacher, str(recipe))
    print(render_metrics(result.metrics))
    print(f"written: {folder}/metrics.json")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result.metrics, indent=2, sort_keys=True) + "\n")
        print(f"written: {json_out}")


def main() -> None:
    """Entry point: library errors become one line on stderr and exit code 2."""
    try:
        app(standalone_mode=False)
    except AutocompressError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as err:  # click usage errors and the like
        import click

        if isinstance(err, click.exceptions.ClickException):
            err.show()
            sys.exit(2)
        if isinstance(err, click.exceptions.Abort):
            sys.exit(1)
        raise


if __name__ == "__main__":
    main()
