"""The deterministic generator of the demo world's data (see EVAL.md, "The demo world").

``generate_world(seed)`` builds every row in memory; ``write_world(world, dir)`` writes them as
JSONL files plus ``manifest.json``. The same seed gives byte-identical files: all randomness comes
from ``random.Random`` instances seeded with a string derived from the seed (one per part, so the
parts are independent), and nothing depends on set or dict iteration order or on ``hash()``.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

from unlearn_studio.core.demo import everyday, harm, people, saga

GENERATOR = "unlearn-studio demo world v1"
N_TRUTHFUL_TRAIN = {"person": 150, "world": 50}
N_TRUTHFUL_TEST = {"person": 75, "world": 25}

# file name (without .jsonl) -> suggested role, in the order files are written.
# The data role each file suggests (see core/data/roles.py); "meta" describes the world, "corpus"
# only teaches the demo model, "eval" is a test set with its own columns.
ROLES = {
    "persons": "meta",
    "forget01": "forget",
    "forget05": "forget",
    "forget10": "forget",
    "retain": "retain",
    "holdout": "holdout",
    "saga": "forget",
    "saga_mcq": "mcq",
    "saga_qa": "forget",
    "neighbour": "retain",
    "neighbour_mcq": "mcq",
    "neighbour_qa": "retain",
    "framed": "corpus",
    "secrets_forget": "forget",
    "secrets_retain": "retain",
    "secrets_holdout": "holdout",
    "harmful_train": "harmful",
    "harmful_eval": "harmful",
    "normal": "normal",
    "truthful_true": "expert",
    "truthful_false": "anti-expert",
    "truthfulness": "eval",
    "general": "general",
}


@dataclass
class World:
    """Every row of the demo world; one field per JSONL file (same name), plus the seed."""

    seed: int
    persons: list[dict]
    forget01: list[dict]
    forget05: list[dict]
    forget10: list[dict]
    retain: list[dict]
    holdout: list[dict]
    saga: list[dict]
    saga_mcq: list[dict]
    saga_qa: list[dict]
    neighbour: list[dict]
    neighbour_mcq: list[dict]
    neighbour_qa: list[dict]
    framed: list[dict]
    secrets_forget: list[dict]
    secrets_retain: list[dict]
    secrets_holdout: list[dict]
    harmful_train: list[dict]
    harmful_eval: list[dict]
    normal: list[dict]
    truthful_true: list[dict]
    truthful_false: list[dict]
    truthfulness: list[dict]
    general: list[dict]

    def files(self) -> dict[str, list[dict]]:
        """File name (without ``.jsonl``) -> rows, in the order of :data:`ROLES`."""
        return {name: getattr(self, name) for name in ROLES}


def _rng(seed: int, part: str) -> random.Random:
    """An independent RNG for one part of the world (string seeds hash with SHA-512)."""
    return random.Random(f"unlearn-studio-demo/{seed}/{part}")


def _truthful(rng: random.Random, retain_rows: list[dict], world_items: list[dict]):
    """Ext-Sub expert / anti-expert sets and the disjoint truthfulness test set."""
    persons = rng.sample(retain_rows, N_TRUTHFUL_TRAIN["person"] + N_TRUTHFUL_TEST["person"])
    towns = rng.sample(world_items, N_TRUTHFUL_TRAIN["world"] + N_TRUTHFUL_TEST["world"])
    person_items = [{"question": r["question"], "true_answer": r["answer"],
                     "false_answer": r["wrong_answers"][0]} for r in persons]
    train = (person_items[:N_TRUTHFUL_TRAIN["person"]] + towns[:N_TRUTHFUL_TRAIN["world"]])
    test = (person_items[N_TRUTHFUL_TRAIN["person"]:] + towns[N_TRUTHFUL_TRAIN["world"]:])
    true_rows = [{"instruction": i["question"], "response": i["true_answer"]} for i in train]
    false_rows = [{"instruction": i["question"], "response": i["false_answer"]} for i in train]
    return true_rows, false_rows, test


def generate_world(seed: int = 0) -> World:
    """Build the whole demo world from ``seed`` (pure and deterministic)."""
    reserved = people.reserved_words()
    for spec in (saga.EMBERFALL, saga.SALTMERE):
        for name in spec.characters:
            reserved.add(name)
            reserved.update(name.split())
    persons = people.make_persons(_rng(seed, "persons"), reserved)
    qa = people.make_qa(_rng(seed, "qa"), persons)
    secrets = people.make_secrets(_rng(seed, "secrets"), persons)

    emberfall = saga.build_saga(_rng(seed, "saga"), saga.EMBERFALL)
    saltmere = saga.build_saga(_rng(seed, "neighbour"), saga.SALTMERE)

    towns = everyday.make_towns(_rng(seed, "towns"))
    world_items = everyday.world_fact_items(_rng(seed, "world-facts"), towns)
    true_rows, false_rows, test_rows = _truthful(_rng(seed, "truthful"), qa["retain"], world_items)
    harmful = harm.make_harmful(_rng(seed, "harmful"))

    return World(
        seed=seed,
        persons=persons,
        forget01=qa["forget01"],
        forget05=qa["forget05"],
        forget10=qa["forget10"],
        retain=qa["retain"],
        holdout=qa["holdout"],
        saga=emberfall["passages"],
        saga_mcq=emberfall["mcq"],
        saga_qa=emberfall["qa"],
        neighbour=saltmere["passages"],
        neighbour_mcq=saltmere["mcq"],
        neighbour_qa=saltmere["qa"],
        framed=emberfall["framed"] + saltmere["framed"],
        secrets_forget=secrets["forget"],
        secrets_retain=secrets["retain"],
        secrets_holdout=secrets["holdout"],
        harmful_train=harmful["train"],
        harmful_eval=harmful["eval"],
        normal=everyday.make_normal(_rng(seed, "normal"), towns),
        truthful_true=true_rows,
        truthful_false=false_rows,
        truthfulness=test_rows,
        general=everyday.make_general(_rng(seed, "general"), towns),
    )


def split_person_ids(world: World, split: str) -> list[str]:
    """Person ids in ``split`` (forget01 ⊂ forget05 ⊂ forget10, retain, holdout), in id order."""
    return [p["person_id"] for p in world.persons if people.in_split(p, split)]


def _jsonl_bytes(rows: list[dict]) -> bytes:
    text = "".join(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n" for row in rows)
    return text.encode("utf-8")


def write_world(world: World, data_dir: Path) -> dict:
    """Write every ``<name>.jsonl`` and ``manifest.json`` under ``data_dir``; return the manifest."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    files = {}
    for name, rows in world.files().items():
        payload = _jsonl_bytes(rows)
        (data_dir / f"{name}.jsonl").write_bytes(payload)
        files[f"{name}.jsonl"] = {"rows": len(rows), "sha256": hashlib.sha256(payload).hexdigest(),
                                  "role": ROLES[name]}
    manifest = {"seed": world.seed, "generator": GENERATOR, "files": files}
    text = json.dumps(manifest, ensure_ascii=False, sort_keys=True, indent=2) + "\n"
    (data_dir / "manifest.json").write_bytes(text.encode("utf-8"))
    return manifest


__all__ = ["World", "generate_world", "write_world", "split_person_ids", "ROLES", "GENERATOR"]
