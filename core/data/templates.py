"""Prompt templates, and tokenization with a loss mask on the answer tokens only."""

import string
import warnings as _warnings
from dataclasses import dataclass

from unlearn_studio.core.data.chat import chat_messages, question_with_history
from unlearn_studio.core.errors import UserError

IGNORE_INDEX = -100  # label value that the loss ignores (torch's CrossEntropyLoss default)

QA_TEMPLATE = "### Question: {question}\n### Answer: {answer}"
USER_ASSISTANT_TEMPLATE = "<|user|>\n{question}\n<|assistant|>\n{answer}"

#: template name -> what it does (shown in CLI help and the data page).
TEMPLATES = {
    "auto": "completion for a text and its continuation (MUSE verbmem); else the chat template when the "
            "tokenizer has one and rows are question/answer; else qa for question/answer rows and raw for text rows",
    "qa": QA_TEMPLATE.replace("\n", "\\n"),
    "chat": "the tokenizer's own chat template (user and assistant messages)",
    "user-assistant": USER_ASSISTANT_TEMPLATE.replace("\n", "\\n"),
    "completion": "the question as a text prefix, the answer its continuation: {question}{answer}, "
                  "the loss on the continuation only",
    "raw": "the text as it is (text rows only)",
}
_FORMAT_STRINGS = {"qa": QA_TEMPLATE, "user-assistant": USER_ASSISTANT_TEMPLATE, "completion": "{question}{answer}"}
# Stands in for the answer when rendering a chat prompt: plain letters pass any template's filters.
_ANSWER_MARK = "UnlearnStudioAnswerMark"


class TruncationWarning(UserWarning):
    """An answer (or a raw text) was cut to fit max_length."""


def row_kind(row: dict) -> str:
    """The kind of a canonical row: "mcq", "qa" or "text"."""
    if "choices" in row:
        return "mcq"
    return "text" if "text" in row else "qa"


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def resolve_template(template: str, kind: str, tokenizer=None, *, layout: str | None = None) -> str:
    """The concrete template for rows of ``kind`` ("auto" decided; misfits raise UserError).

    ``layout`` (LoadedData.layout) lets "auto" tell a text and its continuation (completion) from
    a question and its answer."""
    if template not in TEMPLATES:
        raise UserError(f"Unknown prompt template '{template}'.", f"Use one of: {', '.join(TEMPLATES)}.")
    if template == "auto":
        if kind == "text":
            return "raw"
        if layout == "completion":
            return "completion"
        return "chat" if has_chat_template(tokenizer) else "qa"
    if template == "raw" and kind != "text":
        raise UserError(
            f"The raw template is for text rows, but these rows are {kind} rows.",
            "Use --template auto, qa, chat, user-assistant or completion for question/answer data.",
        )
    if template != "raw" and kind == "text":
        raise UserError(
            f"The {template} template needs question/answer rows, but these rows are plain text.",
            "Use --template raw (or auto) for text data.",
        )
    if template == "chat" and not has_chat_template(tokenizer):
        raise UserError(
            "The chat template was chosen, but the tokenizer has no chat template.",
            "Use --template qa or user-assistant, or a tokenizer that ships a chat template.",
        )
    return template


def question_and_answer(row: dict) -> tuple[str, str]:
    """Question and answer text of a qa row; an mcq row lists its lettered choices in the
    question and answers with the correct choice."""
    if "choices" in row:
        letters = string.ascii_uppercase
        options = "\n".join(f"{letters[i]}. {choice}" for i, choice in enumerate(row["choices"]))
        return f"{row['question']}\n{options}", row["choices"][row["label"]]
    return row["question"], row["answer"]


def format_prompt(question: str, template: str, tokenizer=None, *, history: list[dict] | None = None) -> str:
    """The prompt a model is given to answer ``question`` (for generation and evaluation).

    It matches the prompt part used in training; trailing spaces are left off so that the
    model produces the answer's first token with its leading space, as it saw it in training.
    ``history`` holds a conversation's earlier turns (a chat row's "history").
    """
    template = resolve_template(template, "qa", tokenizer)
    row = {"question": question, "history": history or []}
    if template == "chat":
        return chat_prompt(chat_messages(row), tokenizer)
    prefix = _FORMAT_STRINGS[template].split("{answer}")[0]
    return prefix.format(question=question_with_history(row)).rstrip(" ")


