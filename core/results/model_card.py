"""The model card of an export (README.md): metadata the Hugging Face Hub accepts, and what a reader
needs to load the adapter on the right base model and to trust it.

The base model is named by its Hub id when one is known (the project's model is a Hub id, the folder
is a Hub download in the cache, or its config.json names one in ``_name_or_path``); a path of this
computer is never a ``base_model``, because the Hub refuses it and it means nothing elsewhere. Without
an id the card says how to point the adapter at the base. The metadata is written by huggingface_hub
(``ModelCardData``): the license of the base model when its own card states one, the run's data as
file names and SHA-256 (the ``datasets`` key takes Hub dataset ids only), and the before/after
headline metrics as ``model-index`` results.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from huggingface_hub import EvalResult, ModelCardData
from huggingface_hub.repocard import metadata_load

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.evaluation.result import load_result
from unlearn_studio.core.evaluation.table import markdown_lines
from unlearn_studio.core.evaluation.verdicts import judge
from unlearn_studio.core.results.audit.text import card_section

if TYPE_CHECKING:
    from unlearn_studio.core.results.finished_run import FinishedRun

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
# huggingface_hub's cache: .../models--ORG--NAME/snapshots/REVISION/
CACHE_SNAPSHOT = re.compile(r"models--(?P<org>[^/\\]+?)--(?P<name>[^/\\]+)[/\\]snapshots[/\\]")
DEMO_LICENSE = "apache-2.0"  # the built-in demo model is part of Unlearn Studio
TAGS = ("unlearning", "lora", "peft", "unlearn-studio")


@dataclass
class BaseModel:
    """What the export knows about the base model; plain values (export.json's "base_model")."""

    hub_id: str | None
    name: str  # how the card names it: the Hub id, "the built-in demo model" or the folder's name
    found_by: str  # how the Hub id was found, or why there is none
    local_path: str | None  # the folder the run loaded (None for a model loaded by Hub id)
    license: str | None  # from the base model's own card
    model_type: str | None
    architectures: list[str]
    config_sha256: str | None  # of its config.json: a check that a base found elsewhere is the same


def base_model_of(config) -> BaseModel:
    """The base model of ``config`` (a RunConfig): its Hub id when known, license, identity."""
    source = config.resolve_model_path()
    folder = Path(source)
    if not folder.is_dir():  # loaded by Hub id (the project allows the network)
        return BaseModel(config.model.path, config.model.path, "the project loads it by this Hub id", None, None, None,
                         [], None)
    facts = _read_json(folder / "config.json")
    digest = hashlib.sha256((folder / "config.json").read_bytes()).hexdigest() if facts else None
    model_type, architectures = facts.get("model_type"), list(facts.get("architectures") or [])
    license_ = _license_of(folder)
    if config.model.is_demo:
        return BaseModel(None, "Unlearn Studio's built-in demo model", "it ships with Unlearn Studio and is not on "
                         "the Hub", str(folder), license_ or DEMO_LICENSE, model_type, architectures, digest)
    cached = CACHE_SNAPSHOT.search(str(folder.resolve()))
    if cached:
        hub_id, found_by = f"{cached['org']}/{cached['name']}", "the folder is a Hub download in the huggingface cache"
    elif _is_hub_id(facts.get("_name_or_path")):
        hub_id, found_by = facts["_name_or_path"], "its config.json names it (_name_or_path)"
    else:
        hub_id, found_by = None, "the model is a local folder and nothing in it names a Hub id"
    return BaseModel(hub_id, hub_id or folder.name, found_by, str(folder), license_, model_type, architectures, digest)


def _is_hub_id(text) -> bool:
    return isinstance(text, str) and bool(HUB_ID.fullmatch(text)) and not Path(text).expanduser().exists()


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _license_of(folder: Path) -> str | None:
    """The license the base model's own card (README.md) states, if any."""
    try:
        metadata = metadata_load(folder / "README.md") or {}
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    license_ = metadata.get("license")
    return license_ if isinstance(license_, str) and license_.strip() else None


# ---- metadata --------------------------------------------------------------------------------------


def card_metadata(run: FinishedRun, report: dict, judgement=None) -> ModelCardData:
    """The YAML front matter: base_model (a Hub id, or left out), license, tags, the data and the
    before/after headline metrics as model-index results."""
    config, base = run.config, report["base_model"]
    data = [{"role": entry["role"], "file": Path(entry["resolved"]).name, "sha256": entry["sha256"]}
            for entry in report["data"]]
    results = model_index_results(judgement, config) if judgement is not None else []
    return ModelCardData(
        model_name=config.name, base_model=base["hub_id"], library_name="peft", pipeline_tag="text-generation",
        license=base["license"], tags=[*TAGS, config.method.name], eval_results=results or None,
        unlearn_studio={"run_id": run.run_id, "method": config.method.name, "data": data},
    )


def model_index_results(judgement, config) -> list[EvalResult]:
    """The judgement's headline metrics, after (this adapter) and before (the base model), per set."""
    results = []
    for row in judgement.headline:
        source = config.data.get(row.role)
        file = config.resolve_path(source.path).name if source is not None else row.role
        dataset = {"dataset_type": file, "dataset_name": f"{row.role} set ({file})"}
        for value, who in ((row.after, "with this adapter"), (row.before, "base model, before unlearning")):
            if not math.isnan(value):  # the Hub's schema takes numbers only
                results.append(EvalResult(task_type="text-generation", task_name="Unlearning",
                                          metric_type=row.key, metric_name=f"{row.label} ({who})",
                                          metric_value=round(float(value), 6), **dataset))
    return results


def judgement_of(evaluations: dict[str, dict]):
    """The before/after judgement of the run's recorded evaluations, or (None, why not)."""
    before, after = evaluations.get("before"), evaluations.get("after")
    if not (before and after):
        return None, None
    try:
        return judge(load_result(before["items_path"] or ""), load_result(after["items_path"] or "")), None
    except UserError as exc:
        return None, f"The recorded evaluation cannot be judged: {exc.problem}"


# ---- the card --------------------------------------------------------------------------------------


def model_card(run: FinishedRun, report: dict, evaluations: dict[str, dict], merged_dir: Path | None) -> str:
    """README.md: the metadata, then method, how to load, data, metrics, checks, versions, config."""
    config, base = run.config, report["base_model"]
    judgement, problem = judgement_of(evaluations)
    metadata = card_metadata(run, report, judgement)
    lines = ["---", metadata.to_yaml().rstrip(), "---", "", f"# {config.name}", ""]
    if config.description:
        lines += [config.description, ""]
    named = f"`{base['hub_id']}`" if base["hub_id"] else f"{base['name']} (see How to load)"
    lines += [(f"A LoRA adapter made by Unlearn Studio: run `{run.run_id}` ({run.row['status']}), "
               f"method **{run.method_title}** on the base model {named}."), ""]
    lines += _method_lines(run, report)
    lines += _loading_lines(base, merged_dir)
    lines += _data_lines(report)
    lines += ["## Evaluation before and after unlearning", ""]
    if judgement is not None:
        about = (f"Suite: {evaluations['after']['suite']}. Before = the base model (adapter off), after = with "
                 "this adapter. The headline rows are also in the card's metadata (model-index).")
        lines += [about, "", *markdown_lines(judgement)]
    elif problem:
        lines.append(problem)
    else:
        lines.append("No before/after evaluation was recorded for this run "
                     f"(evaluation.suite = \"{config.evaluation.suite}\").")
    lines.append("")
    lines += card_section(run.row.get("output_dir"))  # the newest robustness audit, if the run had one
    lines += _check_lines(report)
    lines += _version_lines(report)
    lines += ["## Run configuration", "", "The project file of the run (also in `config.toml`):", "",
              "```toml", config.to_toml().rstrip(), "```", ""]
    return "\n".join(lines)


def _method_lines(run: FinishedRun, report: dict) -> list[str]:
    config = run.config
    lines = ["## Method", ""]
    if run.method_summary:
        lines += [run.method_summary, ""]
    if run.method_paper:
        lines += [f"Paper: {run.method_paper}", ""]
    if config.method.params:
        lines += ["Hyperparameters: " + ", ".join(f"`{k} = {v!r}`" for k, v in config.method.params.items()), ""]
    t, lora = config.training, config.lora
    length = f"{t.max_steps} steps" if t.max_steps is not None else f"{t.epochs} epochs"
    targets = report.get("lora_targets") or {}
    adapted = ", ".join(sorted(targets.get("target_modules_suffixes") or [])) or ", ".join(lora.roles)
    experts = sorted(targets.get("target_parameters_suffixes") or [])
    lines += [f"LoRA r={lora.r}, alpha={lora.alpha:g}, dropout={lora.dropout:g} on {adapted}"
              + (f" and the experts' weights {', '.join(experts)}" if experts else "")
              + (f" (layers {lora.layers})" if lora.layers else "")
              + f"; {config.optimizer.name} lr {config.optimizer.lr:g}, {length}, batch {t.batch_size}, "
                f"seed {t.seed}.", ""]
    if experts:
        lines += [("The experts' weights are adapted through PEFT's `target_parameters` (one LoRA per expert), "
                   "which PEFT 0.17 and newer load."), ""]
    return lines


def _loading_lines(base: dict, merged_dir: Path | None) -> list[str]:
    lines = ["## How to load", ""]
    if base["hub_id"]:
        where = json.dumps(base["hub_id"])
        lines += [f"The base model is `{base['hub_id']}` on the Hugging Face Hub ({base['found_by']}).", ""]
    else:
        where = '"path/to/the/base/model"'
        lines += [(f"The base model, {base['name']}, has no Hugging Face Hub id ({base['found_by']}), so this card "
                   "names no `base_model` and `adapter_config.json` has no `base_model_name_or_path`. Load the base "
                   f"model from its folder yourself (model_type `{base['model_type']}`, config.json SHA-256 "
                   f"`{base['config_sha256']}`) and put this adapter on it, as below. If the base model is on the "
                   "Hub under an id, write that id into `base_model_name_or_path` in adapter_config.json and as "
                   "`base_model:` in this card's metadata before sharing the adapter."), ""]
    imports = "from transformers import AutoModelForCausalLM, AutoTokenizer"
    lines += ["```python", "from peft import PeftModel", imports, "", f"base = AutoModelForCausalLM.from_pretrained({where})",
              "model = PeftModel.from_pretrained(base, \"path/to/this/folder\")",
              "tokenizer = AutoTokenizer.from_pretrained(\"path/to/this/folder\")", "```", "",
              "The tokenizer files load with transformers 4.46 and newer, and 5.x.", ""]
    if base["license"]:
        lines += [f"License: `{base['license']}`, the base model's license (the adapter is derived from it).", ""]
    else:
        lines += ["License: none is stated here; the base model's license applies to this adapter.", ""]
    if merged_dir is not None:
        lines += [(f"A merged full model (the adapter folded into the base weights) was written to "
                   f"`{merged_dir.name}/` beside this folder; it loads with `AutoModelForCausalLM` alone."), ""]
    return lines


def _data_lines(report: dict) -> list[str]:
    lines = ["## Data", "", "| role | file | SHA-256 | bytes |", "|---|---|---|---|"]
    for entry in report["data"]:
        digest = f"`{entry['sha256']}`" if entry["sha256"] else "(file not found at export time)"
        size = f"{entry['bytes']:,}" if entry["bytes"] is not None else ""
        lines.append(f"| {entry['role']} | `{entry['path']}` | {digest} | {size} |")
    return [*lines, ""]


def _check_lines(report: dict) -> list[str]:
    ref = report["reference"]
    lines = ["## Checks made at export", ""]
    lines += [f"- {'✓' if c['passed'] else '✗'} {c['name']}: {c['detail']}" for c in report["checks"]]
    lines += ["", (f"Reference generation (greedy, {ref['max_new_tokens']} new tokens at most), made with the "
                   "run's adapter before export and reproduced after reloading this folder:"), "",
              "```text", ref["prompt"], "```", "", "```text", ref["generation"], "```", ""]
    return lines


def _version_lines(report: dict) -> list[str]:
    trained, exported = report["versions"]["trained_with"], report["versions"]["exported_with"]
    lines = ["## Library versions", "", "| library | trained with | exported with |", "|---|---|---|"]
    lines += [f"| {name} | {trained.get(name) or ''} | {exported.get(name) or ''} |" for name in exported]
    return [*lines, ""]
