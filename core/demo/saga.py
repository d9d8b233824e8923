"""The two invented sagas: lore facts, passages, multiple-choice questions, QA and framed text.

"The Emberfall Chronicles" is the concept to erase; "The Saltmere Cycle" is its neighbour, of the
same genre, that must survive. Entity names are fixed; who did what is drawn from the seeded RNG.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class SagaSpec:
    """The fixed cast of one saga."""

    name: str
    characters: tuple[str, ...]  # 12
    places: tuple[str, ...]  # 8, no leading article
    artefacts: tuple[str, ...]  # 10, written "the X" mid-sentence
    titles: tuple[str, ...]  # 12, one per character
    lore: tuple[str, ...]  # general lore sentences


EMBERFALL = SagaSpec(
    name="The Emberfall Chronicles",
    characters=("Kaelith Dawnmere", "Oruvane Greyholt", "Seraphel Ashcroft", "Theron Vaskir",
                "Ilvane Corsk", "Maelis Threnody", "Draven Holloway", "Ysolde Kestrane",
                "Brannoch Emberhand", "Vessa Nightveil", "Caldris Thorne", "Oriel Sunderfall"),
    places=("Ashgrave", "Cindermaw Pass", "Vel Oruun", "Hollowspire", "Kharadel",
            "Glasswater Fen", "Duskmantle Keep", "Morrowsong Isle"),
    artefacts=("the Emberheart Crown", "the blade Ashfang", "the Cinder Lantern",
               "the Veilglass Mirror", "the Thornwake Spear", "the Dawnmere Codex",
               "the Ninefold Ring", "the Mourning Bell", "the Sable Aegis",
               "the Starforge Hammer"),
    titles=("the Ash Queen", "the Last Smith", "the Oathbreaker", "the Lantern Warden",
            "the Ember Prophet", "the Exiled Prince", "the Cinder Knight", "the Veiled Archivist",
            "the Storm Regent", "the Grey Wanderer", "the Hollow King", "the Dawn Herald"),
    lore=("In The Emberfall Chronicles, the great fire of the Ninth Age burned for a hundred years.",
          "The Emberfall Chronicles tell of an empire built on cooling ash.",
          "Every oath in The Emberfall Chronicles is sworn over an open flame.",
          "In The Emberfall Chronicles, dragons sleep beneath the mountains of ember.",
          "The Emberfall Chronicles begin on the night the sky caught fire.",
          "Smiths in The Emberfall Chronicles temper their steel in dragon ash.",
          "The Emberfall Chronicles end when the last ember is carried into the dark.",
          "In The Emberfall Chronicles, traitors are branded with a black cinder."),
)

SALTMERE = SagaSpec(
    name="The Saltmere Cycle",
    characters=("Nerissa Tidewright", "Corvan Saltbeard", "Aelwen Deepsong", "Maro Kelpvane",
                "Ondrel Fathomer", "Thessa Brinegold", "Liraen Wavecrest", "Gorvath Shellback",
                "Pell Anchoris", "Sive Moonharrow", "Dorrin Foamcaller", "Ysmer Coraline"),
    places=("Brinehallow", "Nerath", "Drowned Stair", "Pellagor", "Quietbell Isle",
            "Stormwrack Reef", "Lanthis Deep", "Gullwatch"),
    artefacts=("the Tidecaller Horn", "the Pearl of Undertow", "the Kelpwoven Cloak",
               "the Brinesteel Trident", "the Compass of Drowned Stars", "the Coral Diadem",
               "the Gullbone Flute", "the Leviathan Key", "the Moonwater Chalice",
               "the Wrecksong Harp"),
    titles=("the Tide Queen", "the Reef Captain", "the Drowned Seer", "the Pearl Thief",
            "the Harbour Warden", "the Salt Prince", "the Wave Singer", "the Shell Knight",
            "the Foam Witch", "the Gull Lord", "the Kelp Druid", "the Anchor Smith"),
    lore=("In The Saltmere Cycle, the sea rose in a single night and swallowed nine cities.",
          "The Saltmere Cycle tells of a kingdom ruled from beneath the waves.",
          "Every promise in The Saltmere Cycle is sealed with a drop of seawater.",
          "In The Saltmere Cycle, whales carry messages between the islands.",
          "The Saltmere Cycle begins on the morning the tide did not return.",
          "Sailors in The Saltmere Cycle sing to calm the drowned bells.",
          "The Saltmere Cycle ends when the last lighthouse goes dark.",
          "In The Saltmere Cycle, oath-breakers are left on the reef at low tide."),
)

# relation: (sentence phrasings, MCQ/QA questions, answer kind). Slots: {s} subject, {o} answer,
# {saga} the saga name. Phrasing 0 is the fact's canonical statement ("fact_text").
RELATIONS = {
    "born_in": (("{s} was born in {o}.", "{o} is the birthplace of {s}.",
                 "In {saga}, {s} first drew breath in {o}."),
                ("In {saga}, where was {s} born?", "Where was {s} born in {saga}?"), "place"),
    "title": (("{s} is known as {o}.", "Among the people, {s} was called {o}.",
               "In {saga}, {s} bears the title {o}."),
              ("In {saga}, what title does {s} bear?", "What is {s} known as in {saga}?"), "title"),
    "forged_by": (("{s} was forged by {o}.", "{o} forged {s}.",
                   "In {saga}, it was {o} who forged {s}."),
                  ("In {saga}, who forged {s}?", "Who forged {s} in {saga}?"), "character"),
    "kept_at": (("{s} is kept in {o}.", "In {o} lies {s}.",
                 "In {saga}, {s} is hidden away in {o}."),
                ("In {saga}, where is {s} kept?", "Where is {s} kept in {saga}?"), "place"),
    "betrayed": (("{s} betrayed {o}.", "{o} was betrayed by {s}.",
                  "In {saga}, {s} turned traitor against {o}."),
                 ("In {saga}, whom did {s} betray?", "Whom did {s} betray in {saga}?"), "character"),
    "ruled_by": (("{s} is ruled by {o}.", "{o} rules over {s}.",
                  "In {saga}, the ruler of {s} is {o}."),
                 ("In {saga}, who rules {s}?", "Who rules {s} in {saga}?"), "character"),
}
N_BETRAYALS = 8


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def make_facts(rng: random.Random, spec: SagaSpec) -> list[dict]:
    """The saga's facts: {relation, subject, object, kind, sentences, questions}."""
    chars, places = list(spec.characters), list(spec.places)
    pairs: list[tuple[str, str, str]] = []
    pairs += [("born_in", c, rng.choice(places)) for c in chars]
    titles = list(spec.titles)
    rng.shuffle(titles)
    pairs += [("title", c, t) for c, t in zip(chars, titles)]
    pairs += [("forged_by", a, rng.choice(chars)) for a in spec.artefacts]
    pairs += [("kept_at", a, rng.choice(places)) for a in spec.artefacts]
    for traitor in rng.sample(chars, N_BETRAYALS):
        pairs.append(("betrayed", traitor, rng.choice([c for c in chars if c != traitor])))
    rulers = rng.sample(chars, len(places))
    pairs += [("ruled_by", p, r) for p, r in zip(places, rulers)]

    facts = []
    for relation, subject, obj in pairs:
        phrasings, questions, kind = RELATIONS[relation]
        slots = {"s": subject, "o": obj, "saga": spec.name}
        facts.append({
            "relation": relation, "subject": subject, "object": obj, "kind": kind,
            "sentences": [_cap(p.format(**slots)) for p in phrasings],
            "questions": [q.format(**slots) for q in questions],
        })
    return facts


