"""Does each data role's prompt template fit its rows and the model? Advice in the app's words,
each with the template that fixes it (the app offers the fix as one click).

Two misfits: a template that cannot write the rows at all (the qa template on plain text), and
question/answer rows written differently from the way the model learned questions (the built-in
demo model learned the qa template, but its tokenizer ships a chat template, so "auto" picks chat).
"""

from __future__ import annotations

from dataclasses import dataclass

from unlearn_studio.core.data.loader import LoadedData
from unlearn_studio.core.errors import UserError
from unlearn_studio.core.model.loading import load_tokenizer
from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.core.project.summary import read_role

DEMO_MODEL_FORMAT = "qa"  # the demo corpus writes every question with the qa template (core/demo/corpus.py)
TEMPLATE_WORDS = {
    "qa": "“### Question: … ### Answer: …” (the qa template)",
    "chat": "the tokenizer's chat template",
    "user-assistant": "“<|user|> … <|assistant|> …” (the user-assistant template)",
    "raw": "the text as it is (the raw template)",
    "completion": "a text and its continuation (the completion template)",
    "auto": "the template chosen from the data (auto)",
}
KIND_WORDS = {"text": "plain text", "qa": "questions with answers", "mcq": "multiple-choice questions"}


@dataclass(frozen=True)
class TemplateAdvice:
    role: str
    title: str
    detail: str
    template: str  # the template that fixes it


def model_prompt_format(config: RunConfig) -> str | None:
    """The template the model learned its questions in, when it is known (the built-in demo's)."""
    return DEMO_MODEL_FORMAT if config.model.is_demo else None


def advise(role: str, loaded: LoadedData, requested: str, tokenizer, model_format: str | None) -> TemplateAdvice | None:
    """What is wrong with writing ``loaded``'s rows with ``requested``, and the fix; None if nothing."""
    words = TEMPLATE_WORDS.get(requested, requested)
    try:
        used = loaded.template(requested, tokenizer)
    except UserError:
        fix = "raw" if loaded.kind == "text" else (model_format or "auto")
        return TemplateAdvice(role, f"The {role} data does not fit its prompt template",
                              f"It holds {KIND_WORDS.get(loaded.kind, loaded.kind)}, which {words} cannot write: the "
                              f"run would stop at its start.", fix)
    if model_format and loaded.kind != "text" and used not in (model_format, "completion"):
        return TemplateAdvice(role, f"The {role} questions are written differently from the way the model learned",
                              f"The model learned questions written as {TEMPLATE_WORDS[model_format]}; with "
                              f"“{requested}” they are written as {TEMPLATE_WORDS.get(used, used)}, so it may not "
                              "recognise them and unlearning measures less.", model_format)
    return None


def _tokenizer(config: RunConfig):
    return load_tokenizer(config.resolve_model_path(), trust_remote_code=config.model.trust_remote_code,
                          allow_network=config.model.allow_network)


def check_role(config: RunConfig, role: str, tokenizer=None) -> TemplateAdvice | None:
    """Advice for one role; None when its template fits, or when the role or the tokenizer cannot
    be read (the data and model checks say why)."""
    source = config.data[role]
    try:
        tokenizer = tokenizer if tokenizer is not None else _tokenizer(config)
        loaded = read_role(config.resolve_path(source.path), role, source)
    except UserError:
        return None
    return advise(role, loaded, source.template, tokenizer, model_prompt_format(config))


def check_templates(config: RunConfig) -> list[TemplateAdvice]:
    """Advice for every role whose template misfits."""
    try:
        tokenizer = _tokenizer(config)
    except UserError:
        return []
    return [found for role in config.data if (found := check_role(config, role, tokenizer)) is not None]