def chat_prompt(messages: list[dict], tokenizer) -> str:
    """What the chat template writes before the assistant's answer to ``messages``.

    This is the text before the answer in a rendered conversation, not the template's bare
    generation prompt: templates such as Qwen3's put an empty ``<think></think>`` block before
    every answer they render, and a prompt that lacks it would not be the one trained on.
    """
    marked = tokenizer.apply_chat_template(
        [*messages, {"role": "assistant", "content": _ANSWER_MARK}], tokenize=False
    )
    at = marked.find(_ANSWER_MARK)
    if at >= 0:
        return marked[:at]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


@dataclass(frozen=True)
class Rendered:
    """A row as one string; characters [label_start, label_end) are what the loss trains on."""

    text: str
    label_start: int
    label_end: int
    specials_in_text: bool  # chat templates write BOS etc. themselves
    append_eos: bool


def render(row: dict, template: str, tokenizer=None) -> Rendered:
    """Render a canonical row with a concrete (resolved) template."""
    if template == "raw":
        text = row["text"]
        return Rendered(text, 0, len(text), False, True)
    question, answer = question_and_answer(row)
    if template == "chat":
        messages = chat_messages({**row, "question": question})
        prompt = chat_prompt(messages, tokenizer)
        full = tokenizer.apply_chat_template(
            [*messages, {"role": "assistant", "content": answer}], tokenize=False
        )
        if full.startswith(prompt):
            start = len(prompt)
        else:
            # The answer changed how the template renders the turn (it rewrites some contents).
            found = full.rfind(answer)
            start = found if found >= 0 else _common_prefix(prompt, full)
        # The assistant turn's closing tokens are trained too; trailing whitespace is not.
        return Rendered(full, start, len(full.rstrip()), True, False)
    prefix, suffix = _FORMAT_STRINGS[template].split("{answer}")
    question = question_with_history({**row, "question": question})
    prompt = prefix.format(question=question)
    full = prompt + answer + suffix.format(question=question)
    # A continuation is not the end of a text: no EOS is trained after it.
    return Rendered(full, len(prompt), len(prompt) + len(answer), False, template != "completion")