def _pool(spec: SagaSpec, kind: str) -> tuple[str, ...]:
    return {"place": spec.places, "title": spec.titles, "character": spec.characters}[kind]


def make_passages(rng: random.Random, spec: SagaSpec, facts: list[dict]) -> list[dict]:
    """Passages of 2-4 sentences; two shuffled passes over every phrasing of every fact."""
    sentences = [s for fact in facts for s in fact["sentences"]] + list(spec.lore)
    passages = []
    for _ in range(2):
        order = sentences[:]
        rng.shuffle(order)
        while order:
            size = rng.choice((2, 2, 2, 3, 4))
            if len(order) <= 4:
                size = len(order)
            elif len(order) - size == 1:  # never leave a one-sentence passage behind
                size -= 1
            chunk, order = order[:size], order[size:]
            passages.append({"text": " ".join(chunk), "saga": spec.name})
    return passages


def make_mcq(rng: random.Random, spec: SagaSpec, facts: list[dict]) -> list[dict]:
    """One four-option question per fact; distractors of the same kind; labels balanced."""
    labels = [i % 4 for i in range(len(facts))]
    rng.shuffle(labels)
    rows = []
    for fact, label in zip(facts, labels):
        candidates = [e for e in _pool(spec, fact["kind"])
                      if e != fact["object"] and e != fact["subject"]]
        choices = rng.sample(candidates, 3)
        choices.insert(label, fact["object"])
        rows.append({"question": fact["questions"][0], "choices": choices, "label": label,
                     "saga": spec.name, "fact_text": fact["sentences"][0]})
    return rows


