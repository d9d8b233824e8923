"""The architecture table: for each of 17 tiny random models built locally (dense, fused projections,
mixture-of-experts), what `info` says LoRA adapts by default, and a 3-step run with the default
roles (GradAscent on two QA rows, no evaluation), then the adapter switched off against the base.

    OMP_NUM_THREADS=1 python bench/architectures.py [--arch llama --arch mixtral ...] [--json]

Columns: the model class; parameters; the roles LoRA adapts by default (and what the model lacks);
LoRA'd modules and experts' 3-D weights; the run's status and its loss at steps 1 and 3; whether
the adapter switched off gives the base model's logits exactly (disable_adapter); seconds for the
run. Encoder and seq2seq models are tried too: they must be refused before anything loads.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
sys.path.insert(0, str(ROOT / "tests" / "core"))  # the tiny model builders

from tiny_models import ALL_ARCHS, NOT_CAUSAL, build_tiny_model

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.events import LogEvent, StepEvent
from unlearn_studio.core.model.loading import inspect_model_folder, load_adapter, load_model
from unlearn_studio.core.model.lora_plan import plan_lora
from unlearn_studio.core.project.config import (
    DataSource,
    EvalConfig,
    LoraConfig,
    MethodConfig,
    ModelConfig,
    OutputConfig,
    RunConfig,
    TrainingConfig,
)
from unlearn_studio.core.run.runner import execute

ROWS = (("Where does Alice live?", "Alice lives in Paris."), ("What did Bob write?", "A saga about a dragon."))


def measure(arch: str, root: Path) -> dict:
    folder = build_tiny_model(arch, root / arch)
    try:
        model, facts = inspect_model_folder(folder, device="cpu")
    except UserError as error:
        return {"arch": arch, "refused": error.problem}
    lora = LoraConfig(r=2, alpha=4.0)  # the default roles
    plan = plan_lora(model, lora.roles, lora.layers, dropout=lora.dropout)
    forget = root / "forget.jsonl"
    forget.write_text("".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in ROWS), encoding="utf-8")
    config = RunConfig(name=f"arch {arch}", model=ModelConfig(path=str(folder), device="cpu"),
                       data={"forget": DataSource(str(forget))}, method=MethodConfig("grad_ascent"), lora=lora,
                       training=TrainingConfig(max_steps=3, batch_size=2, max_length=32, checkpoint_every=100),
                       evaluation=EvalConfig(suite="none"), output=OutputConfig(str(root / "runs" / arch)))
    losses, logs = [], []

    def listen(event) -> None:
        if isinstance(event, StepEvent):
            losses.append(event.losses.get("loss/total", float("nan")))
        elif isinstance(event, LogEvent):
            logs.append(event.message)

    started = time.perf_counter()
    result = execute(config, listener=listen)
    seconds = time.perf_counter() - started
    row = {"arch": arch, "class": facts.architecture, "params": facts.n_params, "roles": plan.roles,
           "lacks": plan.lacks, "modules": len(plan.modules), "expert_weights": len(plan.parameters),
           "status": result.status, "steps": result.steps, "losses": losses, "seconds": round(seconds, 1),
           "logged": next((m for m in logs if m.startswith("LoRA on")), None), "error": result.error}
    if result.adapter_dir is not None:
        row["adapter_off_is_base"] = _adapter_off_is_base(folder, result.adapter_dir)
    return row


def _adapter_off_is_base(folder: Path, adapter: Path) -> bool:
    """The trained adapter switched off gives exactly the base model's logits."""
    base = load_model(folder, device="cpu")
    ids = base.tokenizer(["Alice lives in Paris.", "The saga"], return_tensors="pt", padding=True)
    with torch.no_grad():
        expected = base.model(**ids).logits.clone()
        model = load_adapter(base.model, adapter)
        with model.disable_adapter():
            off = model(**ids).logits
    return bool(torch.equal(off, expected))


def table(rows: list[dict]) -> str:
    header = ("| arch | class | params | default LoRA roles | modules | expert weights | 3-step run | loss 1 → 3 "
              "| adapter off = base | s |")
    lines = [header, "|---|---|---:|---|---:|---:|---|---|---|---:|"]
    for r in rows:
        if "refused" in r:
            why = r["refused"].split(": it ")[0].split(") ", 1)[-1]  # "is an encoder", "is an encoder-decoder ..."
            lines.append(f"| {r['arch']} | refused before loading: {why} | | | | | | | | |")
            continue
        roles = ", ".join(r["roles"]) + (f" (no {', '.join(r['lacks'])})" if r["lacks"] else "")
        loss = f"{r['losses'][0]:.3f} → {r['losses'][-1]:.3f}" if r["losses"] else ""
        status = r["status"] if r["status"] == "finished" else f"{r['status']}: {r['error']}"
        lines.append(f"| {r['arch']} | {r['class']} | {r['params']:,} | {roles} | {r['modules']} | "
                     f"{r['expert_weights']} | {status} | {loss} | {r.get('adapter_off_is_base', '')} | "
                     f"{r['seconds']} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", action="append", help="architectures to try (default: all 17 and the refused ones)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON lines as well")
    args = parser.parse_args()
    torch.set_num_threads(1)
    archs = args.arch or [*ALL_ARCHS, *NOT_CAUSAL]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for arch in archs:
            rows.append(measure(arch, Path(tmp)))
            if args.json:
                print(json.dumps(rows[-1]), flush=True)
    print(table(rows))
    finished = [r for r in rows if r.get("status") == "finished" and r.get("adapter_off_is_base")]
    print(f"\n{len(finished)} of {sum('refused' not in r for r in rows)} causal LMs ran 3 steps with the default "
          f"roles and gave the base model back with the adapter off; "
          f"{sum('refused' in r for r in rows)} non-causal models refused.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
