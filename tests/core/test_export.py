"""Export: a PEFT adapter folder that loads with PeftModel.from_pretrained and reproduces the
reference answer, a model card, a merged model beside it, and refusals that write nothing."""

from __future__ import annotations

import hashlib
import json

import pytest
from peft import PeftModel
from trained_run import add_run, trained_run  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer

from unlearn_studio.core.cli.main import main  # noqa: E402
from unlearn_studio.core.errors import UserError  # noqa: E402
from unlearn_studio.core.model.generate import generate  # noqa: E402
from unlearn_studio.core.paths import demo_data_dir, demo_model_dir  # noqa: E402
from unlearn_studio.core.project.store import Store  # noqa: E402
from unlearn_studio.core.results.export import REFERENCE_TOKENS, export_run, plan_export  # noqa: E402


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
    assert "library_name: peft" in front
    base = json.loads((result.out_dir / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert f"base_model: {json.dumps(base)}" in front
    assert "GradDiff" in body and "arXiv 2203.12817" in body and run.run_id in body
    forget_sha = hashlib.sha256((demo_data_dir() / "forget10.jsonl").read_bytes()).hexdigest()
    assert forget_sha in body
    assert result.reference_generation in body and "| peft | 0." in body
    assert run.config.to_toml().strip() in body
    assert "No before/after evaluation was recorded" in body  # the run's suite was "none"

    report = json.loads((result.out_dir / "export.json").read_text(encoding="utf-8"))
    assert report["reference"] == {"prompt": result.reference_prompt, "generation": result.reference_generation,
                                   "decoding": "greedy", "max_new_tokens": REFERENCE_TOKENS}
    assert all(check["passed"] for check in report["checks"])
    assert {d["role"]: d["sha256"] for d in report["data"]}["forget"] == forget_sha


def test_the_card_shows_before_and_after_metrics_when_the_run_has_them(run, store, tmp_path):
    evaluated = add_run(store, run.config, tmp_path, adapter_from=run.adapter_dir)
    store.add_evaluation(evaluated, "before", "demo", {"forget/value_acc": 0.9, "retain/value_acc": 0.8})
    store.add_evaluation(evaluated, "after", "demo", {"forget/value_acc": 0.1, "retain/value_acc": 0.79})
    result = export_run(store, evaluated, tmp_path / "out")
    card = result.card
    assert "| forget: value accuracy | 0.9 | 0.1 | should fall | ✓ |" in card
    assert "| retain: value accuracy | 0.8 | 0.79 | should hold | ✓ |" in card
    assert result.merged_dir is None and not (tmp_path / "out-merged").exists()


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