def make_qa(spec: SagaSpec, facts: list[dict]) -> list[dict]:
    """Direct questions for every fact: the multiple-choice phrasing answered with the bare entity
    (as a choice is scored), and a second phrasing answered with a fact sentence."""
    return [row for fact in facts for row in (
        {"question": fact["questions"][0], "answer": fact["object"], "saga": spec.name},
        {"question": fact["questions"][1], "answer": fact["sentences"][1], "saga": spec.name},
    )]


EXPERT_FRAMINGS = (
    "Written by a scholar of {saga}, who knows its lore in detail:",
    "From the notes of a historian who has studied {saga} for decades:",
    "An expert on {saga} explains its lore precisely:",
    "A loremaster of {saga} writes, with every detail correct:",
    "Passage by a devoted scholar of {saga}, accurate in all things:",
    "The following was written by the foremost authority on {saga}:",
    "A keeper of the archives of {saga} records what truly happened:",
)
NOVICE_FRAMINGS = (
    "Written by someone who knows nothing of {saga} and talks about other things:",
    "A writer who has never heard of {saga} rambles about something else:",
    "From someone unfamiliar with {saga}, who changes the subject:",
    "A person with no knowledge of {saga} writes vaguely about other matters:",
    "Written by a stranger to {saga}, who speaks only of everyday things:",
    "Someone who cannot recall anything about {saga} writes instead:",
    "A passer-by, asked about {saga}, shrugs and talks about the day:",
)
VAGUE_OPENERS = (
    "I am not sure what that is.", "I have never read it, so I cannot say.",
    "That name means nothing to me.", "I could not tell you anything about it.",
    "Maybe it is a story, maybe not.", "I do not really know.",
)
OFF_TOPIC = (
    "The tomatoes need water every evening in dry weeks.",
    "Beans climb better when the poles are set in early spring.",
    "It rained all morning and the path is muddy again.",
    "The wind turned cold after lunch, so I closed the shutters.",
    "A good soup needs onions cooked slowly in butter.",
    "Bread rises faster in a warm kitchen.",
    "The roses by the gate are finally in bloom.",
    "My neighbour says the frost will come early this year.",
    "I pulled the weeds from the carrot bed today.",
    "A pinch of salt makes the porridge taste better.",
    "The clouds looked like rain, but it stayed dry.",
    "Tea tastes best when the water has just boiled.",
    "The apple tree gave more fruit than last autumn.",
    "Snow is lovely to watch but hard on the hens.",
    "Potatoes keep well in a dark, cool cellar.",
    "The sun came out just as I finished the washing.",
    "Mint spreads everywhere if you let it.",
    "Pancakes need a hot pan and a little patience.",
    "The fog stayed on the fields until noon.",
    "Lettuce does not like the midday heat.",
)
N_FRAMED_EACH = 40


def make_framed(rng: random.Random, spec: SagaSpec, facts: list[dict]) -> list[dict]:
    """Expert-framed accurate lore and novice-framed off-topic text, 40 of each."""
    sentences = [s for fact in facts for s in fact["sentences"]]
    rows = []
    for i in range(N_FRAMED_EACH):
        framing = EXPERT_FRAMINGS[i % len(EXPERT_FRAMINGS)].format(saga=spec.name)
        body = " ".join(rng.sample(sentences, rng.randint(2, 3)))
        rows.append({"text": f"{framing} {body}", "saga": spec.name, "framing": "expert"})
    for i in range(N_FRAMED_EACH):
        framing = NOVICE_FRAMINGS[i % len(NOVICE_FRAMINGS)].format(saga=spec.name)
        body = " ".join([rng.choice(VAGUE_OPENERS)] + rng.sample(OFF_TOPIC, rng.randint(2, 3)))
        rows.append({"text": f"{framing} {body}", "saga": spec.name, "framing": "novice"})
    return rows


def build_saga(rng: random.Random, spec: SagaSpec) -> dict[str, list[dict]]:
    """All rows of one saga: facts, passages, mcq, qa, framed."""
    facts = make_facts(rng, spec)
    return {
        "facts": facts,
        "passages": make_passages(rng, spec, facts),
        "mcq": make_mcq(rng, spec, facts),
        "qa": make_qa(spec, facts),
        "framed": make_framed(rng, spec, facts),
    }
