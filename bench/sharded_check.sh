#!/usr/bin/env bash
# Data parallel, DeepSpeed ZeRO-2 and ZeRO-3, and FSDP 2 against one process, on 2 CUDA GPUs (deepspeed
# installed): each set-up trains the demo GradDiff project for 4 steps with the same global batch,
# and its adapter is compared with the single process's (fp32, so that they agree to float noise).
#   bash bench/sharded_check.sh [WORK_DIR]
#   DEVICE=cpu SETUPS="ddp zero2 zero3" PYTHON=<python with deepspeed> bash bench/sharded_check.sh
#       the same on 2 CPU processes (gloo; accelerate runs FSDP on GPUs only)
# Prints one line per set-up: finished or not, the largest relative difference of an adapter weight
# (within 1e-4 is the same adapter), and whether the checkpoint's adapter was gathered whole.
set -u
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(realpath -m "${1:-$(mktemp -d)}")
python=${PYTHON:-python3}
device=${DEVICE:-cuda}
setups=${SETUPS:-ddp zero2 zero3 fsdp}
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} HF_HOME="$work/hf_home"
mkdir -p "$work"
cd "$repo"
"$python" - "$work" "$device" $setups <<'EOF'
import sys
from pathlib import Path
sys.path.insert(0, "tests/e2e")
from test_accelerate_launch import write_project  # noqa: E402  (the CPU test's project: equal answer lengths)

work, device, setups = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
for name, batch in [("one", 4)] + [(setup, 2) for setup in setups]:
    folder = work / name
    folder.mkdir(exist_ok=True)
    project = write_project(folder, batch)
    text = project.read_text().replace('device = "cpu"', f'device = "{device}"')
    project.write_text(text.replace("[training]\n", "[training]\ncheckpoint_every = 4\n"))
EOF
(cd "$work/one" && "$python" -m unlearn_studio.core.cli run project.toml --store store.db > run.log 2>&1)
for setup in $setups; do
  case $setup in
    ddp) config="$repo/docs/accelerate/multi_gpu.yaml" ;;
    zero2) config="$repo/docs/accelerate/deepspeed_zero2.yaml" ;;
    zero3) config="$repo/docs/accelerate/deepspeed_zero3.yaml" ;;
    fsdp) config="$repo/docs/accelerate/fsdp.yaml" ;;
  esac
  (cd "$work/$setup" && timeout 600 "$python" -m accelerate.commands.launch --config_file "$config" \
     --num_processes 2 --mixed_precision no -m unlearn_studio.core.cli run project.toml --store store.db > run.log 2>&1)
done
"$python" - "$work" $setups <<'EOF'
import json, sys
from pathlib import Path
from safetensors.torch import load_file

work = Path(sys.argv[1])

def adapter(name, checkpoint=False):
    runs = sorted((work / name / "runs").glob("*/adapter/adapter_model.safetensors"))
    if not runs:
        return None, None
    run = runs[0].parent.parent
    state = run / "checkpoints" / "step-000004" / "state.json"
    sharded = json.loads(state.read_text()).get("sharded", False) if state.is_file() else None
    path = run / "checkpoints" / "step-000004" / "adapter" if checkpoint else run / "adapter"
    return load_file(path / "adapter_model.safetensors"), sharded

reference, _ = adapter("one")
for name in sys.argv[2:]:
    got, sharded = adapter(name)
    if reference is None or got is None:
        print(f"{name:<6} did not finish: see {work / name / 'run.log'}")
        continue
    same_keys = got.keys() == reference.keys()
    worst = max(float((got[k] - v).norm() / v.norm()) for k, v in reference.items()) if same_keys else float("inf")
    in_checkpoint, _ = adapter(name, checkpoint=True)
    whole = in_checkpoint is not None and in_checkpoint.keys() == reference.keys() and all(
        float((in_checkpoint[k] - v).norm() / v.norm()) < 1e-4 for k, v in reference.items())
    print(f"{name:<6} finished; {len(got)} weights, largest relative difference {worst:.1e} "
          f"({'same adapter' if worst < 1e-4 else 'DIFFERENT'}); checkpoint adapter {'whole' if whole else 'NOT whole'}"
          f"{', marked sharded' if sharded else ''}")
EOF
