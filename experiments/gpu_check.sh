#!/usr/bin/env bash
# The device check of issue 29, as run on an NVIDIA H200 (experiments/results/gpu-training.md). It expects,
# prepared on the machine that sends it: .whl/ (wheels of pydantic, pydantic-core, annotated-types, typing-inspection,
# typing_extensions, datasets, dill, multiprocess, optuna and its database packages, for Python 3.12), .gpu/sst2/
# (SST-2 train.tsv and dev.tsv) and .gpu/teacher16/ (all-MiniLM-L6-v2 config, tokenizer and weights in bfloat16, to
# fit the 64 MiB a call carries; they are turned back into float32 before use). Run: bash experiments/gpu_check.sh
set -o pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
nvidia-smi -L
python3 -c "import torch, transformers, pydantic; print('torch', torch.__version__, 'transformers', transformers.__version__, 'cuda', torch.cuda.is_available())"
grep -m1 "model name" /proc/cpuinfo; nproc
python3 - <<'PY'
import shutil, torch
from pathlib import Path
from safetensors.torch import load_file, save_file
src, dst = Path(".gpu/teacher16"), Path("/tmp/teacher")
dst.mkdir(exist_ok=True)
for f in src.iterdir():
    if f.name != "model.safetensors":
        shutil.copy(f, dst / f.name)
d = load_file(src / "model.safetensors")
save_file({k: v.float() if v.is_floating_point() else v for k, v in d.items()}, dst / "model.safetensors", metadata={"format": "pt"})
print("teacher: fp32 from the bf16 copy", sum(v.numel() for v in d.values()))
PY
timeout 170 python3 -m pytest -q -m cuda -p no:cacheprovider tests/engine/test_device.py tests/engine/test_torch_cuda.py tests/engine/test_runtimes_deploy.py 2>&1 | tee $OUT/pytest.log | tail -25
timeout 330 python3 experiments/gpu_training.py --devices cuda,cpu --teacher /tmp/teacher --data .gpu/sst2 --work /tmp/gt --json $OUT/gpu-training.json 2>&1 | tee $OUT/gpu-training.log | grep -v "^\s*$" | tail -30
