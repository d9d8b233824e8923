"""The memory estimate with the memory savers (quantized base, gradient checkpointing, autocast), and
the pre-flight check naming the saver that makes a run fit, with its figure (no weights loaded)."""

import copy

import pytest

from unlearn_studio.core.model import memory_savers
from unlearn_studio.core.paths import projects_dir
from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.core.run import preflight as preflight_module
from unlearn_studio.core.run.memory_estimate import HEADROOM, estimate_memory, meta_model
from unlearn_studio.core.run.memory_fit import FitOption, smallest, ways_to_fit
from unlearn_studio.core.run.preflight import ERROR, preflight


def graddiff(**training) -> RunConfig:
    config = RunConfig.load(projects_dir() / "grad_diff.toml")
    config.model.device = "cpu"
    for key, value in training.items():
        setattr(config.training, key, value)
    return config


def variant(config: RunConfig, table: str, key: str, value) -> RunConfig:
    changed = copy.deepcopy(config)
    setattr(getattr(changed, table), key, value)
    return changed


def test_a_4bit_base_keeps_an_eighth_of_the_projections_and_loads_at_full_size_on_the_cpu():
    config = graddiff()
    plain = estimate_memory(config)
    nf4 = estimate_memory(variant(config, "model", "quantization", "nf4"))
    assert nf4.quantized_weights > 0 and nf4.weights < plain.weights
    projections = (plain.weights - (nf4.weights - nf4.quantized_weights)) / 4  # elements of the quantized layers
    assert nf4.quantized_weights == pytest.approx(projections * memory_savers.BYTES_PER_WEIGHT["nf4"], rel=1e-4)
    assert nf4.loading == plain.weights  # the full-precision weights pass through while bitsandbytes quantizes
    assert nf4.total == max(nf4.training, nf4.loading)
    assert any("linear layers 4-bit NF4" in what for what, _ in nf4.parts())


def test_gradient_checkpointing_keeps_one_layer_and_each_layers_input():
    config = graddiff(batch_size=8, max_length=128)
    kept = estimate_memory(config)
    checkpointed = estimate_memory(variant(config, "training", "gradient_checkpointing", True))
    _, facts = meta_model(config)
    tokens, logits = 8 * 128, 3 * 8 * 128 * facts.vocab_size * 4
    one_layer = (kept.activations - logits) / facts.n_layers
    assert checkpointed.activations - logits == pytest.approx(one_layer + tokens * facts.hidden_size * facts.n_layers * 4,
                                                              rel=1e-6)
    assert checkpointed.activations < kept.activations


def test_bf16_weights_halve_the_activations_but_autocast_alone_does_not():
    config = graddiff()
    logits = 3 * config.training.batch_size * config.training.max_length * meta_model(config)[1].vocab_size * 4
    plain = estimate_memory(config)
    autocast = estimate_memory(variant(config, "training", "mixed_precision", "bf16"))
    assert autocast.autocast == "bf16" and plain.autocast == "no"  # auto on the CPU: no autocast
    assert autocast.activations == plain.activations  # the residual stream stays fp32
    bf16 = estimate_memory(variant(config, "model", "dtype", "bf16"))
    assert bf16.activations - logits == pytest.approx((plain.activations - logits) / 2, rel=1e-6)
    assert bf16.weights == plain.weights // 2


def test_a_method_that_yields_its_passes_keeps_one_alive():
    config = graddiff()
    assert estimate_memory(config).forward_passes == 2 and estimate_memory(config).passes_alive == 1


def fits_with_checkpointing_only(config: RunConfig) -> int:
    """Free memory in which the run fits with gradient checkpointing (and maybe a smaller batch), not
    without them."""
    checkpointed = estimate_memory(variant(config, "training", "gradient_checkpointing", True))
    return int(checkpointed.total * HEADROOM * 1.001)


def test_the_check_names_the_saver_that_makes_the_run_fit(monkeypatch):
    config = graddiff(batch_size=64, max_length=256)
    monkeypatch.setattr(memory_savers, "bitsandbytes_installed", lambda: False)  # no quantized options
    free = fits_with_checkpointing_only(config)
    monkeypatch.setattr(preflight_module, "available_memory", lambda device: free)
    (check,) = [c for c in preflight(config).checks if "more than is free" in c.title]
    assert check.level == ERROR
    assert "It fits with training.gradient_checkpointing = true (about" in check.detail


def test_the_options_come_with_their_estimates(monkeypatch):
    monkeypatch.setattr(memory_savers, "bitsandbytes_installed", lambda: True)
    config = graddiff(batch_size=64, max_length=256)
    estimate = estimate_memory(config)
    options = ways_to_fit(config, estimate, int(estimate.total * HEADROOM * 0.9))
    assert options and all(isinstance(o, FitOption) and o.estimate.total * HEADROOM <= estimate.total * HEADROOM * 0.9
                           for o in options)
    kinds = [set(o.settings) for o in options]
    assert {"training.batch_size", "training.grad_accum"} in kinds  # same batch per step, in smaller pieces
    batch = next(o for o in options if "training.batch_size" in o.settings).settings
    assert batch["training.batch_size"] * batch["training.grad_accum"] == 64


def test_when_nothing_fits_the_check_says_so_with_the_least_it_needs(monkeypatch):
    monkeypatch.setattr(memory_savers, "bitsandbytes_installed", lambda: True)
    config = graddiff(batch_size=64, max_length=256)
    monkeypatch.setattr(preflight_module, "available_memory", lambda device: 1024)
    (check,) = [c for c in preflight(config).checks if "more than is free" in c.title]
    least = smallest(config, estimate_memory(config))
    assert least.settings["model.quantization"] == "nf4" and least.settings["training.batch_size"] == 1
    assert "No memory saver makes it fit here" in check.detail and least.describe() in check.detail


def test_a_quantized_base_the_machine_cannot_load_is_an_error(monkeypatch):
    monkeypatch.setattr(memory_savers, "bitsandbytes_installed", lambda: False)
    config = variant(graddiff(), "model", "quantization", "nf4")
    checks = preflight(config).checks
    assert any(c.level == ERROR and "needs bitsandbytes" in c.detail for c in checks)
