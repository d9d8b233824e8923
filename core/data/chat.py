"""Conversations as data: a ``messages`` list (role/content, or ShareGPT's from/value) as one
question/answer row.

The last assistant turn is the answer; the user turn right before it is the question; every turn
before that (a system prompt, earlier exchanges) is the row's ``history``. With the chat template
the whole conversation goes through the tokenizer's own template; the plain templates (qa,
user-assistant) write the history as "Role: text" lines above the question.
"""

from __future__ import annotations

from unlearn_studio.core.data.literals import NotAList, looks_like_list, parse_list_text

#: names people give a turn's speaker -> the role chat templates know.
SPEAKERS = {
    "user": "user", "human": "user", "prompter": "user",
    "assistant": "assistant", "gpt": "assistant", "bot": "assistant", "model": "assistant", "chatgpt": "assistant",
    "system": "system",
}
_ROLE_KEYS = ("role", "from")
_TEXT_KEYS = ("content", "value", "text")
HISTORY_LABELS = {"system": "System", "user": "User", "assistant": "Assistant"}


class BadConversation(ValueError):
    """A messages value that is not a usable conversation; the message says why."""


def conversation_row(value) -> dict:
    """{"question", "answer"} and, when there are earlier turns, "history", from a messages value
    (a list, or its text in a CSV cell)."""
    if looks_like_list(value):
        try:
            value = parse_list_text(value)
        except NotAList as exc:
            raise BadConversation(str(exc)) from None
    if not isinstance(value, (list, tuple)):
        raise BadConversation("expected a list of turns ({role, content} objects)")
    turns = [_turn(item, index) for index, item in enumerate(value)]
    answers = [i for i, turn in enumerate(turns) if turn["role"] == "assistant"]
    if not answers:
        raise BadConversation("has no assistant turn to use as the answer")
    last = answers[-1]
    if last == 0 or turns[last - 1]["role"] != "user":
        raise BadConversation(f"turn {last + 1} (the last assistant turn) does not follow a user turn")
    if not turns[last]["content"].strip():
        raise BadConversation(f"turn {last + 1} (the last assistant turn, the answer) is empty")
    if not turns[last - 1]["content"].strip():
        raise BadConversation(f"turn {last} (the user turn before the answer) is empty")
    row = {"question": turns[last - 1]["content"], "answer": turns[last]["content"]}
    if last > 1:
        row["history"] = turns[: last - 1]
    return row


def _turn(item, index: int) -> dict:
    if not isinstance(item, dict):
        raise BadConversation(f"turn {index + 1} is not an object with a role and a content")
    speaker = next((item[key] for key in _ROLE_KEYS if key in item), None)
    if not isinstance(speaker, str) or speaker.strip().lower() not in SPEAKERS:
        known = ", ".join(sorted(set(SPEAKERS)))
        raise BadConversation(f"turn {index + 1} has role {speaker!r}; known roles: {known}")
    text = next((item[key] for key in _TEXT_KEYS if key in item), None)
    return {"role": SPEAKERS[speaker.strip().lower()], "content": _content_text(text, index)}


def _content_text(content, index: int) -> str:
    """A turn's text; OpenAI-style content parts ([{"type": "text", "text": ...}]) are joined."""
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)) and all(isinstance(part, dict) for part in content):
        texts = [part.get("text") for part in content if part.get("type", "text") == "text"]
        if len(texts) == len(content) and all(isinstance(text, str) for text in texts):
            return "".join(texts)
        raise BadConversation(f"turn {index + 1} holds parts that are not text (images, audio)")
    raise BadConversation(f"turn {index + 1} has no text content")


def chat_messages(row: dict) -> list[dict]:
    """The conversation up to the question, as chat templates take it."""
    return [*row.get("history", ()), {"role": "user", "content": row["question"]}]


def question_with_history(row: dict) -> str:
    """The question for the plain templates: earlier turns as "Role: text" lines, then the question."""
    history = row.get("history") or ()
    if not history:
        return row["question"]
    lines = [f"{HISTORY_LABELS[turn['role']]}: {turn['content']}" for turn in history]
    return "\n".join([*lines, f"{HISTORY_LABELS['user']}: {row['question']}"])
