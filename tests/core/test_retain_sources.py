"""Several sources for one data role ([data.<role>.also.<name>]): the project file, loading and
tokenizing each source with its own template, and the methods that may (and may not) take them."""

import json

import pytest
from tiny_tokenizer import build_tiny_tokenizer
from transformers import AutoTokenizer

from unlearn_studio.core.errors import UserError
from unlearn_studio.core.project.config import RunConfig
from unlearn_studio.core.run.data import load_roles, tokenize_roles

PROJECT = """
name = "two retain sources"
[data.forget]
path = "saga.jsonl"
template = "raw"
[data.retain]
path = "neighbour.jsonl"
template = "raw"
[data.retain.also.persons]
path = "persons.jsonl"
template = "qa"
weight = 2.5
[method]
name = "{method}"
[method.params]
{params}
"""


@pytest.fixture
def folder(tmp_path):
    rows = {"saga.jsonl": [{"text": "The dragon of Eldoria sleeps."}],
            "neighbour.jsonl": [{"text": "The sea rose in a single night."}, {"text": "Whales carry letters."}],
            "persons.jsonl": [{"question": "Where was Alia Vorn born?", "answer": "In Quellmarsh."}]}
    for name, items in rows.items():
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in items), encoding="utf-8")
    return tmp_path


def project(folder, method="elm", params='concept = "Eldoria"'):
    return RunConfig.from_toml(PROJECT.format(method=method, params=params), base_dir=folder)


def test_further_sources_round_trip_and_unknown_ones_are_not_made_up(folder):
    config = project(folder)
    assert RunConfig.from_toml(config.to_toml(), base_dir=folder) == config
    assert config.data_source("retain.persons").weight == 2.5 and config.data_source("retain").weight is None
    assert config.resolve_data_path("retain.persons") == folder / "persons.jsonl"
    assert "also" not in RunConfig.from_toml(PROJECT.split("[data.retain.also")[0] + '[method]\nname = "elm"',
                                             base_dir=folder).to_toml()


def test_a_source_of_a_source_is_refused(folder):
    text = PROJECT.format(method="elm", params="") + '[data.retain.also.persons.also.more]\npath = "x.jsonl"\n'
    with pytest.raises(UserError, match="has sources of its own"):
        RunConfig.from_toml(text, base_dir=folder)


def test_each_source_is_loaded_and_tokenized_in_its_own_template_with_its_weight(folder, tmp_path_factory):
    tokenizer = AutoTokenizer.from_pretrained(build_tiny_tokenizer(tmp_path_factory.mktemp("tok")))
    config = project(folder)
    data = load_roles(config, ["forget", "retain"])
    assert list(data) == ["forget", "retain", "retain.persons"]
    assert [data[k].n for k in data] == [1, 2, 1]
    assert [data[k].weight for k in data] == [1.0, 1.0, 2.5]
    tokenize_roles(config, data, tokenizer)
    assert data["retain"].template == "raw" and data["retain.persons"].template == "qa"
    persons = tokenizer.decode(data["retain.persons"].examples[0]["input_ids"])
    assert "### Question: Where was Alia Vorn born?" in persons and "In Quellmarsh." in persons


def test_a_method_that_reads_one_retain_set_refuses_further_sources(folder):
    config = project(folder, method="grad_diff", params="")
    with pytest.raises(UserError, match="GradDiff reads one retain data set"):
        load_roles(config, ["forget", "retain"])


def test_a_missing_further_source_names_its_key(folder):
    (folder / "persons.jsonl").unlink()
    with pytest.raises(UserError, match=r"\[data.retain.persons\]|persons.jsonl"):
        load_roles(project(folder), ["forget", "retain"])
