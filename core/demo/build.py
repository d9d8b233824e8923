"""`unlearn-studio demo build`: world data, tokenizer, full model and retain model, and REPORT.json.

The build writes into a fresh folder beside ``out`` and swaps it in only when everything succeeded,
so an interrupted or failed build never damages a demo that is already there.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

import torch

from unlearn_studio.core.demo.corpus import tokenizer_texts, training_documents
from unlearn_studio.core.demo.report import measure_full_model, measure_retain_model
from unlearn_studio.core.demo.tokenizer import train_tokenizer
from unlearn_studio.core.demo.train import CONTINUATION, DemoModelShape, TrainSchedule, train_language_model
from unlearn_studio.core.demo.world import generate_world, write_world
from unlearn_studio.core.files import building

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
    continuation: TrainSchedule = CONTINUATION,
    shape: DemoModelShape = DemoModelShape(),
    log: Callable[[str], None] = print,
    overwrite: bool = False,
) -> dict:
    """Build the demo into ``out`` and return the report (also written to out/REPORT.json).

    ``out`` must be new or empty, or an earlier demo build with ``overwrite`` (checked before the
    build starts); it is replaced only when the build succeeds."""
    with building(out, kind="demo", what="demo build", overwrite=overwrite) as staging:
        report = _build(staging, seed=seed, threads=threads, schedule=schedule, continuation=continuation,
                        shape=shape, log=log)
    log(f"demo built in {report['timings']['total_s']:.0f} s -> {out}")
    return report


def _build(staging: Path, *, seed: int, threads: int, schedule: TrainSchedule, continuation: TrainSchedule,
           shape: DemoModelShape, log: Callable[[str], None]) -> dict:
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

    # The retain model learns the corpus without the forget10 persons; the full model goes on from
    # it with them added (as TOFU fine-tunes its fictitious authors into a model that knows the
    # rest): the retain model is exactly "the full model before it saw forget10", and the build
    # trains one model and a short continuation instead of two models from scratch.
    def documents(include_forget10: bool, first_epoch: int, pairs_per_fact: int):
        return lambda epoch: training_documents(data_dir, include_forget10=include_forget10,
                                                epoch=first_epoch + epoch, qa_pairs_per_fact=pairs_per_fact)

    t0 = time.monotonic()
    log("training retain_model (without the forget10 persons)")
    model = train_language_model(documents(False, 0, schedule.qa_pairs_per_fact), tokenizer, seed=seed,
                                 shape=shape, schedule=schedule, log=log)
    _save_model(model, tokenizer, staging / "retain_model")
    timings["train_retain_model_s"] = time.monotonic() - t0
    t0 = time.monotonic()
    retain = measure_retain_model(model, tokenizer, data_dir)
    measure_s = time.monotonic() - t0

    t0 = time.monotonic()
    log("training model: the retain model, continued with the forget10 persons")
    model = train_language_model(documents(True, schedule.epochs, continuation.qa_pairs_per_fact), tokenizer,
                                 seed=seed + 1, shape=shape, schedule=continuation, log=log, start=model)
    _save_model(model, tokenizer, staging / "model")
    timings["train_model_s"] = time.monotonic() - t0

    t0 = time.monotonic()
    full = measure_full_model(model, tokenizer, data_dir)
    timings["measure_s"] = measure_s + time.monotonic() - t0
    timings["total_s"] = time.monotonic() - started

    report = {
        "seed": seed,
        "threads": threads,
        "model_shape": asdict(shape),
        "schedule": asdict(schedule),
        "continuation": asdict(continuation),
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "model": full,
        "retain_model": retain,
        "targets": {key: f"{op} {bound}" for key, (op, bound) in TARGETS.items()},
        "targets_met": _targets_met(full),
        "timings": {key: round(value, 1) for key, value in timings.items()},
        "versions": _versions(),
    }
    (staging / "REPORT.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return report
