#!/usr/bin/env bash
# The GPU figures of docs/PERFORMANCE.md in one go, on a machine whose python3 imports the project
# (with bitsandbytes for part 3); about 9 minutes on one H100/H200-class GPU, each part under a timeout:
#   bash bench/gpu_figures.sh [OUT_DIR]
#   DRY_RUN=1 bash bench/gpu_figures.sh [OUT_DIR]    tiny shapes on the CPU: checks the script, measures nothing
# 1. the engine against a minimal PyTorch + PEFT loop doing the same step (SFT, GradDiff, NPO), paired
#    step by step: a Llama-shaped 1 B model (hidden 2048 x 22 layers, random weights, the demo
#    tokenizer), batch 8 x 512 tokens of real text rows, bf16 weights and autocast: time ratio
#    (target <= 1.1x), tokens/s, model FLOPs utilisation                          [minimal_loop.py]
# 2. every method against SFT on the same rows (each method's own demo rows, batch 8, max length 512),
#    same model: time per trained token, tokens/s, MFU, peak memory ratio (target <= 1.15x)
#                                                                    [bench_memory.py, bench_step.py]
# 3. a Llama-3-8B-shaped model (7 B parameters in its layers) on a 4-bit NF4 base, batch 8 x 512:
#    peak memory against a 24 GB card and tokens/s, without and with gradient checkpointing
#                                                                                [big_model_step.py]
set -u
out=$(realpath -m "${1:-gpu_figures}")
mkdir -p "$out"
cd "$(dirname "$0")"
if [ "${DRY_RUN:-0}" = 1 ]; then
  model="--hidden 128 --layers 2"; rows="--batch 2 --length 64"; device="--device cpu"; dtype="--dtype fp32"
  autocast="--mixed-precision no"; steps=4; big="--device cpu --hidden 128 --layers 2 --intermediate 256 --heads 4 --kv-heads 2 --batch 2 --length 64 --steps 2"
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
else
  model="--hidden 2048 --layers 22"; rows="--batch 8 --length 512"; device="--device cuda"; dtype="--dtype bf16"
  autocast="--mixed-precision bf16"; steps=14; big="--device cuda --batch 8 --length 512 --steps 5"
fi
{ date -u +"%Y-%m-%d %H:%M UTC"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no GPU"
  python3 -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)"
  python3 -c "import bitsandbytes; print('bitsandbytes', bitsandbytes.__version__)" 2>&1 | tail -1
} > "$out/versions.txt" 2>&1
# shellcheck disable=SC2086  # the settings are lists of arguments
{
started=$SECONDS
timeout "${LOOP_TIMEOUT:-150}" python3 minimal_loop.py $model $rows $device $dtype $autocast --long-rows --steps $steps \
  > "$out/minimal_loop.txt" 2> "$out/minimal_loop.log"
echo "part 1 (minimal loop): $((SECONDS - started)) s, exit $?" >> "$out/versions.txt"
started=$SECONDS
timeout "${METHODS_TIMEOUT:-220}" python3 bench_memory.py $model $rows $dtype --steps 10 --in-process --save "$out/cost.json" \
  > "$out/bench_memory.log" 2>&1
code=$?  # cost.json holds every run measured, also when the time limit cut the part short
python3 bench_memory.py $model $rows --load "$out/cost.json" > "$out/bench_memory.txt" 2>> "$out/bench_memory.log"
python3 bench_step.py $model $rows --load "$out/cost.json" > "$out/bench_step.txt" 2>> "$out/bench_memory.log"
echo "part 2 (methods): $((SECONDS - started)) s, exit $code" >> "$out/versions.txt"
started=$SECONDS
timeout "${BIG_TIMEOUT:-170}" python3 big_model_step.py $big > "$out/big_model.txt" 2> "$out/big_model.log"
echo "part 3 (8B-shaped, 4-bit): $((SECONDS - started)) s, exit $?" >> "$out/versions.txt"
}
cat "$out/versions.txt" "$out/minimal_loop.txt" "$out/bench_memory.txt" "$out/bench_step.txt" "$out/big_model.txt"
