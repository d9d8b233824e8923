"""Export a finished run as a standard PEFT adapter folder, with a model card, and check it.

The folder holds what ``PeftModel.from_pretrained`` needs (adapter_model.safetensors,
adapter_config.json), the tokenizer files, the run's config.toml, export.json (what was checked
and the reference generation) and README.md, a model card whose YAML front matter PEFT and the
Hugging Face Hub understand. A merged full model (the adapter folded into the base weights) can
go into a separate folder beside it.

``plan_export`` reads the store and checks the input (fast; nothing written). ``ExportPlan.run``
does the slow part: it generates a reference answer greedily with the run's adapter, writes the
folder under a temporary name, reloads it with ``PeftModel.from_pretrained`` and checks that the
reload gives the same answer, then renames it into place; a failure leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import platform
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from safetensors import safe_open

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.files import building, check_output_folder
from unlearn_studio.core.model import loading as models
from unlearn_studio.core.model.adapter_files import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    portable_adapter_config,
    read_adapter_config,
)
from unlearn_studio.core.model.generate import generate
from unlearn_studio.core.model.lora_plan import layer_suffixes
from unlearn_studio.core.model.portable import (
    CHAT_TEMPLATE_FILE,
    PORTABLE_CLASSES,
    TOKENIZER_CONFIG,
    make_model_config_portable,
    save_portable_tokenizer,
)
from unlearn_studio.core.project.store_values import file_digest
from unlearn_studio.core.results.compare import build_prompt_sets
from unlearn_studio.core.results.finished_run import FinishedRun
from unlearn_studio.core.results.model_card import BaseModel, base_model_of, model_card

CARD = "README.md"
REPORT = "export.json"
CONFIG = "config.toml"
REFERENCE_TOKENS = 32
LIBRARIES = ("unlearn-studio", "torch", "transformers", "peft", "safetensors", "accelerate", "tokenizers")
FALLBACK_PROMPT = "The"  # when the run has no forget questions to take a reference prompt from


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


@dataclass
class ExportResult:
    out_dir: Path
    merged_dir: Path | None
    checks: list[Check]
    reference_prompt: str
    reference_generation: str
    card: str  # the README.md text
    report: dict = field(default_factory=dict)  # export.json

    @property
    def ok(self) -> bool:
        return all(check.passed for check in self.checks)


@dataclass
class ExportPlan:
    """Everything the export needs, read and checked; ``run`` writes it."""

    run: FinishedRun
    out_dir: Path
    merged_dir: Path | None
    evaluations: dict[str, dict] = field(default_factory=dict)  # phase -> the store's newest row
    lora_check: Check | None = None
    overwrite: bool = False  # replace earlier exports of the app in out_dir / merged_dir

    def run_export(self, progress: Callable[[str], None] | None = None) -> ExportResult:
        return _Export(self, progress or (lambda message: None)).execute()


# ---- planning: every check before anything is written ---------------------------------------------


def merged_dir_for(out_dir: Path) -> Path:
    """Where the merged full model goes: a folder beside the adapter folder, never inside it."""
    return out_dir.with_name(f"{out_dir.name}-merged")


def plan_export(store, run_id: str, out_dir: str | os.PathLike, *, merged: bool = False,
                overwrite: bool = False) -> ExportPlan:
    """Check the run and the destination; UserError for a run without a usable adapter, a
    destination that is a file or holds files (an earlier export of the app's is replaced only with
    ``overwrite``), or an adapter that is all zero."""
    run = FinishedRun.from_store(store, run_id)
    out = Path(out_dir).expanduser().absolute()
    merged_dir = merged_dir_for(out) if merged else None
    for folder, what in ((out, "export"), (merged_dir, "merged model")):
        if folder is not None:
            _check_destination(folder, what, overwrite)
    if run.adapter_dir.resolve() in (out.resolve(), *([merged_dir.resolve()] if merged_dir else [])):
        raise UserError(f"{out} is the run's own adapter folder", "Export into a new, empty folder.")
    lora = check_lora_nonzero(run.adapter_dir)
    if not lora.passed:
        raise UserError(
            f"The adapter of {run.label} is all zero ({lora.detail}): it does not change the model",
            "Train the run for more steps or with a higher learning rate; an all-zero adapter is the "
            "original model, and exporting it would only mislead.",
        )
    evaluations = {}
    for row in store.evaluations(run_id):
        evaluations[row["phase"]] = row  # newest last
    return ExportPlan(run, out, merged_dir, evaluations, lora, overwrite)


def _check_destination(folder: Path, what: str, overwrite: bool) -> None:
    check_output_folder(folder, what=what, overwrite=overwrite)
    parent = folder.parent
    while not parent.exists():
        parent = parent.parent
    if not os.access(parent, os.W_OK):
        raise UserError(f"The {what} folder {folder} cannot be created: {parent} is not writable",
                        "Choose a folder you can write to.")


def check_lora_nonzero(adapter_dir: Path) -> Check:
    """Whether any lora_B weight is non-zero (LoRA starts with B = 0, so all-zero means untrained)."""
    total = nonzero = 0
    largest = 0.0
    with safe_open(str(adapter_dir / "adapter_model.safetensors"), framework="pt") as weights:
        for key in weights.keys():  # noqa: SIM118 - safe_open has keys(), not iteration
            if "lora_B" not in key:
                continue
            tensor = weights.get_tensor(key)
            total += 1
            peak = float(tensor.abs().max()) if tensor.numel() else 0.0
            if peak > 0:
                nonzero += 1
                largest = max(largest, peak)
    if total == 0:
        return Check("adapter is non-zero", False, "no lora_B weights found")
    return Check("adapter is non-zero", nonzero > 0,
                 f"{nonzero} of {total} lora_B matrices non-zero, largest |B| {largest:.3g}")


# ---- the export -----------------------------------------------------------------------------------


class _Export:
    def __init__(self, plan: ExportPlan, progress: Callable[[str], None]):
        self.plan = plan
        self.finished = plan.run
        self.say = progress

    def execute(self) -> ExportResult:
        plan, run, config = self.plan, self.finished, self.finished.config
        self.say(f"Loading the base model {config.model.path}…")
        loaded = models.load_model(config.resolve_model_path(), dtype=config.model.dtype,
                                   device=config.model.device, trust_remote_code=config.model.trust_remote_code,
                                   allow_network=config.model.allow_network)
        sets, _ = build_prompt_sets(config, loaded.tokenizer, limit=1)
        prompt = sets["forget"][0].prompt if "forget" in sets else FALLBACK_PROMPT
        self.say("Generating the reference answer with the run's adapter…")
        peft = models.load_adapter(loaded.model, run.adapter_dir)
        peft.eval()
        reference = generate(peft, loaded.tokenizer, [prompt], max_new_tokens=REFERENCE_TOKENS)[0]
        base = peft.unload()  # the same base weights, the adapter layers taken out

        with contextlib.ExitStack() as folders:
            folder = folders.enter_context(building(plan.out_dir, kind="export", what="export",
                                                    overwrite=plan.overwrite))
            self.say(f"Writing the adapter folder {plan.out_dir}…")
            base_model = base_model_of(config)
            shutil.copy2(run.adapter_dir / WEIGHTS_FILE, folder / WEIGHTS_FILE)
            adapter_config = portable_adapter_config(read_adapter_config(run.adapter_dir), base_model.hub_id)
            (folder / CONFIG_FILE).write_text(json.dumps(adapter_config, indent=2, sort_keys=True) + "\n",
                                              encoding="utf-8")
            tokenizer_changes = save_portable_tokenizer(loaded.tokenizer, folder)
            base_dir = config.base_dir or "the folder the run was started from"
            header = f"# The configuration of run {run.run_id}; relative paths are relative to {base_dir}\n"
            (folder / CONFIG).write_text(header + config.to_toml(), encoding="utf-8")

            self.say("Reloading the exported folder with PeftModel.from_pretrained…")
            tokenizer = models.load_tokenizer(folder)
            reloaded = models.load_adapter(base, folder)
            reloaded.eval()
            again = generate(reloaded, tokenizer, [prompt], max_new_tokens=REFERENCE_TOKENS)[0]
            checks = [plan.lora_check, _same("reloaded folder reproduces the reference", reference, again),
                      portable_tokenizer_check(folder, tokenizer_changes)]

            if plan.merged_dir is not None:
                merged_folder = folders.enter_context(building(plan.merged_dir, kind="merged model",
                                                               overwrite=plan.overwrite))
                self.say(f"Merging the adapter into the base weights and writing {plan.merged_dir}…")
                merged = reloaded.merge_and_unload()
                merged.save_pretrained(str(merged_folder))
                save_portable_tokenizer(tokenizer, merged_folder)
                make_model_config_portable(merged_folder)
                merged_text = generate(merged, tokenizer, [prompt], max_new_tokens=REFERENCE_TOKENS)[0]
                checks.append(_same("merged model reproduces the reference", reference, merged_text))

            report = self.report(prompt, reference, checks, base_model, adapter_config)
            (folder / REPORT).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
            card = model_card(run, report, plan.evaluations, plan.merged_dir)
            (folder / CARD).write_text(card, encoding="utf-8")
        self.say("Done." if all(c.passed for c in checks) else "Done, but a check failed.")
        return ExportResult(plan.out_dir, plan.merged_dir, checks, prompt, reference, card, report)

    def report(self, prompt: str, reference: str, checks: list[Check], base_model: BaseModel,
               adapter_config: dict) -> dict:
        run, config = self.finished, self.finished.config
        return {
            "run_id": run.run_id,
            "exported": datetime.now(UTC).isoformat(timespec="seconds"),
            "method": {"name": config.method.name, "title": run.method_title, "paper": run.method_paper,
                       "params": dict(config.method.params)},
            "base_model": asdict(base_model),
            "lora_targets": {"target_modules_suffixes": layer_suffixes(adapter_config.get("target_modules") or []),
                             "target_parameters_suffixes":
                                 layer_suffixes(adapter_config.get("target_parameters") or [])},
            "status": run.row["status"],
            "merged_dir": str(self.plan.merged_dir) if self.plan.merged_dir else None,
            "reference": {"prompt": prompt, "generation": reference, "decoding": "greedy",
                          "max_new_tokens": REFERENCE_TOKENS},
            "checks": [asdict(check) for check in checks],
            "data": data_hashes(config),
            "evaluation": {phase: {"suite": row["suite"], "aggregates": row["aggregates"]}
                           for phase, row in self.plan.evaluations.items()},
            "versions": {"trained_with": {name: run.row.get(f"{name}_version")
                                          for name in ("torch", "transformers", "peft")},
                         "exported_with": library_versions()},
        }


def _same(name: str, reference: str, got: str) -> Check:
    if got == reference:
        return Check(name, True, f"the same greedy answer: {reference!r}")
    return Check(name, False, f"expected {reference!r}, got {got!r}")


def portable_tokenizer_check(folder: Path, changes: list[str]) -> Check:
    """Whether the tokenizer files are ones transformers 4.46+ reads as well as 5.x (read from the
    files: a class 4.x has, no list under extra_special_tokens, the chat template inline)."""
    config = json.loads((folder / TOKENIZER_CONFIG).read_text(encoding="utf-8"))
    problems = []
    if config.get("tokenizer_class") in PORTABLE_CLASSES:
        problems.append(f"tokenizer_class {config['tokenizer_class']} is unknown to transformers 4.x")
    if isinstance(config.get("extra_special_tokens"), list):
        problems.append("extra_special_tokens is a list (transformers 4.x expects a mapping)")
    if (folder / CHAT_TEMPLATE_FILE).is_file() and "chat_template" not in config:
        problems.append(f"the chat template is only in {CHAT_TEMPLATE_FILE}, which transformers 4.46 does not read")
    done = "; ".join(changes) if changes else "nothing needed changing"
    return Check("tokenizer loads in transformers 4.46+ and 5.x", not problems,
                 "; ".join(problems) if problems else f"tokenizer_config.json made portable ({done})")


def data_hashes(config) -> list[dict]:
    """SHA-256 of every data file the run names (a folder: of its files), as of now."""
    out = []
    for role, source in config.data.items():
        path = config.resolve_path(source.path)
        entry = {"role": role, "path": source.path, "resolved": str(path), "sha256": None, "bytes": None}
        if path.exists():
            entry["sha256"], entry["bytes"] = file_digest(path)
        out.append(entry)
    return out


def library_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def export_run(store, run_id: str, out_dir: str | os.PathLike, *, merged: bool = False,
               progress: Callable[[str], None] | None = None) -> ExportResult:
    """``plan_export`` then ``run_export``: the whole export in one call (CLI, tests)."""
    return plan_export(store, run_id, out_dir, merged=merged).run_export(progress)
