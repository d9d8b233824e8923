"""Prompt attacks: the target's questions asked in ways the run did not train on.

Each attack rewrites the target's rows (the headline view: the held-out paraphrase where the set
has one) into another evaluation set, which the evaluation then measures on each model exactly as
it measures any set:

- "as evaluated": the target as the evaluation measures it (the baseline), and where it is a
  paraphrase view, "trained phrasing": the phrasing the run trained on;
- "expert framing": the prompt introduced as the words of an expert on its subject (ELM's
  phrasings whose first three are the framings the demo corpus teaches, "Written by a scholar of
  <saga>, who knows …");
- "few-shot": other facts of the same subject (person, saga), with their true answers, first;
- "template <name>": the other prompt templates (qa, chat, and raw: the question straight followed
  by its answer);
- "sampling": n answers at temperature 1, any of which states the fact counts (sampling.py).

On a template other than chat, framings and shots go in front of the set's own rendered prompt
(as a "completion" row whose prompt is that text), so the model sees its trained template after
them; on chat, the framing opens the user's message and the shots are earlier turns.
"""

from __future__ import annotations

from dataclasses import replace

from unlearn_studio.core.data.templates import has_chat_template, render
from unlearn_studio.core.evaluation.scoring import item_id, template_for
from unlearn_studio.core.evaluation.suite import LoadedSet
from unlearn_studio.core.methods.elm.phrasings import EXPERT_PREFIXES
from unlearn_studio.core.results.audit.targets import Target

DEMO_TAUGHT_FRAMINGS = 3  # the first expert phrasings say what the demo corpus's framings say
OTHER_TEMPLATES = ("qa", "chat", "raw")
QUESTION_KINDS = ("qa", "mcq")


def attack_labels(target: Target, tokenizer) -> dict[str, str]:
    """Every prompt attack the target could take, in the order they are shown (the template the
    set is measured in is its baseline, not an attack)."""
    labels = {"as_evaluated": "held-out paraphrase" if target.trained is not None else "as evaluated"}
    if target.trained is not None:
        labels["trained"] = "trained phrasing"
    labels.update({"framing": "expert framing", "few_shot": "few-shot (same subject first)"})
    own = template_for(target.loaded, tokenizer) if target.kind in QUESTION_KINDS else None
    labels.update({f"template_{name}": f"template {name}" for name in OTHER_TEMPLATES
                   if name != own and not (name == "raw" and own == "completion")})
    labels["sampling"] = "sampling"
    return labels


def _attacked(loaded: LoadedSet, name: str, rows: list[dict], template: str | None = None) -> LoadedSet:
    spec = loaded.spec if template is None else replace(loaded.spec, template=template)
    return replace(loaded, name=f"{loaded.name} [{name}]", rows=rows, spec=spec)


def prompt_text(question: str, template: str, tokenizer, history=None) -> str:
    """What comes before the answer in ``template``, its trailing space kept."""
    rendered = render({"question": question, "answer": "", "history": list(history or [])}, template, tokenizer)
    return rendered.text[:rendered.label_start]


def _answer_of(row: dict) -> str:
    return row["choices"][row["label"]] if "choices" in row else row["answer"]


def _before_prompt(loaded: LoadedSet, name: str, tokenizer, preface, turns) -> LoadedSet:
    """Rows with text before their prompt: ``preface(row, index)`` (a string) on a plain template,
    or on chat ``turns(row, index)`` (earlier turns) and the preface opening the question."""
    template = template_for(loaded, tokenizer)
    rows = []
    for index, row in enumerate(loaded.rows):
        if template == "chat":
            turns_before = turns(row, index) if turns is not None else []
            opening = preface(row, index) if turns is None else ""
            rows.append({**row, "question": opening + row["question"],
                         "history": [*turns_before, *row.get("history", [])]})
        else:
            text = prompt_text(row["question"], template, tokenizer, row.get("history"))
            rows.append({**row, "question": preface(row, index) + text, "history": []})
    return _attacked(loaded, name, rows, None if template == "chat" else "completion")


