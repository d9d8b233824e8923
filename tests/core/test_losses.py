"""The pure loss functions, each against arithmetic done by hand on tiny tensors (vocab of 2)."""

import math

import pytest
import torch

from unlearn_studio.core.methods.losses import (
    kl_to_reference,
    mean_answer_ce,
    npo_loss,
    rmu_forget_loss,
    rmu_retain_loss,
    sequence_nll,
    token_nll,
)

LN2, LN3 = math.log(2), math.log(3)
X = -100  # IGNORE_INDEX


def row_a():
    """Three positions. Logit rows: [0, 0] (p = ½, ½), [ln 3, 0] (p = ¾, ¼), [5, −5] (unused:
    the last position predicts past the end). Labels: prompt, 0, 1. So the answer's tokens are
    token 0 predicted from position 0 (nll ln 2) and token 1 from position 1 (nll ln 4)."""
    logits = torch.tensor([[[0.0, 0.0], [LN3, 0.0], [5.0, -5.0]]])
    labels = torch.tensor([[X, 0, 1]])
    return logits, labels


def pad(logits, labels, n=2):
    """Append ``n`` padding positions with arbitrary logits and label −100."""
    junk = torch.tensor([[[7.0, -3.0]] * n]).expand(logits.shape[0], n, 2)
    return torch.cat([logits, junk], dim=1), torch.cat([labels, torch.full((labels.shape[0], n), X)], dim=1)


def test_token_nll_by_hand():
    per_token, mask = token_nll(*row_a())
    assert mask.tolist() == [[True, True]]
    assert per_token[0].tolist() == pytest.approx([LN2, math.log(4)])


def test_token_nll_zero_on_ignored_positions():
    logits, labels = row_a()
    labels = torch.tensor([[X, X, 1]])
    per_token, mask = token_nll(logits, labels)
    assert mask.tolist() == [[False, True]]
    assert per_token[0, 0] == 0


def test_sequence_nll_mean_and_sum_by_hand():
    logits, labels = row_a()
    assert sequence_nll(logits, labels).tolist() == pytest.approx([(LN2 + 2 * LN2) / 2])
    assert sequence_nll(logits, labels, reduction="sum").tolist() == pytest.approx([3 * LN2])


def test_sequence_nll_row_without_labels_is_zero_not_nan():
    logits, _ = row_a()
    labels = torch.full((1, 3), X)
    for reduction in ("mean", "sum"):
        value = sequence_nll(logits, labels, reduction=reduction)
        assert value.tolist() == [0.0]


def test_mean_answer_ce_is_token_weighted():
    # Row A: 2 answer tokens, nll ln 2 + ln 4 = 3 ln 2. Row B: 1 answer token, logits [0, 0]: ln 2.
    logits_a, labels_a = row_a()
    logits_b = torch.tensor([[[0.0, 0.0], [1.0, 2.0], [3.0, 4.0]]])
    labels_b = torch.tensor([[X, 1, X]])
    logits, labels = torch.cat([logits_a, logits_b]), torch.cat([labels_a, labels_b])
    # Token-weighted: (3 ln 2 + ln 2) / 3 tokens; the mean of row means would be 1.25 ln 2.
    assert float(mean_answer_ce(logits, labels)) == pytest.approx(4 * LN2 / 3)


def test_padding_changes_nothing():
    logits, labels = row_a()
    padded_logits, padded_labels = pad(logits, labels)
    assert float(mean_answer_ce(padded_logits, padded_labels)) == pytest.approx(float(mean_answer_ce(logits, labels)))
    for reduction in ("mean", "sum"):
        assert sequence_nll(padded_logits, padded_labels, reduction).tolist() == pytest.approx(
            sequence_nll(logits, labels, reduction).tolist())


def test_mean_answer_ce_without_labels_is_zero_and_differentiable():
    logits = torch.zeros(1, 3, 2, requires_grad=True)
    loss = mean_answer_ce(logits, torch.full((1, 3), X))
    loss.backward()
    assert loss.item() == 0.0 and torch.all(logits.grad == 0)


def test_bf16_logits_give_fp32_losses():
    logits, labels = row_a()
    value = mean_answer_ce(logits.bfloat16(), labels)
    assert value.dtype == torch.float32
    assert float(value) == pytest.approx(1.5 * LN2, rel=1e-2)


def test_npo_closed_form():
    nll_theta = torch.tensor([2.0, 5.0])
    nll_ref = torch.tensor([3.0, 1.0])
    beta = 0.5
    # log-ratios r = −(nllθ − nll0) = [1, −4]; L = (2/β) · mean log(1 + e^{βr}).
    expected = (2 / beta) * (math.log(1 + math.exp(0.5)) + math.log(1 + math.exp(-2.0))) / 2
    assert float(npo_loss(nll_theta, nll_ref, beta)) == pytest.approx(expected)


