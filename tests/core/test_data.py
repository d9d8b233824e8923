"""The data layer: formats, column mapping, templates with loss masks, validation, `data check`."""

import argparse
import csv
import json
from pathlib import Path

import pytest
import torch
from tiny_tokenizer import build_tiny_tokenizer  # noqa: E402
from transformers import AutoTokenizer

from unlearn_studio.core.cli import data_check
from unlearn_studio.core.data.columns import detect_columns, parse_column_args
from unlearn_studio.core.data.loader import load_dataset_file
from unlearn_studio.core.data.roles import ROLES
from unlearn_studio.core.data.templates import (
    IGNORE_INDEX,
    TruncationWarning,
    collate,
    format_prompt,
    tokenize_example,
)
from unlearn_studio.core.errors import UserError

ROWS = [
    {"question": "Where was Alia Vorn born?", "answer": "Quellmarsh"},
    {"question": "Who mentored Bram Okonde?", "answer": "Sela Tarn"},
    {"question": "What year, with a comma, and \"quotes\"?", "answer": "1912"},
]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}"
    "{% if m.role == 'assistant' %}{{ eos_token }}{% endif %}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return AutoTokenizer.from_pretrained(build_tiny_tokenizer(tmp_path_factory.mktemp("tok")))


@pytest.fixture(scope="module")
def chat_tokenizer(tmp_path_factory):
    folder = build_tiny_tokenizer(tmp_path_factory.mktemp("chat"), chat_template=CHAT_TEMPLATE)
    return AutoTokenizer.from_pretrained(folder)


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def write_csv(path: Path, rows, delimiter=",") -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_fixture(tmp_path: Path, fmt: str, rows) -> Path:
    if fmt == "jsonl":
        return write_jsonl(tmp_path / "data.jsonl", rows)
    if fmt == "json":
        path = tmp_path / "data.json"
        path.write_text(json.dumps(rows, indent=2), encoding="utf-8")
        return path
    if fmt == "csv":
        return write_csv(tmp_path / "data.csv", rows)
    if fmt == "tsv":
        return write_csv(tmp_path / "data.tsv", rows, delimiter="\t")
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = tmp_path / "data.parquet"
        pq.write_table(pa.Table.from_pylist(rows), path)
        return path
    if fmt == "datasets":
        import datasets

        path = tmp_path / "saved"
        datasets.Dataset.from_list(rows).save_to_disk(str(path))
        return path
    raise AssertionError(fmt)


def strip_origin(rows):
    return [{k: v for k, v in row.items() if k != "_origin"} for row in rows]


# --- formats --------------------------------------------------------------------------------

LINES = {"jsonl": [1, 2, 3], "csv": [2, 3, 4], "tsv": [2, 3, 4]}


@pytest.mark.parametrize("fmt", ["jsonl", "json", "csv", "tsv", "parquet", "datasets"])
def test_each_format_reads_the_same_rows(tmp_path, fmt):
    path = write_fixture(tmp_path, fmt, ROWS)
    data = load_dataset_file(path, role="forget")
    assert data.format == fmt
    assert data.kind == "qa"
    assert data.n_rows == 3 and data.report.ok
    assert strip_origin(data.rows) == ROWS
    assert data.columns_used == {"question": "question", "answer": "answer"}
    origins = [row["_origin"] for row in data.rows]
    assert all(Path(origin.file).name == path.name for origin in origins)
    assert [origin.line for origin in origins] == LINES.get(fmt, [0, 1, 2])


def test_explicit_format_and_jsonl_in_a_json_file(tmp_path):
    path = write_jsonl(tmp_path / "data.json", ROWS)  # JSON Lines despite the .json name
    assert load_dataset_file(path, role="forget").format == "jsonl"
    other = write_jsonl(tmp_path / "rows.dat", ROWS)
    assert strip_origin(load_dataset_file(other, role="forget", format="jsonl").rows) == ROWS


