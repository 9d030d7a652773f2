#!/usr/bin/env bash
# One GPU session's checks and timings, most important first, each step capped so a slow one leaves time for the
# rest. Needs PyTorch with CUDA, transformers >= 5.23, safetensors and (for the official rows) einops; nothing is
# installed (carry a newer transformers wheel where the machine's is older).
#
#   bash benchmarks/gpu.sh /path/to/official/MIRAGE OUTPUT_FOLDER
#
# 1. device_check.py: outputs and gradients on the GPU (fp32, TF32, bf16; ours and official) against float64.
# 2. bf16 autocast: inference at 512² and 1024² and a tiled 3840×2160 photo; training steps at batch 1 on 512² and
#    1024²; Tiny and Small; side by side with the official code (same weights).
# 3. bf16 training at the paper's patch setting (batch 8, 128²).
# 4. fp32 (PyTorch's defaults, so cuDNN convolutions in TF32) for the same inference and batch-8 training.
# 5. bf16 inference with cuDNN's autotuner on (`torch.backends.cudnn.benchmark`).
# 6. the `mirage restore` command on the bundled examples on the GPU, and a profile of the Tiny forward pass.
# 7. bf16 inference under torch.compile (one compilation per variant and size, timed as the first call).
set -uo pipefail
official=${1:?path to a checkout of the official repository}
out=${2:?output folder}
mkdir -p "$out"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/machine.txt"
python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)' \
    | tee -a "$out/machine.txt"

timeout 120 python3 benchmarks/device_check.py --device cuda --official "$official" 2>&1 | tee "$out/check.log"

bench=(python3 benchmarks/benchmark.py --device cuda --official "$official" --variants tiny small --repeats 20 --train-repeats 10)
timeout 170 "${bench[@]}" --dtype bf16 --sizes 512 1024 --tiled 2160x3840 --train-variants tiny small --train-sizes 512 1024 \
    --train-batch 1 --train-checkpointing all --output "$out/cuda-bf16.json" 2>&1 | grep -v '^round'
timeout 70 "${bench[@]}" --dtype bf16 --sizes --tiled '' --train-variants tiny small --train-sizes 128 --train-batch 8 \
    --train-checkpointing all --output "$out/cuda-bf16-train128.json" 2>&1 | grep -v '^round'
timeout 100 "${bench[@]}" --dtype fp32 --sizes 512 1024 --tiled '' --train-variants tiny small --train-sizes 128 --train-batch 8 \
    --train-checkpointing --output "$out/cuda-fp32.json" 2>&1 | grep -v '^round'
timeout 50 "${bench[@]}" --dtype bf16 --sizes 512 1024 --tiled '' --no-train --cudnn-benchmark \
    --output "$out/cuda-bf16-cudnn-benchmark.json" 2>&1 | grep -v '^round'

restored=$(mktemp -d)
timeout 40 bash -c "time python3 -m mirage_hf.cli restore examples --output $restored --device cuda" 2>&1 | tail -5
ls -l "$restored"
timeout 40 python3 benchmarks/profile_model.py --device cuda --dtype bf16 --variant tiny --size 1024 --rows 20 2>&1 \
    | tee "$out/profile.txt" | tail -30
timeout 240 "${bench[@]}" --dtype bf16 --sizes 1024 512 --tiled '' --no-train --compile \
    --output "$out/cuda-bf16-compile.json" 2>&1 | grep -v '^round'