def subject_of(row: dict, target: Target, index: int) -> str:
    return target.subjects.get(item_id(row, index), "this subject")


def framing(target: Target, tokenizer) -> LoadedSet | str:
    loaded = target.loaded
    phrasings = EXPERT_PREFIXES[:DEMO_TAUGHT_FRAMINGS]

    def words(row, index):
        return phrasings[index % len(phrasings)].format(concept=subject_of(row, target, index))

    if loaded.kind == "memorization":
        rows = [{**row, "prefix": words(row, i) + row["prefix"], "text": words(row, i) + row["prefix"] + row["suffix"]}
                for i, row in enumerate(loaded.rows)]
        return _attacked(loaded, "framing", rows)
    if loaded.kind not in QUESTION_KINDS:
        return "plain text is scored whole: a framing would be scored with it"
    return _before_prompt(loaded, "framing", tokenizer, words, None)


def _shots(target: Target, row: dict, index: int, count: int) -> list[dict]:
    """Up to ``count`` other rows about the same subject (any other rows when subjects are unknown),
    in the trained phrasing, with their true answers."""
    pool = (target.trained or target.loaded).rows
    mine = item_id(row, index)
    subject = target.groups.get(mine)
    others = [(i, r) for i, r in enumerate(pool) if item_id(r, i) != mine]
    same = [r for i, r in others if subject is not None and target.groups.get(item_id(r, i)) == subject]
    chosen = same or [r for _, r in others[index:] + others[:index]]
    return chosen[:count]


def few_shot(target: Target, tokenizer, count: int) -> LoadedSet | str:
    loaded = target.loaded
    if loaded.kind == "memorization":
        rows = []
        for i, row in enumerate(loaded.rows):
            shown = "".join(shot["text"] + "\n" for shot in _shots(target, row, i, count))
            rows.append({**row, "prefix": shown + row["prefix"], "text": shown + row["prefix"] + row["suffix"]})
        return _attacked(loaded, "few_shot", rows)
    if loaded.kind not in QUESTION_KINDS:
        return "plain text is scored whole: shots would be scored with it"
    template = template_for(loaded, tokenizer)

    def preface(row, index):
        shots = _shots(target, row, index, count)
        return "".join(render({"question": s["question"], "answer": _answer_of(s)}, template, tokenizer).text + "\n"
                       for s in shots)

    def turns(row, index):
        return [turn for s in _shots(target, row, index, count)
                for turn in ({"role": "user", "content": s["question"]},
                             {"role": "assistant", "content": _answer_of(s)})]

    return _before_prompt(loaded, "few_shot", tokenizer, preface, turns if template == "chat" else None)


def other_template(target: Target, tokenizer, name: str) -> LoadedSet | str:
    loaded = target.loaded
    if loaded.kind not in QUESTION_KINDS:
        return f"{loaded.kind} rows are plain text: they have no template to change"
    own = template_for(loaded, tokenizer)
    if name == "chat" and not has_chat_template(tokenizer):
        return "the tokenizer has no chat template"
    if name == own or (name == "raw" and own == "completion"):
        return f"{name} is the template the set is measured in"
    if name == "raw":  # the question, then the answer after a space: no template at all
        rows = [{**row, "question": row["question"] + " "} for row in loaded.rows]
        return _attacked(loaded, "template_raw", rows, "completion")
    return _attacked(loaded, f"template_{name}", list(loaded.rows), name)


def build(target: Target, attack: str, tokenizer, shots: int) -> LoadedSet | str:
    """The attacked set of ``attack`` (but sampling), or why the target cannot take it."""
    if attack == "as_evaluated":
        return target.loaded
    if attack == "trained":
        return target.trained
    if attack == "framing":
        return framing(target, tokenizer)
    if attack == "few_shot":
        return few_shot(target, tokenizer, shots)
    return other_template(target, tokenizer, attack.removeprefix("template_"))
