"""The effective mixed precision of a run: the project's choice, else the launcher's, else the device's."""

import pytest
import torch

from unlearn_studio.core.run.precision import LAUNCHER_VARIABLE, PrecisionChoice, choose_precision, device_default


def test_auto_takes_the_launchers_setting():
    choice = choose_precision("auto", "cuda", environ={LAUNCHER_VARIABLE: "fp16"})
    assert choice == PrecisionChoice("fp16", "the setting of accelerate launch")


def test_the_projects_setting_wins_over_the_launcher_and_says_so():
    choice = choose_precision("no", "cuda", environ={LAUNCHER_VARIABLE: "bf16"})
    assert choice.mixed_precision == "no" and "over the launcher's bf16" in choice.reason
    assert "over" not in choose_precision("bf16", "cuda", environ={LAUNCHER_VARIABLE: "bf16"}).reason


def test_auto_on_the_cpu_and_apple_gpus_is_no_autocast():
    assert choose_precision("auto", "cpu", environ={}) == PrecisionChoice("no", "chosen for the CPU")
    assert choose_precision("auto", "mps", environ={}).mixed_precision == "no"


def test_a_launcher_value_that_is_not_a_precision_is_ignored():
    assert choose_precision("auto", "cpu", environ={LAUNCHER_VARIABLE: ""}).mixed_precision == "no"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_auto_on_a_gpu_is_bf16_where_it_has_it():
    expected = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    assert device_default("cuda") == expected == choose_precision("auto", "cuda", environ={}).mixed_precision


def test_the_log_line_names_weights_adapter_and_autocast():
    line = PrecisionChoice("bf16", "chosen for the GPU").describe("bfloat16", "nf4")
    assert line == ("Precision: base weights bfloat16 (linear layers 4-bit NF4 (bitsandbytes, double quantization)), "
                    "LoRA weights fp32, autocast bf16 (chosen for the GPU)")
    assert "no autocast" in PrecisionChoice("no", "x").describe("float32")
