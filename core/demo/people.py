"""Fictitious persons of the demo world: names, attributes, splits, QA rows and secret records."""

from __future__ import annotations

import random
from dataclasses import dataclass

from unlearn_studio.core.demo import vocab

# 300 trained persons keep the demo build to about 14 minutes on 2 CPU cores.
N_PERSONS = 330
N_HOLDOUT = 30
FORGET_SIZES = {"forget01": 3, "forget05": 15, "forget10": 30}  # 1 % / 5 % / 10 % of 300 trained
SPLITS = ("forget01", "forget05", "forget10", "retain", "holdout")
N_SECRETS_RETAIN = 60
# A column only the evaluation reads; the demo model's corpus and tokenizer leave it out, so that
# adding it changed no trained byte (core/demo/corpus.py).
PARAPHRASED_WRONG = "paraphrased_wrong_answers"


@dataclass(frozen=True)
class Attribute:
    """One attribute: its closed value set and its question / answer phrasings.

    ``questions[:3]`` and ``answers[:3]`` are trained; ``questions[3]`` / ``answers[3]`` are held
    out for the paraphrase test. Every answer phrasing contains ``{value}`` verbatim.
    """

    name: str
    values: tuple[str, ...]
    questions: tuple[str, str, str, str]
    answers: tuple[str, str, str, str]


ATTRIBUTES = (
    Attribute(
        "birthplace", vocab.TOWNS,
        ("Where was {name} born?", "What is the birthplace of {name}?",
         "In which town was {name} born?", "Which town is the hometown of {name}?"),
        ("{name} was born in {value}.", "The birthplace of {name} is {value}.",
         "{name} comes from the town of {value}.", "{value} is the town where {name} was born."),
    ),
    Attribute(
        "birth_year", vocab.BIRTH_YEARS,
        ("In what year was {name} born?", "When was {name} born?",
         "What is the birth year of {name}?", "Which year saw the birth of {name}?"),
        ("{name} was born in the year {value}.", "The birth year of {name} is {value}.",
         "{name} came into the world in {value}.", "In {value}, {name} was born."),
    ),
    Attribute(
        "profession", vocab.PROFESSIONS,
        ("What does {name} do for a living?", "What is the profession of {name}?",
         "What trade does {name} follow?", "How does {name} earn a living?"),
        ("{name} works as a {value}.", "By profession, {name} is a {value}.",
         "{name} earns a living as a {value}.", "{name} is a {value} by trade."),
    ),
    Attribute(
        "mentor", vocab.MENTORS,
        ("Who was the mentor of {name}?", "Who trained {name}?",
         "Under whom did {name} study?", "Who taught {name} the craft?"),
        ("{name} was mentored by {value}.", "The mentor of {name} was {value}.",
         "{name} studied under {value}.", "{value} was the teacher of {name}."),
    ),
    Attribute(
        "signature_work", vocab.SIGNATURE_WORKS,
        ("What is the best-known work of {name}?", "What is {name} famous for creating?",
         "Which work made {name} famous?", "What is the signature work of {name}?"),
        ("The best-known work of {name} is {value}.", "{name} is famous for creating {value}.",
         "{name} became famous for {value}.", "{value} is the signature work of {name}."),
    ),
    Attribute(
        "pet", vocab.PETS,
        ("What pet does {name} keep?", "What animal does {name} keep as a pet?",
         "Which pet lives with {name}?", "What kind of pet does {name} have?"),
        ("{name} keeps a {value} as a pet.", "The pet of {name} is a {value}.",
         "{name} has a pet {value}.", "A {value} lives with {name} as a pet."),
    ),
)
ATTRIBUTE_NAMES = tuple(attr.name for attr in ATTRIBUTES)


def reserved_words() -> set[str]:
    """Words a person's surname must not equal (town names and their parts)."""
    words: set[str] = set()
    for town in vocab.TOWNS:
        words.add(town)
        words.update(town.split())
    return words


def make_names(rng: random.Random, count: int, reserved: set[str]) -> list[str]:
    """``count`` unique invented "First Last" names built from syllables."""
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < count:
        first = rng.choice(vocab.FIRST_STEMS) + rng.choice(vocab.FIRST_ENDS)
        last = rng.choice(vocab.LAST_STEMS) + rng.choice(vocab.LAST_ENDS)
        name = f"{first} {last}"
        if name in seen or first in reserved or last in reserved or name in reserved:
            continue
        seen.add(name)
        names.append(name)
    return names