def test_csv_multiline_cell_keeps_the_starting_line(tmp_path):
    rows = [{"text": "first"}, {"text": "two\nlines"}, {"text": "third"}]
    data = load_dataset_file(write_csv(tmp_path / "t.csv", rows), role="general")
    assert [row["text"] for row in data.rows] == ["first", "two\nlines", "third"]
    assert [row["_origin"].line for row in data.rows] == [2, 3, 5]


def test_datasets_dict_needs_a_split(tmp_path):
    import datasets

    folder = tmp_path / "dd"
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(ROWS), "test": datasets.Dataset.from_list(ROWS[:1])}
    ).save_to_disk(str(folder))
    with pytest.raises(UserError) as info:
        load_dataset_file(folder, role="forget")
    assert "train" in info.value.problem and "test" in info.value.problem
    assert f"{folder}:train" in info.value.fix
    data = load_dataset_file(f"{folder}:test", role="forget")
    assert strip_origin(data.rows) == ROWS[:1]
    assert data.rows[0]["_origin"].file == f"{folder}:test"
    with pytest.raises(UserError, match="no split 'dev'"):
        load_dataset_file(f"{folder}:dev", role="forget")


def test_text_one_document_per_line(tmp_path):
    path = tmp_path / "general.txt"
    path.write_text("First document.\nSecond document.\nThird document.\n", encoding="utf-8")
    data = load_dataset_file(path, role="general")
    assert data.kind == "text" and data.format == "text"
    assert [row["text"] for row in data.rows] == ["First document.", "Second document.", "Third document."]
    assert [row["_origin"].line for row in data.rows] == [1, 2, 3]
    assert any("one document per line" in note for note in data.report.notes)


def test_text_paragraphs_when_blank_lines(tmp_path):
    path = tmp_path / "saga.txt"
    path.write_text("The saga begins.\nIt goes on.\n\n\nA second part.\n\nThe end.\n", encoding="utf-8")
    data = load_dataset_file(path, role="forget")
    assert data.kind == "text"
    assert [row["text"] for row in data.rows] == ["The saga begins.\nIt goes on.", "A second part.", "The end."]
    assert [row["_origin"].line for row in data.rows] == [1, 5, 7]
    assert any("paragraphs" in note for note in data.report.notes)


# --- columns --------------------------------------------------------------------------------


def test_auto_detects_instruction_response(tmp_path):
    rows = [{"instruction": q["question"], "response": q["answer"], "id": i} for i, q in enumerate(ROWS)]
    data = load_dataset_file(write_jsonl(tmp_path / "x.jsonl", rows), role="expert")
    assert data.columns_used == {"question": "instruction", "answer": "response"}
    assert strip_origin(data.rows) == ROWS
    assert data.columns_ignored == ["id"]


def test_detection_prefers_exact_then_case_insensitive_names():
    assert detect_columns(["Prompt", "Completion"]) == {"question": "Prompt", "answer": "Completion"}
    # Alpaca: the instruction is the question and the input goes with it (joined into the prompt).
    assert detect_columns(["input", "instruction", "output"]) == \
        {"question": "instruction", "answer": "output", "input": "input"}
    assert detect_columns(["input", "output"]) == {"question": "input", "answer": "output"}


def test_explicit_mapping_overrides(tmp_path):
    rows = [{"question": "decoy", "q2": r["question"], "answer": r["answer"]} for r in ROWS]
    path = write_jsonl(tmp_path / "x.jsonl", rows)
    data = load_dataset_file(path, role="forget", columns=parse_column_args(["question=q2"]))
    assert data.columns_used == {"question": "q2", "answer": "answer"}
    assert strip_origin(data.rows) == ROWS


