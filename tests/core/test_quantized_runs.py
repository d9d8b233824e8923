"""Every method trains on a 4-bit (NF4) base through the engine, on the CPU (bitsandbytes' CPU path):
the methods that switch the adapter off compare with the quantized base, SKU negates its adapter,
and Ext-Sub's two adapters, trained on the quantized base, combine and load on the unquantized one."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from unlearn_studio.core.events import LogEvent, StepEvent
from unlearn_studio.core.model import memory_savers
from unlearn_studio.core.model.loading import load_adapter, load_model
from unlearn_studio.core.paths import demo_model_dir, projects_dir
from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.core.run import runner
from unlearn_studio.core.run.start import start_run

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not memory_savers.bitsandbytes_installed(),
                                 reason="bitsandbytes is not installed (pip install '.[quantization]')")]

PROJECTS = {"grad_ascent": "grad_ascent.toml", "grad_diff": "grad_diff.toml", "npo": "npo.toml", "simnpo": "npo.toml",
            "rmu": "demo.toml",
            "sku": "sku_demo.toml", "icu": "icu_demo.toml", "elm": "elm_demo.toml", "ext_sub": "ext_sub_demo.toml"}


def quantized_project(method: str, out: Path, quantization: str = "nf4") -> RunConfig:
    config = RunConfig.load(projects_dir() / PROJECTS[method])
    if method == "simnpo":  # no project of its own: NPO's data, SimNPO's defaults
        config.method.name, config.method.params = "simnpo", {}
    config.model.quantization, config.model.device = quantization, "cpu"
    for role in config.data:
        for source in config.data[role].sources(role).values():
            source.max_rows = 8
    t = config.training
    t.max_steps, t.epochs, t.batch_size, t.max_length, t.checkpoint_every, t.threads = 2, None, 2, 64, 10, 1
    if method == "icu":  # keep every target active: the step itself is what is tried
        config.method.params.update(f1_threshold=0.0, bleu_threshold=0.0, ma_threshold=0.0, el_threshold=0.0,
                                    calibrate=False)
    config.evaluation.suite = "none"
    config.output.dir = str(out)
    return config


def run(config: RunConfig) -> tuple[runner.RunResult, list]:
    """The run as the CLI and the app start it (its evaluation included, when the project has one)."""
    events: list = []
    result = start_run(config, listener=events.append)
    assert result.status == "finished", result.error
    weights = load_file(result.adapter_dir / "adapter_model.safetensors")
    untrained = [name for name, value in weights.items() if "lora_B" in name and not value.any()]
    assert not untrained, f"{len(untrained)} LoRA modules did not train, e.g. {untrained[0]}"
    return result, events


@pytest.mark.parametrize("method", ["grad_ascent", "grad_diff", "simnpo", "rmu", "sku", "icu", "elm"])
def test_each_method_trains_on_a_4bit_base(method, tmp_path):
    _, events = run(quantized_project(method, tmp_path))
    steps = [e for e in events if isinstance(e, StepEvent)]
    assert [e.step for e in steps] == [1, 2] and all(math.isfinite(e.losses["loss/total"]) for e in steps)
    logs = [e.message for e in events if isinstance(e, LogEvent)]
    assert any("linear layers 4-bit NF4" in line for line in logs)


def test_npos_original_model_is_the_quantized_base_with_the_adapter_off(tmp_path):
    config = quantized_project("npo", tmp_path)
    _, events = run(config)
    first = next(e for e in events if isinstance(e, StepEvent))
    beta = config.method.params.get("beta", 0.1)
    # LoRA's B starts at 0: at step 1 the adapted model IS the original, so NPO's loss is exactly
    # (2/β)·log 2. An original model that differed from the quantized base would move it.
    assert first.losses["loss/forget"] == pytest.approx(2 / beta * math.log(2), rel=1e-5)


def test_int8_base_trains_too(tmp_path):
    run(quantized_project("grad_diff", tmp_path, quantization="int8"))


def test_ext_sub_adapters_from_a_4bit_base_combine_and_load_on_the_unquantized_base(tmp_path):
    result, _ = run(quantized_project("ext_sub", tmp_path))
    full = load_model(demo_model_dir(), device="cpu", dtype="fp32")
    ids = torch.tensor([[1, 40, 41, 42, 43, 44, 45, 46]])
    with torch.no_grad():
        before = full.model(input_ids=ids).logits
        combined = load_adapter(full.model, result.adapter_dir)
        after = combined(input_ids=ids).logits
    assert torch.isfinite(after).all() and (after - before).abs().max() > 0


def test_the_evaluation_before_training_leaves_the_4bit_training_as_it_was(tmp_path):
    # The evaluation runs the base in eval mode without gradients: on some CPUs bitsandbytes then
    # repacked the 4-bit weights for inference, and the training after it went wrong (load_model
    # stops it). The same run with and without the evaluation trains the same adapter.
    adapters = []
    for before in (False, True):
        config = quantized_project("grad_diff", tmp_path / str(before))
        config.evaluation.suite, config.evaluation.before, config.evaluation.after = "fast", before, False
        result, _ = run(config)
        adapters.append(load_file(result.adapter_dir / "adapter_model.safetensors"))
    for name, value in adapters[0].items():
        assert torch.equal(adapters[1][name], value), name
