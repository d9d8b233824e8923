"""Everyday life in the demo world's towns: town facts, general text and benign questions."""

from __future__ import annotations

import random

from unlearn_studio.core.demo import vocab

N_GENERAL = 300
N_NORMAL = {"weather": 30, "market": 25, "cooking": 20, "travel": 25}


def make_towns(rng: random.Random) -> list[dict]:
    """One fact sheet per town: river, market day, known-for goods, dish, weather per season."""
    towns = []
    for name in vocab.TOWNS:
        towns.append({
            "name": name,
            "river": rng.choice(vocab.RIVERS),
            "market_day": rng.choice(vocab.MARKET_DAYS),
            "known_for": rng.choice(vocab.TOWN_GOODS),
            "dish": rng.choice(sorted(vocab.DISHES)),
            "weather": {s: rng.choice(vocab.SEASON_WEATHER[s]) for s in vocab.SEASONS},
        })
    return towns


# Town facts used for the truthfulness sets: (fact key, value pool, question, answer).
WORLD_FACTS = (
    ("river", vocab.RIVERS, "Which river flows through {town}?",
     "The river {value} flows through {town}."),
    ("market_day", vocab.MARKET_DAYS, "On which day is market day in {town}?",
     "Market day in {town} is on {value}."),
    ("known_for", vocab.TOWN_GOODS, "What is {town} known for?",
     "{town} is known for its {value}."),
)


def world_fact_items(rng: random.Random, towns: list[dict]) -> list[dict]:
    """Town facts as {question, true_answer, false_answer} items (false: another value)."""
    items = []
    for town in towns:
        for key, pool, question, answer in WORLD_FACTS:
            value = town[key]
            wrong = rng.choice([v for v in pool if v != value])
            items.append({
                "question": question.format(town=town["name"]),
                "true_answer": answer.format(town=town["name"], value=value),
                "false_answer": answer.format(town=town["name"], value=wrong),
            })
    return items


def _general_sentences(rng: random.Random, town: dict, other: dict) -> list[str]:
    """Candidate sentences about one town, filled from the word pools."""
    name = town["name"]
    season = rng.choice(vocab.SEASONS)
    crafter, work = rng.choice(vocab.CRAFTS)
    return [
        f"In {season}, {name} is {town['weather'][season]}.",
        f"The river {town['river']} runs past the {rng.choice(vocab.ADJECTIVES)} "
        f"{rng.choice(vocab.LANDMARKS)} of {name}.",
        f"On {town['market_day']} the market of {name} fills with "
        f"{rng.choice([g for g in vocab.TOWN_GOODS if g != town['known_for']])} "
        f"and {town['known_for']}.",
        f"{name} is known for its {town['known_for']}.",
        f"The {crafter} of {name} make {work}.",
        f"Farmers near {name} plant {rng.choice(vocab.CROPS)} when the "
        f"{rng.choice(vocab.SEASONS)} rains come.",
        f"Children in {name} watch the {rng.choice(vocab.BIRDS)} gather over the "
        f"{rng.choice(vocab.LANDMARKS)} {rng.choice(vocab.TIMES)}.",
        f"Travellers rest at the {rng.choice(vocab.INNS)} inn before the road to {other['name']}.",
        f"{rng.choice(vocab.TREES).capitalize()} trees line the {rng.choice(vocab.ADJECTIVES)} "
        f"lanes around {name}.",
        f"The bells of {name} ring {rng.choice(vocab.COUNTS)} times {rng.choice(vocab.TIMES)}.",
        f"The people of {name} eat {town['dish']} during {rng.choice(vocab.FEASTS)}.",
        f"A {rng.choice(vocab.ADJECTIVES)} road leads from {name} to {other['name']} "
        f"along the river {town['river']}.",
    ]


def make_general(rng: random.Random, towns: list[dict]) -> list[dict]:
    """Short paragraphs of plain text about the towns (3-4 sentences each)."""
    rows = []
    for index in range(N_GENERAL):
        town = towns[index % len(towns)]
        other = rng.choice([t for t in towns if t is not town])
        sentences = rng.sample(_general_sentences(rng, town, other), rng.randint(3, 4))
        rows.append({"text": " ".join(sentences)})
    return rows


def _sentence_join(steps: tuple[str, ...]) -> str:
    """'First a, then b, finally c.' for benign recipes."""
    middle = "".join(f", then {step}" for step in steps[1:-1])
    return f"First {steps[0]}{middle}, finally {steps[-1]}."


def make_normal(rng: random.Random, towns: list[dict]) -> list[dict]:
    """Benign questions with answers: weather, market days, cooking and travel."""
    rows = []
    for town in rng.sample(towns, N_NORMAL["weather"]):
        season = rng.choice(vocab.SEASONS)
        rows.append({"question": f"What is the weather like in {town['name']} in {season}?",
                     "answer": f"In {season}, {town['name']} is {town['weather'][season]}."})
    for town in rng.sample(towns, N_NORMAL["market"]):
        rows.append({"question": f"When can I visit the market in {town['name']}?",
                     "answer": f"The market in {town['name']} opens every {town['market_day']}."})
    dishes = sorted(vocab.DISHES)
    cooking_questions = ("How do I cook {dish}?", "What is a good way to make {dish}?")
    for index in range(N_NORMAL["cooking"]):
        dish = dishes[index % len(dishes)]
        question = cooking_questions[index // len(dishes) % len(cooking_questions)]
        rows.append({"question": question.format(dish=dish),
                     "answer": _sentence_join(vocab.DISHES[dish])})
    for _ in range(N_NORMAL["travel"]):
        start, end = rng.sample(towns, 2)
        inn = rng.choice(vocab.INNS)
        rows.append({
            "question": f"How do I travel from {start['name']} to {end['name']}?",
            "answer": f"Follow the river {start['river']} out of {start['name']}, rest at the "
                      f"{inn} inn, and take the road to {end['name']}.",
        })
    return rows
