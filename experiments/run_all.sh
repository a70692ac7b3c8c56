#!/usr/bin/env bash
# Regenerate every committed result, one after another (each step resumes if interrupted).
# Run from the repository root with the venv of `bash .ci/setup`.
set -euo pipefail
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
py=.venv/bin/python
$py experiments/engine_sst2.py
$py experiments/search_sst2.py --trials 20 --max-size-mb 10 --min-retention 0.97  # its first 20 trials
$py experiments/export_sst2.py --pick best
$py experiments/sampler_compare.py --trials 10 --seeds 0 1 2
bash experiments/peers/setup_inc.sh            # Intel Neural Compressor peer, in its own .venv-inc
$py experiments/sst2_benchmark.py --space default  # a departure from the protocol (its space is elastic-lowbit): listed as such
$py experiments/reliability.py --kills 6
$py experiments/binary_sst2.py sweep && $py experiments/binary_sst2.py ladder && $py experiments/binary_sst2.py report
$py experiments/elastic_sst2.py               # trains the elastic network once (cached), then parts 2-4
$py experiments/teacher_sweep.py              # the benchmark's teacher, chosen on validation rows (issue 30)
$py experiments/lowbit_elastic.py             # ternary tables and weights in the elastic network
$py experiments/sst2_benchmark.py             # under experiments/results/sst2-benchmark-protocol.md
b=.autocompress-cache/sst2-benchmark-lowbit/out/sst2-benchmark-lowbit   # that run's trials
$py experiments/lowbit_kernels.py --folder $b/trial-0057 $b/trial-0181   # two of its 4-bit cuts
$py experiments/depth2_recovery.py            # recovery steps for 2-layer cuts of its elastic network
$py experiments/bf16_sst2.py
$py experiments/ort_spinning.py --pairs 4
$py experiments/main_command.py run && $py experiments/main_command.py write  # the README's main command, fresh clone
# searches on other tasks, the product's baselines side by side (experiments/task_search.py)
$py experiments/task_search.py experiments/mrpc.yaml --space quick --trials 4 --stem search-mrpc
base=onnxruntime-int8,openvino-int8
$py experiments/task_search.py experiments/stsb.yaml --space quick --trials 3 --stem search-stsb --baselines $base
$py experiments/task_search.py experiments/conll2003.yaml --space quick --trials 3 --stem search-conll2003 --baselines $base
$py experiments/task_search.py experiments/embeddings-stsb.yaml --space quick --trials 3 --stem search-embeddings-stsb-quick --baselines $base
$py experiments/task_search.py experiments/embeddings-stsb.yaml --space embeddings --trials 3 --stem search-embeddings-stsb --baselines $base
# the elastic network's ingredients at equal steps (issue 30), and an untrained low-rank embedding table
$py experiments/elastic_ablation.py
$py experiments/embedding_rank.py
$py experiments/keep_last.py                 # which teacher layers a shallower student keeps
