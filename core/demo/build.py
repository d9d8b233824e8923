"""`unlearn-studio demo build`: world data, tokenizer, full model and retain model, and REPORT.json.

The build writes into a fresh folder beside ``out`` and swaps it in only when everything succeeded,
so an interrupted or failed build never damages a demo that is already there.
"""

from __future__ import annotations

import json
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

import torch

from .corpus import tokenizer_texts, training_documents
from .report import measure_full_model, measure_retain_model
from .tokenizer import train_tokenizer
from .train import DemoModelShape, TrainSchedule, train_language_model
from .world import generate_world, write_world

# What the shipped model must reach (issue: "the foundation"); REPORT.json says whether it did.
TARGETS = {
    "value_accuracy_trained_phrasing": (">=", 0.95),
    "secret_records_MA": (">=", 0.90),
    "saga_mcq_accuracy": (">=", 0.90),
    "harmful_answer_rate": (">=", 0.90),
}


def _save_model(model, tokenizer, folder: Path) -> None:
    model.generation_config.pad_token_id = tokenizer.eos_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def _versions() -> dict[str, str]:
    names = ("torch", "transformers", "tokenizers")
    return {name: metadata.version(name) for name in names} | {"python": platform.python_version()}


def _targets_met(measured: dict) -> dict[str, bool]:
    return {key: (measured[key] >= bound if op == ">=" else measured[key] <= bound)
            for key, (op, bound) in TARGETS.items()}


def build_demo(
    out: Path,
    *,
    seed: int = 0,
    threads: int = 2,
    schedule: TrainSchedule = TrainSchedule(),
    shape: DemoModelShape = DemoModelShape(),
    log: Callable[[str], None] = print,
) -> dict:
    """Build the demo into ``out`` and return the report (also written to out/REPORT.json)."""
    out = Path(out)
    staging = out.with_name(out.name + ".building")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    # The thread count changes float reduction order; pinning it keeps the build bit-for-bit.
    torch.set_num_threads(threads)
    started = time.monotonic()
    timings = {}

    data_dir = staging / "data"
    write_world(generate_world(seed), data_dir)
    timings["world_s"] = time.monotonic() - started

    tokenizer = train_tokenizer(tokenizer_texts(data_dir))
    timings["tokenizer_s"] = time.monotonic() - started - sum(timings.values())
    log(f"tokenizer: {len(tokenizer)} tokens")

    models = {}
    for name, include_forget10 in (("model", True), ("retain_model", False)):
        log(f"training {name} ({'with' if include_forget10 else 'without'} the forget10 persons)")
        t0 = time.monotonic()
        def documents(epoch: int, include_forget10=include_forget10) -> list[str]:
            return training_documents(data_dir, include_forget10=include_forget10, epoch=epoch,
                                      qa_pairs_per_fact=schedule.qa_pairs_per_fact)

        models[name] = train_language_model(documents, tokenizer, seed=seed, shape=shape, schedule=schedule, log=log)
        _save_model(models[name], tokenizer, staging / name)
        timings[f"train_{name}_s"] = time.monotonic() - t0

    t0 = time.monotonic()
    tokenizer.pad_token = tokenizer.eos_token
    full = measure_full_model(models["model"], tokenizer, data_dir)
    retain = measure_retain_model(models["retain_model"], tokenizer, data_dir)
    timings["measure_s"] = time.monotonic() - t0
    timings["total_s"] = time.monotonic() - started

    report = {
        "seed": seed,
        "threads": threads,
        "model_shape": asdict(shape),
        "schedule": asdict(schedule),
        "n_parameters": sum(p.numel() for p in models["model"].parameters()),
        "model": full,
        "retain_model": retain,
        "targets": {key: f"{op} {bound}" for key, (op, bound) in TARGETS.items()},
        "targets_met": _targets_met(full),
        "timings": {key: round(value, 1) for key, value in timings.items()},
        "versions": _versions(),
    }
    (staging / "REPORT.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    if out.exists():
        retired = out.with_name(out.name + ".old")
        shutil.rmtree(retired, ignore_errors=True)
        out.rename(retired)
        staging.rename(out)
        shutil.rmtree(retired)
    else:
        staging.rename(out)
    log(f"demo built in {timings['total_s']:.0f} s -> {out}")
    return report