def test_npo_at_reference_is_two_over_beta_log_two():
    nll = torch.tensor([4.0, 9.0, 0.5])
    assert float(npo_loss(nll, nll.clone(), 0.1)) == pytest.approx(20 * LN2)


def test_npo_is_stable_for_extreme_ratios():
    value = npo_loss(torch.tensor([1e4, 0.0]), torch.tensor([0.0, 1e4]), 1.0)
    # Row 1: r = −1e4, log(1 + e^{−1e4}) ≈ 0. Row 2: r = 1e4, log(1 + e^{1e4}) ≈ 1e4. L = 2 · 1e4 / 2.
    assert math.isfinite(float(value))
    assert float(value) == pytest.approx(1e4)


def test_npo_gradient_tends_to_gradient_ascent_for_small_beta():
    # dL/dnllθ_b = −2σ(β r_b)/B, which tends to −1/B: the gradient of −mean(nllθ).
    nll_theta = torch.tensor([2.0, 7.0, 3.0], requires_grad=True)
    npo_loss(nll_theta, torch.tensor([4.0, 1.0, 3.0]), 1e-4).backward()
    assert nll_theta.grad.tolist() == pytest.approx([-1 / 3] * 3, rel=1e-3)


def test_npo_gradient_shrinks_once_forgotten():
    # Lower likelihood than the reference (r < 0) → smaller push: NPO slows down, GA does not.
    nll_theta = torch.tensor([1.0, 30.0], requires_grad=True)
    npo_loss(nll_theta, torch.tensor([1.0, 1.0]), 0.1).backward()
    near, far = nll_theta.grad.tolist()
    assert near == pytest.approx(-0.5)  # −2σ(0)/2
    assert -0.5 < far < 0 and abs(far) == pytest.approx(2 * torch.sigmoid(torch.tensor(-2.9)).item() / 2)


def test_npo_reference_gets_no_gradient():
    nll_ref = torch.tensor([1.0], requires_grad=True)
    npo_loss(torch.tensor([2.0], requires_grad=True), nll_ref, 0.1).backward()
    assert nll_ref.grad is None


def test_kl_of_identical_logits_is_zero():
    logits = torch.randn(2, 4, 5)
    assert float(kl_to_reference(logits, logits.clone(), torch.ones(2, 4))) == pytest.approx(0.0, abs=1e-6)


def test_kl_by_hand_and_mask():
    # p0 = (½, ½), pθ = (¾, ¼): KL = ½ ln(½/¾) + ½ ln(½/¼) = ½ ln(4/3).
    logits_ref = torch.tensor([[[0.0, 0.0], [0.0, 0.0]]])
    logits = torch.tensor([[[LN3, 0.0], [9.0, -9.0]]])
    mask = torch.tensor([[1, 0]])  # the second (very different) position is padding
    assert float(kl_to_reference(logits_ref, logits, mask)) == pytest.approx(0.5 * math.log(4 / 3))
    # Both positions counted: mean of the two KLs.
    kl_far = 0.5 * (math.log(0.5) - torch.log_softmax(torch.tensor([9.0, -9.0]), 0)).sum().item()
    both = float(kl_to_reference(logits_ref, logits, torch.ones(1, 2)))
    assert both == pytest.approx((0.5 * math.log(4 / 3) + kl_far) / 2)


def test_kl_direction_is_reference_first():
    # KL(p0 ‖ pθ) ≠ KL(pθ ‖ p0) for these; the function must give the first.
    p0_logits = torch.tensor([[[2.0, 0.0]]])
    p_logits = torch.tensor([[[0.0, 0.0]]])
    p0 = torch.softmax(p0_logits[0, 0], 0)
    expected = float((p0 * (p0.log() - math.log(0.5))).sum())
    assert float(kl_to_reference(p0_logits, p_logits, torch.ones(1, 1))) == pytest.approx(expected)


def test_rmu_forget_loss_by_hand():
    h = torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    control = torch.tensor([1.0, 0.0])
    # Squared errors: (0 + 4) + (4 + 16) = 24 over 2 tokens × 2 dims.
    assert float(rmu_forget_loss(h, control, torch.ones(1, 2))) == pytest.approx(6.0)
    # A padding token appended changes nothing.
    padded = torch.cat([h, torch.tensor([[[100.0, -100.0]]])], dim=1)
    assert float(rmu_forget_loss(padded, control, torch.tensor([[1, 1, 0]]))) == pytest.approx(6.0)


def test_rmu_retain_loss_by_hand():
    h = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [5.0, 5.0]]])
    h0 = torch.tensor([[[1.0, 0.0], [3.0, 5.0], [0.0, 0.0]]])
    # Counted tokens 1 and 2: (0 + 4) + (0 + 1) = 5 over 2 tokens × 2 dims; token 3 is padding.
    mask = torch.tensor([[1, 1, 0]])
    assert float(rmu_retain_loss(h, h0, mask)) == pytest.approx(1.25)
    assert float(rmu_retain_loss(h, h.clone(), mask)) == 0.0
