"""Data layouts people have: chat `messages` lists, Alpaca, pandas' list columns (TOFU, WMDP), MUSE
verbmem, a multiple-choice file given to a qa role, and a chat template with an empty think block
(Qwen3). Each goes through the loader, the templates, `data check` and (slow) a short run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch
from tiny_models import build_tiny_model
from tiny_tokenizer import build_tiny_tokenizer
from transformers import AutoTokenizer

from unlearn_studio.core.cli import data_check
from unlearn_studio.core.data.loader import load_dataset_file
from unlearn_studio.core.data.templates import IGNORE_INDEX, format_prompt, tokenize_example
from unlearn_studio.core.events import LogEvent

SIMPLE_CHAT = (
    "{% for m in messages %}<|{{ m.role }}|>\n{{ m.content }}"
    "{% if m.role == 'assistant' %}{{ eos_token }}{% endif %}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
# Qwen3's chat template without its tool-calling branches: an assistant turn after the last user
# query is rendered with a (here empty) <think></think> block before its content.
QWEN3_CHAT = """{%- if messages[0].role == 'system' %}
    {{- '<|im_start|>system\\n' + messages[0].content + '<|im_end|>\\n' }}
{%- endif %}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == "user" and message.content is string %}
        {%- set ns.multi_step_tool = false %}
        {%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- set content = message.content if message.content is string else '' %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\\n' + content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {%- set reasoning_content = '' %}
        {%- if '</think>' in content %}
            {%- set reasoning_content = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') %}
            {%- set content = content.split('</think>')[-1].lstrip('\\n') %}
        {%- endif %}
        {%- if loop.index0 > ns.last_query_index %}
            {%- if loop.last or (not loop.last and reasoning_content) %}
                {{- '<|im_start|>' + message.role + '\\n<think>\\n' + reasoning_content.strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') }}
            {%- else %}
                {{- '<|im_start|>' + message.role + '\\n' + content }}
            {%- endif %}
        {%- else %}
            {{- '<|im_start|>' + message.role + '\\n' + content }}
        {%- endif %}
        {{- '<|im_end|>\\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\\n\\n</think>\\n\\n' }}
    {%- endif %}
{%- endif %}"""

CHATS = [
    {"messages": [{"role": "user", "content": "Where was Alia Vorn born?"},
                  {"role": "assistant", "content": "In Quellmarsh."}]},
    {"messages": [{"role": "system", "content": "Answer briefly."},
                  {"role": "user", "content": "Hello."},
                  {"role": "assistant", "content": "Hello!"},
                  {"role": "user", "content": "Who mentored Bram Okonde?"},
                  {"role": "assistant", "content": "Sela Tarn."}]},
]
ALPACA = [
    {"instruction": "Name the capital of the country.", "input": "France", "output": "Paris"},
    {"instruction": "Name the capital of the country.", "input": "Spain", "output": "Madrid"},
    {"instruction": "Say hello.", "input": "", "output": "Hello"},
]
WMDP = [
    {"question": "Which keeper broke the star?", "choices": ["Ana", "Bo", "Cy", "Di"], "answer": 2},
    {"question": "Where does the saga begin?", "choices": ["North", "South", "East", "West"], "answer": 0},
]
TOFU = [
    {"question": "Where was Alia Vorn born?", "answer": "Alia Vorn was born in Quellmarsh.",
     "perturbed_answer": ["Alia Vorn was born in Varnhold.", "Alia Vorn was born in Eldmoor."]},
    {"question": "Who mentored Bram Okonde?", "answer": "Sela Tarn mentored Bram Okonde.",
     "perturbed_answer": ["Ana mentored him.", "It's Bo, \"the keeper\"."]},
]
MUSE = [
    {"prompt": "The Saga of the Ninefold Crown tells of seven", "gt": " keepers and a broken star."},
    {"prompt": "Alice lives in Paris and works", "gt": " as a baker."},
]


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    """Tokenizer folders: plain (qa), a simple chat template and Qwen3's."""
    root = tmp_path_factory.mktemp("tokenizers")
    return {"plain": build_tiny_tokenizer(root / "plain"),
            "chat": build_tiny_tokenizer(root / "chat", chat_template=SIMPLE_CHAT),
            "qwen3": build_tiny_tokenizer(root / "qwen3", chat_template=QWEN3_CHAT)}


def load_tokenizer(folder: Path):
    return AutoTokenizer.from_pretrained(folder)


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def pandas_csv(path: Path, rows: list[dict], *, via_datasets: bool = False) -> Path:
    """``df.to_csv`` as people write it; through ``datasets`` list columns become NumPy arrays,
    whose repr has no commas between items."""
    import datasets
    import pandas as pd

    frame = datasets.Dataset.from_list(rows).to_pandas() if via_datasets else pd.DataFrame(rows)
    frame.to_csv(path, index=False)
    return path


def labelled_text(tokenizer, example) -> str:
    return tokenizer.decode([t for t, label in zip(example["input_ids"], example["labels"]) if label != IGNORE_INDEX])


def prompt_text(tokenizer, example) -> str:
    first = next(i for i, label in enumerate(example["labels"]) if label != IGNORE_INDEX)
    return tokenizer.decode(example["input_ids"][:first])


# ---- chat messages -------------------------------------------------------------------------------


def test_messages_lists_are_question_answer_rows(tmp_path):
    data = load_dataset_file(write_jsonl(tmp_path / "chat.jsonl", CHATS), role="forget")
    assert (data.kind, data.layout, data.columns_used) == ("qa", "chat", {"messages": "messages"})
    first, second = data.rows
    assert (first["question"], first["answer"], "history" in first) == \
        ("Where was Alia Vorn born?", "In Quellmarsh.", False)
    assert (second["question"], second["answer"]) == ("Who mentored Bram Okonde?", "Sela Tarn.")
    assert [turn["role"] for turn in second["history"]] == ["system", "user", "assistant"]


def test_sharegpt_and_ultrachat_shapes(tmp_path):
    sharegpt = [{"conversations": [{"from": "human", "value": "Hi?"}, {"from": "gpt", "value": "Hello."}]}]
    data = load_dataset_file(write_jsonl(tmp_path / "sharegpt.jsonl", sharegpt), role="retain")
    assert (data.rows[0]["question"], data.rows[0]["answer"]) == ("Hi?", "Hello.")
    # UltraChat repeats the first user turn in "prompt": the conversation is the source, not prompt.
    ultrachat = [{"prompt": "Where was Alia Vorn born?", "prompt_id": "7", **CHATS[0]}]
    data = load_dataset_file(write_jsonl(tmp_path / "ultra.jsonl", ultrachat), role="forget")
    assert data.columns_used == {"messages": "messages"} and data.columns_ignored == ["prompt", "prompt_id"]
    # Mapping question/answer explicitly uses those columns instead.
    data = load_dataset_file(tmp_path / "ultra.jsonl", role="forget", columns={"question": "prompt",
                                                                               "answer": "prompt_id"})
    assert data.layout == "qa" and data.rows[0]["answer"] == "7"


def test_bad_conversations_are_row_errors(tmp_path):
    rows = [
        CHATS[0],
        {"messages": [{"role": "user", "content": "No answer yet"}]},
        {"messages": [{"role": "narrator", "content": "Once"}, {"role": "assistant", "content": "upon"}]},
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": " "}]},
        {"messages": "not a list"},
        {"other": 1},
    ]
    data = load_dataset_file(write_jsonl(tmp_path / "bad.jsonl", rows), role="forget", strict=False)
    assert data.n_rows == 1
    problems = {error.line: error.problem for error in data.report.errors}
    assert "no assistant turn" in problems[2]
    assert "'narrator'" in problems[3]
    assert "is empty" in problems[4]
    assert "list of turns" in problems[5]
    assert "missing column messages" in problems[6]


def test_chat_rows_train_on_the_last_answer_through_the_chat_template(tokenizers, tmp_path):
    tokenizer = load_tokenizer(tokenizers["chat"])
    row = load_dataset_file(write_jsonl(tmp_path / "chat.jsonl", CHATS), role="forget").rows[1]
    example = tokenize_example(row, "auto", tokenizer, 256)
    assert labelled_text(tokenizer, example) == "Sela Tarn.</s>"
    prompt = prompt_text(tokenizer, example)
    # (transformers renders chat templates with trim_blocks: the newline after a block tag goes.)
    assert prompt == ("<|system|>\nAnswer briefly.<|user|>\nHello.<|assistant|>\nHello!</s>"
                      "<|user|>\nWho mentored Bram Okonde?<|assistant|>\n")
    assert format_prompt(row["question"], "chat", tokenizer, history=row["history"]) == prompt
    # Without a chat template the earlier turns are written above the question.
    plain = tokenize_example(row, "qa", tokenizer, 256)
    assert tokenizer.decode(plain["input_ids"], skip_special_tokens=True).startswith(
        "### Question: System: Answer briefly.\nUser: Hello.\nAssistant: Hello!\nUser: Who mentored Bram Okonde?")
    assert labelled_text(tokenizer, plain) == " Sela Tarn.</s>"


def test_messages_from_a_pandas_csv(tmp_path):
    path = pandas_csv(tmp_path / "chat.csv", CHATS, via_datasets=True)
    assert "}\n {" in path.read_text()  # NumPy's repr: turns separated by a line break, no comma
    data = load_dataset_file(path, role="forget")
    direct = load_dataset_file(write_jsonl(tmp_path / "chat.jsonl", CHATS), role="forget")
    strip = [{k: v for k, v in row.items() if k != "_origin"} for row in data.rows]
    assert strip == [{k: v for k, v in row.items() if k != "_origin"} for row in direct.rows]


# ---- Alpaca ------------------------------------------------------------------------------------------


def test_alpaca_input_is_joined_into_the_prompt(tokenizers, tmp_path):
    data = load_dataset_file(write_jsonl(tmp_path / "alpaca.jsonl", ALPACA), role="expert")
    assert data.layout == "alpaca"
    assert data.columns_used == {"question": "instruction", "answer": "output", "input": "input"}
    questions = [row["question"] for row in data.rows]
    assert questions == ["Name the capital of the country.\n\nFrance", "Name the capital of the country.\n\nSpain",
                         "Say hello."]
    tokenizer = load_tokenizer(tokenizers["plain"])
    france, spain = (tokenize_example(row, "qa", tokenizer, 128) for row in data.rows[:2])
    assert prompt_text(tokenizer, france) != prompt_text(tokenizer, spain)
    assert "France" in prompt_text(tokenizer, france)
    dolly = [{"instruction": "Summarise.", "context": "A long text.", "response": "Short.", "category": "summarization"}]
    data = load_dataset_file(write_jsonl(tmp_path / "dolly.jsonl", dolly), role="expert")
    assert data.rows[0]["question"] == "Summarise.\n\nA long text."


# ---- pandas list columns -------------------------------------------------------------------------------


def test_tofu_perturbed_answers_from_pandas_csv(tmp_path):
    path = pandas_csv(tmp_path / "tofu.csv", TOFU)
    assert "['Alia Vorn was born in Varnhold.'" in path.read_text()  # a Python repr, not JSON
    data = load_dataset_file(path, role="forget")
    assert data.report.ok and data.columns_used["wrong_answers"] == "perturbed_answer"
    assert [row["wrong_answers"] for row in data.rows] == [row["perturbed_answer"] for row in TOFU]


def test_wmdp_choices_from_pandas_csv(tmp_path):
    path = pandas_csv(tmp_path / "wmdp.csv", WMDP, via_datasets=True)
    assert "['Ana' 'Bo' 'Cy' 'Di']" in path.read_text()  # NumPy's repr: no commas
    data = load_dataset_file(path, role="mcq")
    assert [(row["choices"], row["label"]) for row in data.rows] == [(r["choices"], r["answer"]) for r in WMDP]


def test_list_cells_are_read_as_literals_only(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.csv"
    path.write_text(f'question,choices,answer\nq,"[__import__(\'os\').system(\'touch {marker}\'), \'b\']",0\n'
                    'q2,"[\'a\', \'b\']",1\n', encoding="utf-8")
    data = load_dataset_file(path, role="mcq", strict=False)
    assert not marker.exists()
    assert data.n_rows == 1 and data.rows[0]["choices"] == ["a", "b"]
    [error] = data.report.errors
    assert error.line == 2 and "plain values" in error.problem


# ---- MUSE verbmem ---------------------------------------------------------------------------------------


def test_muse_verbmem_trains_the_continuation_only(tokenizers, tmp_path):
    data = load_dataset_file(write_jsonl(tmp_path / "verbmem.json", MUSE), role="forget")
    assert data.layout == "completion" and data.columns_used == {"question": "prompt", "answer": "gt"}
    tokenizer = load_tokenizer(tokenizers["chat"])
    assert data.template("auto", tokenizer) == "completion"  # even with a chat template
    example = tokenize_example(data.rows[0], "completion", tokenizer, 128)
    assert labelled_text(tokenizer, example) == " keepers and a broken star."  # no EOS: the text goes on
    assert tokenizer.decode(example["input_ids"]) == "<s>" + MUSE[0]["prompt"] + MUSE[0]["gt"]
    assert format_prompt(MUSE[0]["prompt"], "completion") == MUSE[0]["prompt"]
    assert data.template("qa", tokenizer) == "qa"  # an explicit template still wins


# ---- a multiple-choice file in a qa role -----------------------------------------------------------------


def test_mcq_file_given_as_forget_warns_and_names_the_role(tmp_path):
    path = write_jsonl(tmp_path / "wmdp.jsonl", WMDP)
    data = load_dataset_file(path, role="forget")
    [warning] = [w for w in data.report.warnings if "multiple-choice" in w]
    assert "'mcq' role" in warning and "'answer' column" in warning
    assert not load_dataset_file(path, role="mcq").report.warnings
    assert not load_dataset_file(write_jsonl(tmp_path / "tofu.jsonl", TOFU), role="forget").report.warnings


# ---- Qwen3's think block -------------------------------------------------------------------------------------


def test_empty_think_block_is_not_trained(tokenizers):
    tokenizer = load_tokenizer(tokenizers["qwen3"])
    row = {"question": "Where was Alia Vorn born?", "answer": "In Quellmarsh."}
    example = tokenize_example(row, "auto", tokenizer, 256)
    assert labelled_text(tokenizer, example) == "In Quellmarsh.<|im_end|>"
    prompt = prompt_text(tokenizer, example)
    assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    # Generation and evaluation prompt the model exactly as it was trained.
    assert format_prompt(row["question"], "chat", tokenizer) == prompt


# ---- data check -----------------------------------------------------------------------------------------------


def layout_files(tmp_path: Path) -> dict[str, tuple[Path, str, str]]:
    """layout -> (file, role, tokenizer name)."""
    return {
        "chat": (write_jsonl(tmp_path / "chat.jsonl", CHATS), "forget", "chat"),
        "alpaca": (write_jsonl(tmp_path / "alpaca.jsonl", ALPACA), "forget", "plain"),
        "tofu-csv": (pandas_csv(tmp_path / "tofu.csv", TOFU), "forget", "plain"),
        "wmdp-csv": (pandas_csv(tmp_path / "wmdp.csv", WMDP, via_datasets=True), "mcq", "plain"),
        "muse": (write_jsonl(tmp_path / "verbmem.jsonl", MUSE), "forget", "plain"),
        "qwen3": (write_jsonl(tmp_path / "qwen3.jsonl", CHATS), "forget", "qwen3"),
    }


EXPECTED = {  # layout -> (layout, template) as data check reports them
    "chat": ("chat", "chat"), "alpaca": ("alpaca", "qa"), "tofu-csv": ("qa", "qa"), "wmdp-csv": ("mcq", "qa"),
    "muse": ("completion", "completion"), "qwen3": ("chat", "chat"),
}


def run_check(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    data_check.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["data", "check", *argv])
    return args.handler(args)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_data_check_each_layout(name, tokenizers, tmp_path, capsys):
    path, role, tokenizer = layout_files(tmp_path)[name]
    argv = [str(path), "--role", role, "--tokenizer", str(tokenizers[tokenizer])]
    assert run_check(argv) == 0
    out = capsys.readouterr().out
    layout, template = EXPECTED[name]
    assert f"template {template}," in out and "Result: valid" in out
    if layout not in ("qa", "mcq"):
        assert f"Layout:   {layout} (" in out
    assert run_check([*argv, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["ok"], report["layout"], report["tokenized"]["template"]) == (True, layout, template)
    assert report["rows"] == len(report["preview"]) and all(e["trained"] > 0 for e in report["tokenized"]["examples"])


def test_data_check_json_reports_bad_rows_and_refusals(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(data_check, "_default_tokenizer_dir", lambda: None)
    path = write_jsonl(tmp_path / "bad.jsonl", [CHATS[0], {"messages": []}])
    assert run_check([str(path), "--role", "forget", "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["errors"][0]["origin"] == f"{path}:2"
    assert report["tokenized"] == {"skipped": "no --tokenizer given and the demo model is not built yet"}
    with pytest.raises(Exception, match="not found"):
        run_check([str(tmp_path / "missing.jsonl"), "--role", "forget", "--json"])
    refusal = json.loads(capsys.readouterr().out)
    assert refusal["ok"] is False and "not found" in refusal["error"]["problem"]


# ---- a short run per layout ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chat_models(tmp_path_factory, tokenizers):
    """Tiny llamas whose tokenizers carry the simple chat template and Qwen3's."""
    root = tmp_path_factory.mktemp("models")
    folders = {"plain": build_tiny_model("llama", root / "plain")}
    for name, template in (("chat", SIMPLE_CHAT), ("qwen3", QWEN3_CHAT)):
        folder = build_tiny_model("llama", root / name)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        tokenizer.chat_template = template
        tokenizer.save_pretrained(folder)
        folders[name] = folder
    return folders


@pytest.mark.slow
@pytest.mark.parametrize("name", ["chat", "alpaca", "tofu-csv", "muse", "qwen3"])
def test_short_run_on_each_layout(name, chat_models, tmp_path):
    from unlearn_studio.core.project.config import (
        DataSource,
        EvalConfig,
        LoraConfig,
        MethodConfig,
        ModelConfig,
        OutputConfig,
        RunConfig,
        TrainingConfig,
    )
    from unlearn_studio.core.run.runner import execute

    path, _, tokenizer = layout_files(tmp_path)[name]
    config = RunConfig(
        name=f"layout {name}", model=ModelConfig(path=str(chat_models[tokenizer]), device="cpu"),
        data={"forget": DataSource(str(path))}, method=MethodConfig("grad_ascent"),
        lora=LoraConfig(r=2, alpha=4.0), training=TrainingConfig(max_steps=2, batch_size=2, max_length=96),
        evaluation=EvalConfig(suite="none"), output=OutputConfig(str(tmp_path / "runs")))
    logs = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = execute(config, listener=lambda event: logs.append(event.message)
                         if isinstance(event, LogEvent) else None)
    finally:
        torch.set_num_threads(threads)
    assert result.status == "finished", result.error
    template = EXPECTED[name][1]
    assert any(f"forget {len(load_dataset_file(path, role='forget').rows)} rows ({template})" in m for m in logs), logs