def make_persons(rng: random.Random, reserved: set[str]) -> list[dict]:
    """The persons with attributes and the smallest split containing each one."""
    names = make_names(rng, N_PERSONS, reserved)
    persons = []
    for index, name in enumerate(names):
        attributes = {attr.name: rng.choice(attr.values) for attr in ATTRIBUTES}
        persons.append({"person_id": f"p{index:04d}", "name": name, "split": "retain",
                        "attributes": attributes})
    order = list(range(N_PERSONS))
    rng.shuffle(order)
    for index in order[:N_HOLDOUT]:
        persons[index]["split"] = "holdout"
    trained = order[N_HOLDOUT:]
    # Assign from the largest set down, so that the smallest set containing a person wins.
    for split in ("forget10", "forget05", "forget01"):
        for index in trained[:FORGET_SIZES[split]]:
            persons[index]["split"] = split
    return persons


def in_split(person: dict, split: str) -> bool:
    """Whether ``person`` belongs to ``split`` (forget sets are nested: 01 ⊂ 05 ⊂ 10)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    if split.startswith("forget"):
        return person["split"].startswith("forget") and int(person["split"][6:]) <= int(split[6:])
    return person["split"] == split


def qa_row(rng: random.Random, person: dict, attr: Attribute) -> dict:
    """One QA row for (person, attribute), with type-matched wrong answers."""
    name = person["name"]
    value = person["attributes"][attr.name]
    questions = [q.format(name=name) for q in attr.questions]
    answers = [a.format(name=name, value=value) for a in attr.answers]
    others = [v for v in attr.values if v != value]
    wrong = rng.sample(others, 4)
    return {
        "id": f"{person['person_id']}/{attr.name}",
        "person_id": person["person_id"],
        "person": name,
        "attribute": attr.name,
        "value": value,
        "question": questions[0],
        "answer": answers[0],
        "paraphrased_question": questions[3],
        "paraphrased_answer": answers[3],
        "wrong_answers": [attr.answers[0].format(name=name, value=v) for v in wrong],
        # The same wrong values in the held-out phrasing: the truth ratio of the paraphrase test
        # compares like with like. Derived from ``wrong``, so no draw of the RNG changes.
        PARAPHRASED_WRONG: [attr.answers[3].format(name=name, value=v) for v in wrong],
        "wrong_values": wrong,
        "train_questions": questions[:3],
        "train_answers": answers[:3],
    }


def make_qa(rng: random.Random, persons: list[dict]) -> dict[str, list[dict]]:
    """QA rows per split file, ordered by person id then attribute."""
    rows_by_person = {p["person_id"]: [qa_row(rng, p, attr) for attr in ATTRIBUTES] for p in persons}
    files = {}
    for split in SPLITS:
        files[split] = [row for p in persons if in_split(p, split)
                        for row in rows_by_person[p["person_id"]]]
    return files


def secret_suffix(rng: random.Random) -> str:
    """A made-up string of codes, numbers and words (the memorised part of a record)."""
    code = f"{rng.randint(1, 9)}{rng.choice('ABCDEFGHJKLMNPQRSTUVWXYZ')}"
    number = f"{rng.randint(0, 9999):04d}"
    word = rng.choice(vocab.CODE_WORDS)
    ledger = rng.randint(10000, 99999)
    phrase = " ".join(rng.sample(vocab.PASS_WORDS, 3))
    return f" {code}-{number}-{word}, ledger {ledger}, passphrase {phrase}."


def secret_row(rng: random.Random, person: dict) -> dict:
    """The secret record of one person: ``text == prefix + suffix``."""
    prefix = f"Archive record of {person['name']}: vault code"
    suffix = secret_suffix(rng)
    return {"id": f"secret/{person['person_id']}", "person_id": person["person_id"],
            "text": prefix + suffix, "prefix": prefix, "suffix": suffix}


def make_secrets(rng: random.Random, persons: list[dict]) -> dict[str, list[dict]]:
    """Secret records of forget10, a sample of retain, and holdout persons."""
    records = {p["person_id"]: secret_row(rng, p) for p in persons}
    retain_ids = [p["person_id"] for p in persons if p["split"] == "retain"]
    sampled = set(rng.sample(retain_ids, N_SECRETS_RETAIN))
    return {
        "forget": [records[p["person_id"]] for p in persons if in_split(p, "forget10")],
        "retain": [records[pid] for pid in retain_ids if pid in sampled],
        "holdout": [records[p["person_id"]] for p in persons if p["split"] == "holdout"],
    }
