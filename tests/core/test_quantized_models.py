"""A quantized base (bitsandbytes NF4 / LLM.int8) under the LoRA adapter, and gradient checkpointing:
what the CPU can run here, and the same on a GPU where one exists."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.model import memory_savers
from unlearn_studio.core.model.loading import attach_lora, empty_model, load_adapter, load_model
from unlearn_studio.core.model.memory_savers import (
    check_quantization,
    enable_gradient_checkpointing,
    is_quantized,
    quantization_problem,
    quantized_weight_bytes,
)
from unlearn_studio.core.paths import demo_model_dir

needs_bitsandbytes = pytest.mark.skipif(not memory_savers.bitsandbytes_installed(),
                                        reason="bitsandbytes is not installed (pip install '.[quantization]')")
needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def demo_ids() -> torch.Tensor:
    return torch.tensor([[1, 40, 41, 42, 43, 44, 45, 46], [1, 50, 51, 52, 53, 54, 55, 56]])


def test_no_quantization_is_always_possible():
    assert quantization_problem("none", "mps") is None


def test_an_unknown_quantization_is_named():
    assert "not one of none, nf4, int8" in quantization_problem("fp4", "cpu")


def test_missing_bitsandbytes_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(memory_savers, "bitsandbytes_installed", lambda: False)
    with pytest.raises(UserError) as caught:
        check_quantization("nf4", "cpu")
    assert "needs bitsandbytes" in caught.value.problem and "unlearn-studio[quantization]" in caught.value.fix


@needs_bitsandbytes
def test_apple_gpus_are_refused():
    with pytest.raises(UserError, match="not on mps"):
        check_quantization("nf4", "mps")


def test_weight_bytes_quantize_the_projections_only():
    model = empty_model(str(demo_model_dir()))
    full, none_quantized = quantized_weight_bytes(model, "none", 4)
    n_params = sum(p.numel() for p in model.parameters())
    assert none_quantized == 0 and full == 4 * n_params
    projections = sum(m.weight.numel() for m in model.modules()
                      if isinstance(m, nn.Linear) and m is not model.get_output_embeddings())
    nf4_total, nf4_part = quantized_weight_bytes(model, "nf4", 4)
    assert nf4_part == pytest.approx(projections * 0.5157, rel=1e-3)
    assert nf4_total == pytest.approx(full - 4 * projections + nf4_part, abs=1)
    int8_total, int8_part = quantized_weight_bytes(model, "int8", 4)
    assert projections < int8_part < 1.02 * projections and nf4_total < int8_total < full


@pytest.mark.slow
@needs_bitsandbytes
@pytest.mark.parametrize("kind, layer_class", [("nf4", "Linear4bit"), ("int8", "Linear8bitLt")])
def test_a_quantized_base_loads_on_the_cpu_with_its_head_kept(kind, layer_class):
    loaded = load_model(demo_model_dir(), device="cpu", quantization=kind)
    model = loaded.model
    assert is_quantized(model)
    assert type(model.model.layers[0].self_attn.q_proj).__name__ == layer_class
    assert isinstance(model.lm_head, nn.Linear) and model.lm_head.weight.dtype == torch.float32
    estimated, _ = quantized_weight_bytes(empty_model(str(demo_model_dir())), kind, 4)
    # bitsandbytes' own count of its storage (right for its layers, unlike quanto's or torchao's)
    assert model.get_memory_footprint() == pytest.approx(estimated, rel=0.03)


@pytest.mark.slow
@needs_bitsandbytes
def test_lora_on_a_4bit_base_trains_and_switches_off_to_the_quantized_base(tmp_path):
    torch.manual_seed(0)
    base = load_model(demo_model_dir(), device="cpu", quantization="nf4").model
    with torch.no_grad():
        quantized_logits = base(input_ids=demo_ids()).logits
    model = attach_lora(base, r=4, alpha=8, roles=["auto"])
    assert type(model.base_model.model.model.layers[0].self_attn.q_proj).__module__ == "peft.tuners.lora.bnb"
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for _ in range(2):
        model(input_ids=demo_ids(), labels=demo_ids()).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    with torch.no_grad():
        adapted = model(input_ids=demo_ids()).logits
        with model.disable_adapter():
            switched_off = model(input_ids=demo_ids()).logits
    assert torch.equal(switched_off, quantized_logits)
    assert (adapted - quantized_logits).abs().max() > 1e-3

    # The adapter is plain fp32 LoRA: it loads on the unquantized base and moves it as it moved the
    # quantized one (the demo model is small, so NF4's rounding of the base itself is large).
    model.save_pretrained(tmp_path / "adapter")
    full = load_model(demo_model_dir(), device="cpu").model
    with torch.no_grad():
        full_logits = full(input_ids=demo_ids()).logits
        on_full = load_adapter(full, tmp_path / "adapter")
        moved = (on_full(input_ids=demo_ids()).logits - full_logits).flatten()
    trained = (adapted - quantized_logits).flatten()
    assert torch.nn.functional.cosine_similarity(moved, trained, dim=0) > 0.95


def lora_gradients(evaluate_first: bool) -> dict[str, torch.Tensor | None]:
    torch.manual_seed(0)
    model = attach_lora(load_model(demo_model_dir(), device="cpu", quantization="nf4").model, r=4, alpha=8,
                        roles=["q", "v"])
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.02)
    if evaluate_first:  # what an evaluation before training, or ICU's and ELM's generation, does
        model.eval()
        with torch.no_grad():
            model(input_ids=demo_ids())
    model.train()
    model(input_ids=demo_ids(), labels=demo_ids()).loss.backward()
    return {name: param.grad for name, param in model.named_parameters() if param.requires_grad}


@pytest.mark.slow
@needs_bitsandbytes
def test_a_forward_without_gradients_does_not_cut_the_4bit_bases_gradients():
    # bitsandbytes repacks 4-bit weights for inference on such a forward on some CPUs, and the
    # repacked layers pass no gradient; load_model turns that off.
    fresh, after_evaluation = lora_gradients(False), lora_gradients(True)
    assert all(grad is not None for grad in after_evaluation.values())
    for name, grad in fresh.items():
        assert torch.equal(after_evaluation[name], grad), name


@pytest.mark.slow
def test_gradient_checkpointing_gives_the_same_gradients():
    grads = []
    for checkpointing in (False, True):
        base = load_model(demo_model_dir(), device="cpu").model
        if checkpointing:
            enable_gradient_checkpointing(base, "demo")
        torch.manual_seed(0)
        model = attach_lora(base, r=4, alpha=8, roles=["q", "v"])
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "lora_B" in name:
                    param.normal_(std=0.02)
        model.train()
        model(input_ids=demo_ids(), labels=demo_ids()).loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad})
        assert base.is_activation_checkpointing == checkpointing
    for name, grad in grads[0].items():
        torch.testing.assert_close(grads[1][name], grad, rtol=1e-5, atol=1e-7)


def test_a_model_without_checkpointing_support_is_refused():
    class Plain(nn.Module):
        supports_gradient_checkpointing = False

    with pytest.raises(UserError, match="does not support gradient checkpointing"):
        enable_gradient_checkpointing(Plain(), "plain")


@pytest.mark.slow
@needs_bitsandbytes
@needs_gpu
@pytest.mark.parametrize("kind", ["nf4", "int8"])
def test_a_quantized_base_on_the_gpu_trains_in_bf16(kind):
    loaded = load_model(demo_model_dir(), device="cuda", quantization=kind)
    model = attach_lora(loaded.model, r=4, alpha=8, roles=["auto"])
    assert next(p for p in model.parameters() if p.requires_grad).device.type == "cuda"
    ids = demo_ids().cuda()
    model.train()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    assert torch.isfinite(loss) and all(p.grad is not None for p in model.parameters() if p.requires_grad)
    with torch.no_grad(), model.disable_adapter():
        assert torch.isfinite(model(input_ids=ids).logits).all()