def _common_prefix(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def tokenize_example(
    row: dict, template: str, tokenizer, max_length: int, *, warnings: list[str] | None = None
) -> dict[str, list[int]]:
    """Tokenize one row into input_ids, attention_mask and labels (lists of ints).

    Labels are IGNORE_INDEX on the prompt and keep their ids on the answer tokens plus EOS
    (raw text: every token is a label). The boundary comes from token offsets (or, for slow
    tokenizers, from comparing token prefixes), so a token that spans it, such as " Paris"
    after "Answer:", counts as answer. Too long: the prompt is cut from the left (BOS kept);
    if the answer itself has to be cut, a message goes to ``warnings`` (or Python's warnings).
    """
    if max_length < 2:
        raise UserError(f"max_length must be at least 2 (got {max_length}).", "Use a larger --max-length.")
    template = resolve_template(template, row_kind(row), tokenizer)
    rendered = render(row, template, tokenizer)
    text_ids, in_label = _tokenize_with_label_mask(tokenizer, rendered)
    prefix, suffix = ([], []) if rendered.specials_in_text else _special_affixes(tokenizer)
    eos = tokenizer.eos_token_id
    if rendered.append_eos and eos is not None and eos not in suffix:
        suffix = suffix + [eos]

    if template == "raw":
        ids = prefix + text_ids + suffix
        if len(ids) > max_length:
            _warn(warnings, row, f"text cut from {len(ids)} to {max_length} tokens (max_length)")
            ids = ids[:max_length]
        return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": list(ids)}

    first = in_label.index(True) if True in in_label else len(text_ids)
    last = len(in_label) - in_label[::-1].index(True) if True in in_label else first
    prompt = prefix + text_ids[:first]
    answer = text_ids[first:last] + suffix
    after = text_ids[last:]  # e.g. a chat template's trailing newline; dropped first when too long
    if len(prompt) + len(answer) + len(after) > max_length:
        after = []
        prompt, answer = _fit(prompt, answer, len(prefix), max_length, row, warnings)
    ids = prompt + answer + after
    labels = [IGNORE_INDEX] * len(prompt) + answer + [IGNORE_INDEX] * len(after)
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": labels}


def _fit(prompt, answer, n_prefix, max_length, row, warnings):
    """Cut prompt (from the left, keeping leading special tokens) and, if it must, the answer
    (from the right) so that both fit in max_length; a quarter of the room stays for the prompt."""
    keep_prompt = min(len(prompt), max(1, max_length // 4))
    if len(answer) > max_length - keep_prompt:
        cut = max_length - keep_prompt
        _warn(warnings, row, f"answer cut from {len(answer)} to {cut} tokens to fit max_length {max_length}")
        answer = answer[:cut]
    room = max_length - len(answer)
    if len(prompt) > room:
        head = prompt[:n_prefix] if n_prefix < room else []
        prompt = head + prompt[len(prompt) - (room - len(head)):]
    return prompt, answer


def _warn(sink: list[str] | None, row: dict, message: str) -> None:
    origin = row.get("_origin")
    message = f"{origin}: {message}" if origin is not None else message
    if sink is None:
        _warnings.warn(message, TruncationWarning, stacklevel=3)
    else:
        sink.append(message)


def _tokenize_with_label_mask(tokenizer, rendered: Rendered) -> tuple[list[int], list[bool]]:
    """Token ids of the rendered text (no added special tokens) and, per token, whether it
    overlaps the labelled character span."""
    start, end = rendered.label_start, rendered.label_end
    if getattr(tokenizer, "is_fast", False):
        encoded = tokenizer(rendered.text, add_special_tokens=False, return_offsets_mapping=True)
        ids = list(encoded["input_ids"])
        mask = [tok_end > start and tok_start < end for tok_start, tok_end in encoded["offset_mapping"]]
        return ids, mask

    def encode(text):
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    ids = encode(rendered.text)
    # Tokens shared with the prompt's own tokenization are prompt; the first that differs is
    # the one merged across the boundary, which belongs to the answer.
    first = _common_token_prefix(encode(rendered.text[:start]), ids)
    last = len(ids)
    if end < len(rendered.text):
        through_answer = encode(rendered.text[:end])
        last = _common_token_prefix(through_answer, ids)
        if len(through_answer) > last:
            last += 1  # a token merged across the end of the answer still belongs to it
        last = max(last, first)
    return ids, [first <= i < last for i in range(len(ids))]


def _common_token_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _special_affixes(tokenizer) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer adds before and after a text (e.g. BOS for Llama)."""
    plain = list(tokenizer("a", add_special_tokens=False)["input_ids"])
    full = list(tokenizer("a", add_special_tokens=True)["input_ids"])
    for i in range(len(full) - len(plain) + 1):
        if full[i : i + len(plain)] == plain:
            return full[:i], full[i + len(plain) :]
    return [], []


def pad_token_id_for(tokenizer) -> int:
    """The id to pad with: the pad token, else EOS (padding is masked, so any id works)."""
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return candidate
    return 0


def tokenize_rows(
    rows: list[dict], template: str, tokenizer, max_length: int
) -> tuple[list[dict[str, list[int]]], list[str]]:
    """Tokenize many rows; returns the examples and the truncation warnings."""
    warnings: list[str] = []
    examples = [tokenize_example(row, template, tokenizer, max_length, warnings=warnings) for row in rows]
    return examples, warnings


def collate(examples: list[dict], pad_token_id: int) -> dict:
    """Stack examples into long tensors, padded on the right.

    Padding positions get attention_mask 0 and label IGNORE_INDEX from the lengths, never from
    comparing ids with ``pad_token_id`` (which may equal EOS, a real answer token).
    """
    import torch  # heavy; the data layer is used without it for reading and checking

    if not examples:
        raise ValueError("collate needs at least one example")
    width = max(len(example["input_ids"]) for example in examples)
    batch = {
        "input_ids": torch.full((len(examples), width), pad_token_id, dtype=torch.long),
        "attention_mask": torch.zeros((len(examples), width), dtype=torch.long),
        "labels": torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long),
    }
    for i, example in enumerate(examples):
        for key, tensor in batch.items():
            values = torch.as_tensor(example[key], dtype=torch.long)
            tensor[i, : len(values)] = values
    return batch


def mark_label_span(tokenizer, ids: list[int], labels: list[int]) -> str:
    """Decode ``ids`` with each run of labelled tokens wrapped in «...»."""
    pieces, run, run_labelled = [], [], None
    for token, label in zip(ids, labels):
        labelled = label != IGNORE_INDEX
        if run and labelled != run_labelled:
            pieces.append(_decode_run(tokenizer, run, run_labelled))
            run = []
        run.append(token)
        run_labelled = labelled
    if run:
        pieces.append(_decode_run(tokenizer, run, run_labelled))
    return "".join(pieces)


def _decode_run(tokenizer, ids: list[int], labelled: bool) -> str:
    text = tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    return f"«{text}»" if labelled else text
