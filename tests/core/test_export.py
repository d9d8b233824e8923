"""Export: a PEFT adapter folder that loads with PeftModel.from_pretrained and reproduces the
reference answer, a model card, a merged model beside it, and refusals that write nothing."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from peft import PeftModel
from trained_run import add_run, trained_run
from transformers import AutoModelForCausalLM, AutoTokenizer

from unlearn_studio.core.cli.main import main
from unlearn_studio.core.errors import UserError
from unlearn_studio.core.evaluation.evaluate import evaluate
from unlearn_studio.core.evaluation.suite import EvalSuite
from unlearn_studio.core.evaluation.verdicts import judge
from unlearn_studio.core.model.generate import generate
from unlearn_studio.core.model.loading import load_adapter, load_model
from unlearn_studio.core.paths import demo_data_dir, demo_model_dir
from unlearn_studio.core.project.store import Store
from unlearn_studio.core.results.export import REFERENCE_TOKENS, export_run, plan_export

pytestmark = pytest.mark.slow  # trains a run on the demo
# Interpreters (os.pathsep-separated) of environments with transformers 4.x and an older peft, in which
# tests/compat/check_export.py loads the export; CI sets it, see that script for how to make one.
COMPAT_PYTHONS = [p for p in os.environ.get("UNLEARN_STUDIO_COMPAT_PYTHON", "").split(os.pathsep) if p]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return trained_run(tmp_path_factory)


@pytest.fixture(scope="module")
def store(run):
    with Store.open(run.store_path) as opened:
        yield opened


@pytest.fixture(scope="module")
def exported(run, store, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "adapter"
    messages = []
    return export_run(store, run.run_id, out, merged=True, progress=messages.append), messages


def test_the_folder_loads_with_peft_and_reproduces_the_reference(exported):
    result, messages = exported
    out = result.out_dir
    for name in ("adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "tokenizer_config.json",
                 "README.md", "config.toml", "export.json"):
        assert (out / name).is_file(), name
    assert [c.name for c in result.checks] == ["adapter is non-zero", "reloaded folder reproduces the reference",
                                               "tokenizer loads in transformers 4.46+ and 5.x",
                                               "merged model reproduces the reference"]
    assert result.ok, result.checks
    assert messages[-1] == "Done."

    base = AutoModelForCausalLM.from_pretrained(demo_model_dir())
    model = PeftModel.from_pretrained(base, out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    again = generate(model, tokenizer, [result.reference_prompt], max_new_tokens=REFERENCE_TOKENS)[0]
    assert again == result.reference_generation
    with model.disable_adapter():
        original = generate(model, tokenizer, [result.reference_prompt], max_new_tokens=REFERENCE_TOKENS)[0]
    assert original != result.reference_generation  # the check compared an answer the adapter changed

    merged = AutoModelForCausalLM.from_pretrained(result.merged_dir)
    assert generate(merged, tokenizer, [result.reference_prompt], max_new_tokens=REFERENCE_TOKENS)[0] == again
    assert not (result.merged_dir / "adapter_config.json").exists()


def test_the_card_and_report_say_what_was_made_and_how(run, exported):
    result, _ = exported
    card = (result.out_dir / "README.md").read_text(encoding="utf-8")
    front, body = card.split("---\n")[1], card.split("---\n", 2)[2]
    metadata = yaml.safe_load(front)
    assert metadata["library_name"] == "peft" and metadata["pipeline_tag"] == "text-generation"
    # The demo model is not on the Hub: no base_model in the metadata, no path of this computer anywhere.
    assert "base_model" not in metadata
    assert json.loads((result.out_dir / "adapter_config.json").read_text())["base_model_name_or_path"] is None
    assert str(demo_model_dir()) not in front
    assert "names no `base_model`" in body and "PeftModel.from_pretrained(base" in body
    assert metadata["license"] == "apache-2.0"  # the demo model is part of Unlearn Studio
    data = {entry["role"]: entry for entry in metadata["unlearn_studio"]["data"]}
    assert data["forget"]["file"] == "forget10.jsonl" and metadata["unlearn_studio"]["run_id"] == run.run_id
    assert "GradDiff" in body and "arXiv 2203.12817" in body and run.run_id in body
    forget_sha = hashlib.sha256((demo_data_dir() / "forget10.jsonl").read_bytes()).hexdigest()
    assert forget_sha in body and data["forget"]["sha256"] == forget_sha
    assert result.reference_generation in body and "| peft | 0." in body
    assert run.config.to_toml().strip() in body
    assert "No before/after evaluation was recorded" in body  # the run's suite was "none"

    report = json.loads((result.out_dir / "export.json").read_text(encoding="utf-8"))
    assert report["reference"] == {"prompt": result.reference_prompt, "generation": result.reference_generation,
                                   "decoding": "greedy", "max_new_tokens": REFERENCE_TOKENS}
    assert all(check["passed"] for check in report["checks"])
    assert {d["role"]: d["sha256"] for d in report["data"]}["forget"] == forget_sha


def test_the_card_shows_before_and_after_metrics_when_the_run_has_them(run, store, tmp_path):
    """A real (small) evaluation of the run, before (adapter off) and after, recorded as a run records it."""
    evaluated = add_run(store, run.config, tmp_path, adapter_from=run.adapter_dir)
    config = run.config
    suite = EvalSuite.for_config(config)
    loaded = load_model(config.resolve_model_path(), device="cpu")
    model = load_adapter(loaded.model, run.adapter_dir)
    with model.disable_adapter():
        before = evaluate(model, loaded.tokenizer, suite, tier="fast", out_dir=tmp_path / "before",
                          cache_dir=tmp_path / "cache")
    after = evaluate(model, loaded.tokenizer, suite, tier="fast", out_dir=tmp_path / "after", before=before,
                     cache_dir=tmp_path / "cache")
    for phase, result in (("before", before), ("after", after)):
        store.add_evaluation(evaluated, phase, suite.name, result.aggregates, items_path=result.items_path)
    exported = export_run(store, evaluated, tmp_path / "out")
    body = exported.card.split("---\n", 2)[2]
    assert "| metric | before | after | change [95% CI] | target | verdict |" in body
    metadata = yaml.safe_load(exported.card.split("---\n")[1])
    [index] = metadata["model-index"]
    metrics = [m for result in index["results"] for m in result["metrics"]]
    headline = judge(before, after).headline
    assert headline and len(metrics) == 2 * len(headline)
    first = headline[0]
    values = {m["name"]: m["value"] for m in metrics if m["type"] == first.key}
    assert values[f"{first.label} (with this adapter)"] == pytest.approx(first.after, abs=1e-6)
    assert values[f"{first.label} (base model, before unlearning)"] == pytest.approx(first.before, abs=1e-6)
    assert exported.merged_dir is None and not (tmp_path / "out-merged").exists()


def test_bad_input_is_refused_before_anything_is_written(run, store, tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="did not write: notes.txt"):
        plan_export(store, run.run_id, busy, overwrite=True)  # never a folder the app did not write
    with pytest.raises(UserError, match="merged model folder .* did not write"):
        (tmp_path / "new-merged").mkdir()
        (tmp_path / "new-merged" / "x").write_text("x")
        plan_export(store, run.run_id, tmp_path / "new", merged=True)
    failed = add_run(store, run.config, tmp_path, status="failed")
    with pytest.raises(UserError, match="failed, so it has no final adapter"):
        plan_export(store, failed, tmp_path / "a")
    zero = add_run(store, run.config, tmp_path, adapter_from=run.adapter_dir, scale_b=0.0)
    with pytest.raises(UserError, match="all zero"):
        plan_export(store, zero, tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists() and not (tmp_path / "new").exists()


def test_the_command_line_refuses_a_busy_folder_and_an_unknown_run(run, store, tmp_path, capsys):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    assert main(["export", run.run_id[:8], "--store", str(run.store_path), "--out", str(busy)]) == 2
    assert "did not write: notes.txt" in capsys.readouterr().err
    assert (busy / "notes.txt").read_text() == "mine"
    assert main(["export", "nosuchrun", "--store", str(run.store_path), "--out", str(tmp_path / "x")]) == 2
    assert "There is no run nosuchrun" in capsys.readouterr().err


def test_an_earlier_export_is_replaced_only_when_asked(run, store, exported):
    result, _ = exported
    with pytest.raises(UserError, match="earlier export written by Unlearn Studio") as refused:
        plan_export(store, run.run_id, result.out_dir, merged=True)
    assert "--overwrite" in refused.value.fix
    plan = plan_export(store, run.run_id, result.out_dir, merged=True, overwrite=True)
    assert plan.overwrite and plan.out_dir == result.out_dir


def test_the_tokenizer_files_are_the_ones_transformers_4_reads(exported):
    result, _ = exported
    for folder in (result.out_dir, result.merged_dir):
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
        assert config["tokenizer_class"] == "PreTrainedTokenizerFast"  # 4.x has no TokenizersBackend
        assert not isinstance(config.get("extra_special_tokens"), list)  # 4.x reads a mapping there
        assert not {"backend", "is_local", "local_files_only"} & set(config)
        assert config["chat_template"] and not (folder / "chat_template.jinja").exists()  # 4.46 reads it inline
    merged_config = json.loads((result.merged_dir / "config.json").read_text(encoding="utf-8"))
    assert merged_config["rope_theta"] == merged_config["rope_parameters"]["rope_theta"]  # where 4.x reads it
    # transformers 5 loads them as it loaded the demo model's own tokenizer.
    ours, theirs = AutoTokenizer.from_pretrained(result.out_dir), AutoTokenizer.from_pretrained(demo_model_dir())
    text = "### Question: Where was Alia Vorn born?\n### Answer: Quellmarsh"
    assert ours(text)["input_ids"] == theirs(text)["input_ids"]
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    assert ours.apply_chat_template(messages, tokenize=False) == theirs.apply_chat_template(messages, tokenize=False)


def test_export_json_output(run, store, tmp_path, capsys):
    out = tmp_path / "json-export"
    assert main(["export", run.run_id, "--store", str(run.store_path), "--out", str(out), "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["ok"] and result["out_dir"] == str(out) and result["merged_dir"] is None
    assert [c["name"] for c in result["checks"]][:2] == ["adapter is non-zero",
                                                         "reloaded folder reproduces the reference"]
    assert result["report"]["base_model"]["hub_id"] is None and "Writing the adapter folder" in captured.err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    assert main(["export", run.run_id, "--store", str(run.store_path), "--out", str(busy), "--json"]) == 2
    refusal = json.loads(capsys.readouterr().out)
    assert refusal["ok"] is False and "notes.txt" in refusal["error"]["problem"]


@pytest.mark.skipif(not COMPAT_PYTHONS, reason="no UNLEARN_STUDIO_COMPAT_PYTHON environment with transformers 4.x")
@pytest.mark.parametrize("python", COMPAT_PYTHONS or [None])
def test_the_export_loads_in_an_environment_with_transformers_4(python, exported):
    result, _ = exported
    script = Path(__file__).parents[1] / "compat" / "check_export.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    checked = subprocess.run([python, str(script), str(demo_model_dir()), str(result.out_dir)], env=env,
                             capture_output=True, text=True, timeout=600, check=False)
    report = json.loads(checked.stdout)
    assert report["versions"]["transformers"].startswith("4."), report["versions"]
    assert checked.returncode == 0, report
    assert report["generation with the adapter"]["got"] == result.reference_generation
    assert report["merged model"]["matches"] and report["tokenizer"]["class"] == "PreTrainedTokenizerFast"


def test_the_compat_checker_agrees_with_this_environment(exported):
    """The checker's own decoding equals the export's (run here, with transformers 5)."""
    result, _ = exported
    script = Path(__file__).parents[1] / "compat" / "check_export.py"
    checked = subprocess.run([sys.executable, str(script), str(demo_model_dir()), str(result.out_dir)],
                             env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert json.loads(checked.stdout)["generation with the adapter"]["matches"]
