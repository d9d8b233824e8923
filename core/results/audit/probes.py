"""Hidden-state probes: is the forgotten value still written in the model's states?

For a qa forget set whose rows name their fact's value from a closed set (a ``value`` column; the
values of an ``attribute`` column form one set each), a linear probe per layer reads the value
from a hidden state (core/results/audit/hidden.py): the last prompt token's, and the state just
before the answer states the value (a model that restates the question first, as the demo model
does, has not looked the value up yet at the end of the prompt). Each model gets its own probes,
trained on the retain rows (the project's retain set with values; persons the run kept) and tested
on the forget rows, in the trained phrasing. The reference model, which never saw the forget
persons, shows the level of a probe that cannot know.

The probe is multinomial logistic regression on standardized states with an L2 penalty, fitted by
L-BFGS in torch (a few hundred rows and dimensions: scikit-learn would add a dependency for one
fit). All attributes are fitted at once: each row's logits outside its attribute's values are
masked, which is the same as one softmax per attribute. A test value the retain rows never had
cannot be predicted and counts as wrong. "Chance" is the accuracy of always guessing the commonest
retain value of the row's attribute.

Knowledge gone from the output (greedy value accuracy at most ``gone_margin`` above the
reference's, or above 0 without a reference model) while a layer's probe reads it at
``probe_flag`` (90%) or more, or the logit lens ranks it first at that share of rows in some
layer, is flagged: hidden, not erased.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

L2 = 1e-3
MAX_ITER = 30  # the demo's probes reach the accuracy of 100 iterations (within 0.02) in a third of the time
PROMPT, VALUE = "last prompt token", "before the value"


@dataclass
class ProbeFit:
    accuracy: list[float]  # per layer, on the test rows
    chance: float
    unseen: int  # test rows whose value no training row has


def _classes(train_values: list[str], train_groups: list[str]) -> tuple[list[tuple[str, str]], dict]:
    classes = sorted(set(zip(train_groups, train_values, strict=True)))
    return classes, {c: i for i, c in enumerate(classes)}


def _mask(groups: list[str], classes: list[tuple[str, str]]) -> torch.Tensor:
    """0 on the classes of each row's own group, −inf elsewhere: [rows, classes]."""
    mask = torch.full((len(groups), len(classes)), -math.inf)
    for i, group in enumerate(groups):
        mask[i, [j for j, (g, _) in enumerate(classes) if g == group]] = 0.0
    return mask


def _fit(x: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    weight = torch.zeros(x.shape[1], mask.shape[1], requires_grad=True)
    bias = torch.zeros(mask.shape[1], requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=MAX_ITER, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(x @ weight + bias + mask, y) + L2 * weight.pow(2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return weight.detach(), bias.detach()


@torch.enable_grad()
def fit_probes(train: torch.Tensor, train_values: list[str], train_groups: list[str], test: torch.Tensor,
               test_values: list[str], test_groups: list[str]) -> ProbeFit:
    """Probes per layer (``train`` and ``test``: [rows, layers, hidden]), scored on the test rows."""
    classes, index = _classes(train_values, train_groups)
    y = torch.as_tensor([index[(g, v)] for g, v in zip(train_groups, train_values, strict=True)])
    wanted = [index.get((g, v), -1) for g, v in zip(test_groups, test_values, strict=True)]
    train_mask, test_mask = _mask(train_groups, classes), _mask(test_groups, classes)
    accuracy = []
    for layer in range(train.shape[1]):
        x, z = train[:, layer].double(), test[:, layer].double()
        mean, std = x.mean(0), x.std(0).clamp(min=1e-6)
        weight, bias = _fit(((x - mean) / std).float(), y, train_mask)
        predicted = (((z - mean) / std).float() @ weight + bias + test_mask).argmax(1).tolist()
        accuracy.append(sum(p == w for p, w in zip(predicted, wanted, strict=True)) / len(wanted))
    commonest = {}
    for group in set(train_groups):
        counts = {}
        for g, v in zip(train_groups, train_values, strict=True):
            if g == group:
                counts[v] = counts.get(v, 0) + 1
        commonest[group] = max(counts, key=counts.get)
    chance = sum(commonest.get(g) == v for g, v in zip(test_groups, test_values, strict=True)) / len(test_values)
    return ProbeFit(accuracy, chance, sum(w < 0 for w in wanted))


@dataclass
class ProbesResult:
    layers: list[str]  # "embeddings", "layer 1", …
    train: dict  # the retain rows the probes learn from: set, rows
    test: dict  # the forget rows they are tested on: set, rows, unseen values
    chance: dict[str, float] = field(default_factory=dict)  # position -> guessing the commonest value
    accuracy: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # position -> model -> per layer
    lens: dict[str, dict[str, list[float]]] = field(default_factory=dict)  # model -> median rank, top-1/10 shares
    lens_note: str = ""  # why there is no logit lens
    output: dict[str, float] = field(default_factory=dict)  # model -> greedy value accuracy on the test rows
    flagged: bool = False
    flag_reason: str = ""
    seconds: float = 0.0

    def best(self, model: str) -> tuple[str, int, float]:
        """(position, layer index, accuracy) of the model's most accurate probe."""
        found = [(values[layer], position, layer) for position, by_model in self.accuracy.items()
                 for values in [by_model.get(model, [])] for layer in range(len(values))]
        if not found:
            return "", -1, math.nan
        accuracy, position, layer = max(found)
        return position, layer, accuracy

    def best_lens(self, model: str) -> tuple[int, float]:
        """(layer index, share of rows whose value the lens ranks first) at the model's best layer."""
        shares = self.lens.get(model, {}).get("top1", [])
        if not shares:
            return -1, math.nan
        layer = max(range(len(shares)), key=shares.__getitem__)
        return layer, shares[layer]

    def to_dict(self) -> dict:
        return {key: getattr(self, key) for key in ("layers", "train", "test", "chance", "accuracy", "lens",
                                                    "lens_note", "output", "flagged", "flag_reason", "seconds")}

    @classmethod
    def from_dict(cls, data: dict) -> ProbesResult:
        return cls(**{**data, **{key: _restored(data[key]) for key in ("chance", "accuracy", "lens", "output")}})


def _restored(value):
    """Numbers as read from JSON, where null stood for a value that was not finite."""
    if value is None:
        return math.nan
    if isinstance(value, dict):
        return {k: _restored(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restored(v) for v in value]
    return value