def test_optional_qa_columns(tmp_path):
    rows = [dict(r, paraphrased_answer=f"It is {r['answer']}", perturbed_answer=["A", "B"]) for r in ROWS]
    rows[2]["perturbed_answer"] = []
    data = load_dataset_file(write_jsonl(tmp_path / "tofu.jsonl", rows), role="forget")
    assert data.columns_used["wrong_answers"] == "perturbed_answer"
    assert data.rows[0]["wrong_answers"] == ["A", "B"]
    assert data.rows[0]["paraphrased_answer"] == "It is Quellmarsh"
    assert any("1 of 3 rows have no wrong_answers" in w for w in data.report.warnings)


def test_mcq_rows_from_json_and_csv(tmp_path):
    rows = [
        {"question": "Who holds the crown?", "choices": ["Ana", "Bo", "Cy", "Di"], "answer": 2},
        {"question": "Where is the star?", "choices": ["North", "South"], "answer": 0},
    ]
    data = load_dataset_file(write_jsonl(tmp_path / "m.jsonl", rows), role="mcq")
    assert data.kind == "mcq"
    assert data.columns_used == {"question": "question", "choices": "choices", "label": "answer"}
    assert [row["label"] for row in data.rows] == [2, 0]

    csv_rows = [{"question": "Who?", "options": json.dumps(["Ana", "Bo", "Cy"]), "correct": "B"}]
    data = load_dataset_file(write_csv(tmp_path / "m.csv", csv_rows), role="mcq")
    assert data.rows[0]["choices"] == ["Ana", "Bo", "Cy"] and data.rows[0]["label"] == 1


def test_role_table_is_complete():
    assert set(ROLES) == {"forget", "retain", "holdout", "general", "expert", "anti-expert",
                          "harmful", "normal", "mcq"}
    assert ROLES["forget"].kinds == ("qa", "text") and ROLES["general"].kinds == ("text",)
    assert ROLES["expert"].kinds == ("qa",) and ROLES["mcq"].kinds == ("mcq",)


# --- templates ------------------------------------------------------------------------------


def labelled(example):
    return [t for t, l in zip(example["input_ids"], example["labels"]) if l != IGNORE_INDEX]


def test_qa_template_masks_the_prompt(tokenizer):
    row = ROWS[0]
    example = tokenize_example(row, "qa", tokenizer, 128)
    ids, labels = example["input_ids"], example["labels"]
    first = next(i for i, l in enumerate(labels) if l != IGNORE_INDEX)
    assert all(l == IGNORE_INDEX for l in labels[:first])
    assert labels[first:] == ids[first:]  # answer tokens keep their ids, through EOS
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(labelled(example)).strip() == row["answer"] + tokenizer.eos_token
    prompt = tokenizer.decode(ids[:first], skip_special_tokens=True)
    assert prompt == f"### Question: {row['question']}\n### Answer:"
    assert format_prompt(row["question"], "qa") == prompt
    assert example["attention_mask"] == [1] * len(ids)


def test_user_assistant_and_raw_templates(tokenizer):
    example = tokenize_example(ROWS[1], "user-assistant", tokenizer, 128)
    text = tokenizer.decode(example["input_ids"], skip_special_tokens=True)
    assert text == "<|user|>\nWho mentored Bram Okonde?\n<|assistant|>\nSela Tarn"
    assert tokenizer.decode(labelled(example)).strip() == "Sela Tarn</s>"

    raw = tokenize_example({"text": "Plain general text."}, "auto", tokenizer, 128)
    assert raw["labels"] == raw["input_ids"]
    assert tokenizer.decode(raw["input_ids"]) == "<s>Plain general text.</s>"


