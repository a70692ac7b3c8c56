#!/usr/bin/env bash
# Peer baseline: Intel Neural Compressor (INC) in its own venv at .venv-inc (repo root).
# Its dependency pins differ from the project's, so it never shares .venv.
# torch==2.13.0 stays on the same pip line: otherwise pip may pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/../.."
py=${PYTHON:-python3}
[ -x .venv-inc/bin/python ] || "$py" -m venv .venv-inc
.venv-inc/bin/python -m pip install -q --upgrade pip
.venv-inc/bin/python -m pip install -q torch==2.13.0 "neural-compressor[pt]" accelerate transformers safetensors
.venv-inc/bin/python - <<'PY'
import importlib.metadata as md
for p in ("torch", "neural-compressor", "neural-compressor-pt", "transformers", "accelerate"):
    try:
        print(p, md.version(p))
    except md.PackageNotFoundError:
        print(p, "(not installed)")
PY
