"""Plain words for what the app shows: every method hyperparameter and every metric gets a label a
newcomer can read and a tooltip that says what it means, which value is ideal and where a
default comes from. The internal name (the key in a project file or the store) is in the
tooltip too, so the label and the TOML can be matched."""

from __future__ import annotations

import functools

from unlearn_studio.gui.numbers import setting

# Method hyperparameters by name; (method, name) overrides a name two methods use differently.
HYPERPARAMETER_LABELS = {
    "concept": "Concept to erase",
    "eta": "Erase strength (η)",
    "temperature": "Target temperature",
    "top_k": "Tokens kept per target",
    "erase_weight": "Weight of erasing",
    "retain_weight": "Weight of keeping (retain)",
    "consistency_weight": "Weight of fluent text",
    "guidance": "Guidance toward the novice",
    "consistency_tokens": "Tokens per fluency sample",
    "seed": "Random seed",
    "op": "How to combine",
    "unlearn_weight": "Weight of forgetting",
    "neighbour_weight": "Weight of the neighbours",
    "kl_weight": "Weight of staying close (KL)",
    "f1_threshold": "Forgotten below F1",
    "bleu_threshold": "Forgotten below BLEU-4",
    "ma_threshold": "Stop below memorization (MA)",
    "el_threshold": "Stop below extraction (EL)",
    "flag_by_memorization": "Keep memorized targets active",
    "calibrate": "Thresholds from unseen records",
    "prefix_tokens": "Prefix length (tokens)",
    "embedding_model": "Embedding model for neighbours",
    "unlearn_span": "Tokens to unlearn",
    "beta": "Sharpness (β)",
    "layer": "Steered layer",
    "steering_scale": "Steering strength",
    "distortion_weight": "Weight of learning the harm (ε1)",
    "disassociation_weight": "Weight of mismatched answers (ε2)",
    "preservation_weight": "Weight of leaving normal text (ε3)",
    "k": "Mismatched answers per question (K)",
    "negation_lambda": "Strength of the negation (λ)",
    "kl_cap": "Cap of the push away (nats)",
}
METHOD_HYPERPARAMETER_LABELS = {
    ("rmu", "alpha"): "Weight of keeping (retain)",
    ("ext_sub", "alpha"): "Strength of the removal (λ)",
}


def hyperparameter_label(method: str, name: str) -> str:
    return (METHOD_HYPERPARAMETER_LABELS.get((method, name)) or HYPERPARAMETER_LABELS.get(name)
            or name.replace("_", " ").capitalize())


def hyperparameter_tooltip(method: str, h) -> str:
    """Meaning, default and its source, allowed range, and the name in the project file."""
    lines = [f"{hyperparameter_label(method, h.name)}: {h.help}.",
             f"Default {setting(h.default)!s}: {h.source}."]
    if h.minimum is not None or h.maximum is not None:
        low = setting(h.minimum) if h.minimum is not None else "…"
        high = setting(h.maximum) if h.maximum is not None else "…"
        lines.append(f"Allowed: {low} to {high}.")
    if h.choices:
        lines.append("Choices: " + ", ".join(map(str, h.choices)) + ".")
    lines.append(f"In the project file: method.params.{h.name}")
    return "\n".join(lines)


# ---- metrics ------------------------------------------------------------------------------------
# The evaluation's registry says what every metric is (label, meaning, ideal value); these read it.


@functools.cache
def _metrics() -> dict:
    # The registry pulls in numpy and scipy: read the first time a metric is shown, which is after
    # the plotting library has loaded (gui/startup.py imports it with that stage).
    from unlearn_studio.core.evaluation.table import metric_catalog

    return {metric.name: metric for metric in metric_catalog()}


ALIASES = {"forget_quality_log10": "forget_quality"}  # summary keys the store keeps beside the metrics


def _split(key: str) -> tuple[str, object | None]:
    """The set part of a stored key ("forget" of "forget/value_acc") and the registered metric."""
    set_name, _, name = key.rpartition("/")
    return set_name, _metrics().get(ALIASES.get(name, name))


def metric_label(key: str) -> str:
    """'forget: value accuracy' for 'forget/value_acc'; the key itself when no metric has its name."""
    set_name, metric = _split(key)
    if metric is None:
        return key
    return f"{set_name.replace('_', ' ')}: {metric.label}" if set_name else metric.label


def metric_tooltip(key: str, label: str = "", meaning: str = "", ideal: str = "") -> str:
    """What the metric is and its ideal value (from the registry unless given), and its stored key."""
    _, metric = _split(key)
    meaning = meaning or (metric.meaning if metric is not None else "")
    ideal = ideal or (metric.ideal if metric is not None else "")
    lines = [label or metric_label(key)]
    if meaning:
        lines.append(f"What it is: {meaning}")
    if ideal:
        lines.append(f"Ideal: {ideal}")
    lines.append(f"Stored as: {key}")
    return "\n".join(lines)


def is_share(key: str) -> bool:
    """Whether a metric is a share of its items (shown as a percentage)."""
    _, metric = _split(key)
    return metric is not None and metric.aggregate in ("proportion", "pooled_ratio")