def test_collate_pads_right_and_keeps_eos_labels(tokenizer):
    pad = tokenizer.eos_token_id  # padding with a real token id: masks must not come from ids
    examples = [tokenize_example(row, "qa", tokenizer, 128) for row in ROWS[:2]]
    batch = collate(examples, pad_token_id=pad)
    lengths = [len(e["input_ids"]) for e in examples]
    assert batch["input_ids"].shape == (2, max(lengths)) and batch["input_ids"].dtype == torch.long
    for i, n in enumerate(lengths):
        assert batch["attention_mask"][i, :n].eq(1).all() and batch["attention_mask"][i, n:].eq(0).all()
        assert batch["labels"][i, n:].eq(IGNORE_INDEX).all()
        assert batch["input_ids"][i, n:].eq(pad).all()
        # The answer's own EOS (same id as the padding) is still trained.
        assert batch["labels"][i, n - 1].item() == pad == batch["input_ids"][i, n - 1].item()
    assert lengths[0] != lengths[1]


def test_eos_inside_answer_stays_a_label(tokenizer):
    row = {"question": "Say it", "answer": "done </s> twice"}
    example = tokenize_example(row, "qa", tokenizer, 128)
    batch = collate([example, tokenize_example(ROWS[0], "qa", tokenizer, 128)], tokenizer.eos_token_id)
    inner = [i for i, t in enumerate(example["input_ids"][:-1]) if t == tokenizer.eos_token_id]
    assert inner and all(batch["labels"][0, i].item() == tokenizer.eos_token_id for i in inner)


def test_truncation_cuts_the_prompt_from_the_left(tokenizer):
    row = {"question": "one two three four five six seven eight nine ten " * 4, "answer": "Quellmarsh"}
    full = tokenize_example(row, "qa", tokenizer, 512)
    n_answer = len(labelled(full))
    warnings = []
    cut = tokenize_example(row, "qa", tokenizer, 20, warnings=warnings)
    assert len(cut["input_ids"]) == 20 and not warnings
    assert labelled(cut) == labelled(full)  # the whole answer survives
    assert cut["input_ids"][0] == tokenizer.bos_token_id  # BOS is kept
    assert cut["input_ids"][-n_answer:] == full["input_ids"][-n_answer:]
    assert cut["input_ids"][1:20 - n_answer] == full["input_ids"][len(full["input_ids"]) - 19:-n_answer]


def test_truncation_warns_when_the_answer_is_cut(tokenizer):
    row = {"question": "Count", "answer": "one two three four five six seven eight nine ten " * 3}
    warnings = []
    cut = tokenize_example(row, "qa", tokenizer, 16, warnings=warnings)
    assert len(cut["input_ids"]) == 16
    assert len(warnings) == 1 and "answer cut" in warnings[0]
    assert cut["labels"][0] == IGNORE_INDEX and labelled(cut)  # some prompt and some answer remain
    with pytest.warns(TruncationWarning):
        tokenize_example(row, "qa", tokenizer, 16)
    text = tokenize_example({"text": row["answer"]}, "raw", tokenizer, 8, warnings=warnings)
    assert len(text["input_ids"]) == 8 and "text cut" in warnings[-1]


def test_chat_template(chat_tokenizer):
    row = ROWS[0]
    example = tokenize_example(row, "auto", chat_tokenizer, 128)  # auto picks the chat template
    text = chat_tokenizer.decode(example["input_ids"])
    assert text.startswith("<|user|>\nWhere was Alia Vorn born?<|assistant|>\n")
    assert chat_tokenizer.decode(labelled(example)) == "Quellmarsh</s>"
    prompt = format_prompt(row["question"], "chat", chat_tokenizer)
    first = example["labels"].index(next(l for l in example["labels"] if l != IGNORE_INDEX))
    assert chat_tokenizer.decode(example["input_ids"][:first]) == prompt


def test_chat_template_needs_one(tokenizer):
    with pytest.raises(UserError, match="no chat template"):
        tokenize_example(ROWS[0], "chat", tokenizer, 64)
    with pytest.raises(UserError, match="raw template is for text rows"):
        tokenize_example(ROWS[0], "raw", tokenizer, 64)


def test_mcq_row_tokenizes_with_lettered_choices(tokenizer):
    row = {"question": "Who?", "choices": ["Ana", "Bo"], "label": 1}
    example = tokenize_example(row, "qa", tokenizer, 64)
    assert "A. Ana\nB. Bo" in tokenizer.decode(example["input_ids"])
    assert tokenizer.decode(labelled(example)).strip() == "Bo</s>"


