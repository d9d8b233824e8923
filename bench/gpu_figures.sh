#!/usr/bin/env bash
# The GPU figures of docs/PERFORMANCE.md in one go, on a machine whose python3 imports the project:
#   bash bench/gpu_figures.sh [OUT_DIR]
# 1. step time and peak memory of every method against SFT on the same rows (bench_step.py and
#    bench_memory.py from one measurement), bf16, a 0.7B-parameter bench model;
# 2. a grid of demo training recipes (bench/demo_recipe.py), many at once on the GPU.
# BENCH_ARGS, RECIPE_GRID and RECIPE_ARGS override the settings (e.g. tiny ones to try the script).
set -u
out=$(realpath -m "${1:-gpu_figures}")
mkdir -p "$out"
cd "$(dirname "$0")"
bench_args=${BENCH_ARGS:---in-process --hidden 2048 --layers 16 --batch 8 --length 256 --dtype bf16 --steps 12}
recipe_grid=${RECIPE_GRID:---grid epochs=6,8,10,12 --grid lr=3e-3,6e-3 --grid qa_pairs_per_fact=2,3 --grid batch_size=32,64 --also epochs=18}
recipe_args=${RECIPE_ARGS:---device cuda --workers 16 --threads 1}
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no GPU"
  python3 -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)"
} > "$out/versions.txt" 2>&1
started=$SECONDS
# shellcheck disable=SC2086  # the argument strings are lists of arguments
timeout "${BENCH_TIMEOUT:-260}" python3 bench_memory.py $bench_args --save "$out/cost.json" > "$out/bench_memory.txt" 2>&1
python3 bench_step.py $bench_args --load "$out/cost.json" > "$out/bench_step.txt" 2>&1
echo "methods: $((SECONDS - started)) s" >> "$out/versions.txt"
started=$SECONDS
timeout "${RECIPE_TIMEOUT:-300}" python3 demo_recipe.py $recipe_args $recipe_grid > "$out/demo_recipes.txt" 2>&1
echo "recipes: $((SECONDS - started)) s" >> "$out/versions.txt"
tail -n 14 "$out/bench_memory.txt" "$out/bench_step.txt"
sed -n '/^recipe /,$p' "$out/demo_recipes.txt"