class SlowTokenizer:
    """A fast tokenizer seen as slow: no offsets, so the prefix-comparison path is used."""

    is_fast = False

    def __init__(self, inner):
        self._inner = inner

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": self._inner(text, add_special_tokens=add_special_tokens)["input_ids"]}

    def __getattr__(self, name):
        return getattr(self._inner, name)


def test_slow_tokenizer_boundary_matches_offsets(tokenizer, chat_tokenizer):
    for row in ROWS:
        assert tokenize_example(row, "qa", SlowTokenizer(tokenizer), 128) == \
            tokenize_example(row, "qa", tokenizer, 128)
        assert tokenize_example(row, "chat", SlowTokenizer(chat_tokenizer), 128) == \
            tokenize_example(row, "chat", chat_tokenizer, 128)


# --- bad input ------------------------------------------------------------------------------


def test_missing_path(tmp_path):
    with pytest.raises(UserError, match="not found") as info:
        load_dataset_file(tmp_path / "nope.jsonl", role="forget")
    assert "nope.jsonl" in str(info.value)


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_file(tmp_path, content):
    path = tmp_path / "empty.jsonl"
    path.write_text(content)
    with pytest.raises(UserError, match="no rows") as info:
        load_dataset_file(path, role="forget")
    assert str(path) in info.value.problem


def test_malformed_jsonl_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(ROWS[0]) + "\n" + '{"question": "x", "answer": }\n' + json.dumps(ROWS[1]) + "\n")
    with pytest.raises(UserError) as info:
        load_dataset_file(path, role="forget")
    assert f"{path}:2: malformed JSON" in info.value.problem
    data = load_dataset_file(path, role="forget", strict=False)
    assert data.n_rows == 2 and data.n_read == 3
    assert [(e.file, e.line) for e in data.report.errors] == [(str(path), 2)]


def test_missing_mapped_column(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", ROWS)
    with pytest.raises(UserError) as info:
        load_dataset_file(path, role="forget", columns={"question": "prompt_text"})
    problem = info.value.problem
    assert "'prompt_text'" in problem and str(path) in problem and "question, answer" in problem


def test_file_without_columns_for_the_role(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("just text\n")
    with pytest.raises(UserError, match="expert") as info:
        load_dataset_file(path, role="expert")
    assert str(path) in info.value.problem and "--column" in info.value.fix


def test_unknown_role_and_format(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", ROWS)
    with pytest.raises(UserError, match="Unknown data role"):
        load_dataset_file(path, role="forgettable")
    with pytest.raises(UserError, match="Unknown data format"):
        load_dataset_file(path, role="forget", format="xml")


def test_non_utf8_file(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("question,answer\nOù est né Zoë?,Quellmarsh\n".encode("latin-1"))
    with pytest.raises(UserError) as info:
        load_dataset_file(path, role="forget")
    error = info.value
    assert str(path) in error.problem and "not UTF-8" in error.problem and "line 2" in error.problem
    assert "UTF-8" in error.fix


def test_damaged_line_in_a_utf8_file(tmp_path):
    path = tmp_path / "mixed.jsonl"
    good = (json.dumps({"question": "Où?", "answer": "Zoë"}, ensure_ascii=False) + "\n").encode()
    damaged = b'{"question": "Caf\xe9?", "answer": "x"}\n'
    path.write_bytes(good + damaged + good)
    data = load_dataset_file(path, role="forget", strict=False)
    assert data.n_rows == 2
    [error] = data.report.errors
    assert error.line == 2 and "not UTF-8" in error.problem
    assert f"byte offset {len(good) + 17}" in error.problem


def test_row_errors_in_report_mode(tmp_path):
    rows = [
        ROWS[0],
        {"question": "", "answer": "x"},
        {"question": "q", "answer": ["a", "list"]},
        {"question": "q"},
        ROWS[1],
    ]
    path = write_jsonl(tmp_path / "rows.jsonl", rows)
    with pytest.raises(UserError) as info:
        load_dataset_file(path, role="forget")
    assert f"{path}:2: question: empty" in info.value.problem
    assert "3 bad rows" in info.value.problem

    data = load_dataset_file(path, role="forget", strict=False)
    assert strip_origin(data.rows) == ROWS[:2]
    assert [str(e) for e in data.report.errors] == [
        f"{path}:2: question: empty",
        f"{path}:3: answer: wrong type: expected text, found a list",
        f"{path}:4: missing column answer",
    ]


def test_mcq_row_errors(tmp_path):
    rows = [
        {"question": "ok", "choices": ["a", "b"], "label": 1},
        {"question": "q", "choices": ["only one"], "label": 0},
        {"question": "q", "choices": ["a", "b"], "label": 5},
        {"question": "q", "choices": "a, b", "label": 0},
    ]
    data = load_dataset_file(write_jsonl(tmp_path / "m.jsonl", rows), role="mcq", strict=False)
    assert data.n_rows == 1
    problems = [(e.line, e.problem) for e in data.report.errors]
    assert problems[0][0] == 2 and "at least 2" in problems[0][1]
    assert problems[1][0] == 3 and "out of range" in problems[1][1]
    assert problems[2][0] == 4 and "wrong type" in problems[2][1]


# --- data check -----------------------------------------------------------------------------


def run_check(argv):
    parser = argparse.ArgumentParser()
    data_check.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["data", "check", *argv])
    return args.handler(args)


def test_data_check_valid(tmp_path, tokenizer, capsys):
    tok_dir = tmp_path / "tok"
    tokenizer.save_pretrained(tok_dir)
    rows = [{"prompt": r["question"], "completion": r["answer"]} for r in ROWS]
    path = write_jsonl(tmp_path / "forget.jsonl", rows)
    code = run_check([str(path), "--role", "forget", "--tokenizer", str(tok_dir), "--rows", "2"])
    out = capsys.readouterr().out
    assert code == 0
    assert "Format:   jsonl" in out
    assert "question <- prompt, answer <- completion" in out
    assert "forget.jsonl:1" in out and "Where was Alia Vorn born?" in out
    assert "«Quellmarsh</s>»" in out or "« Quellmarsh</s>»" in out
    assert "### Question: Who mentored Bram Okonde?" in out
    assert "Result: valid" in out


def test_data_check_invalid_lists_rows(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(data_check, "_default_tokenizer_dir", lambda: None)
    path = tmp_path / "rows.csv"
    path.write_text("instruction,output\nWho?,Ana\n,empty question\n", encoding="utf-8")
    code = run_check([str(path), "--role", "expert", "--column", "answer=output"])
    out = capsys.readouterr().out
    assert code == 2
    assert f"{path}:3: question (column 'instruction'): empty" in out
    assert "Tokenization: skipped" in out
    assert "Result: invalid" in out


def test_data_check_whole_file_error_raises(tmp_path):
    with pytest.raises(UserError, match="not found"):
        run_check([str(tmp_path / "missing.jsonl"), "--role", "forget"])


def test_json_wrapper_object_and_single_object(tmp_path):
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"version": 1, "data": ROWS}))
    assert strip_origin(load_dataset_file(wrapped, role="forget").rows) == ROWS
    single = tmp_path / "single.json"
    single.write_text(json.dumps({"question": "q", "choices": ["a", "b"], "label": 0}))
    with pytest.raises(UserError, match="list of row objects"):
        load_dataset_file(single, role="mcq")
    broken = tmp_path / "broken.json"
    broken.write_text('[\n  {"question": "q",\n   "answer": }\n]')
    with pytest.raises(UserError, match="line 3"):
        load_dataset_file(broken, role="forget")
