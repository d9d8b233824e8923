"""Load an Unlearn Studio export with whatever transformers and peft this interpreter has (made for
transformers 4.46+ and peft 0.13+), and check that it reproduces the export's reference answer.

    OLD_PYTHON tests/compat/check_export.py BASE_MODEL_DIR EXPORT_DIR

Prints one JSON object: the library versions, and per step (tokenizer, PeftModel, generation with the
adapter, the merged model beside the export when there is one) whether it worked and what it gave.
Exit status 0 when every step matched. It imports nothing from Unlearn Studio, so that an
environment with only torch, transformers and peft can run it. An environment for it:

    python -m venv old && old/bin/pip install torch "transformers>=4.46,<5" "peft>=0.13,<0.18"
"""

import json
import sys
import traceback
from pathlib import Path

import peft
import torch
import transformers
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer


def greedy(model, tokenizer, prompt: str, max_new_tokens: int) -> str:
    """The export's reference decoding: the prompt as one row, greedy, cut at EOS, special tokens dropped."""
    ids = torch.tensor([tokenizer(prompt)["input_ids"]])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                             do_sample=False, pad_token_id=pad, eos_token_id=tokenizer.eos_token_id)
    new = out[0, ids.shape[1]:].tolist()
    if tokenizer.eos_token_id in new:
        new = new[:new.index(tokenizer.eos_token_id)]
    return tokenizer.decode(new, skip_special_tokens=True).strip()


def step(results: dict, name: str, action):
    try:
        value = action()
    except Exception as exc:  # noqa: BLE001 - every failure is reported, not raised: the report is the product
        results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}",
                         "where": traceback.format_exc(limit=-2)}
        return None
    results[name] = {"ok": True}
    return value


def main(base_dir: str, export_dir: str) -> int:
    export = Path(export_dir)
    reference = json.loads((export / "export.json").read_text(encoding="utf-8"))["reference"]
    prompt, expected, n = reference["prompt"], reference["generation"], reference["max_new_tokens"]
    results: dict = {"versions": {"python": sys.version.split()[0], "torch": torch.__version__,
                                  "transformers": transformers.__version__, "peft": peft.__version__}}
    tokenizer = step(results, "tokenizer", lambda: AutoTokenizer.from_pretrained(export))
    if tokenizer is not None:
        results["tokenizer"]["class"] = type(tokenizer).__name__
        if tokenizer.chat_template:
            results["tokenizer"]["chat_template_renders"] = bool(tokenizer.apply_chat_template(
                [{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True))
    base = step(results, "base model", lambda: AutoModelForCausalLM.from_pretrained(base_dir))
    model = step(results, "PeftModel", lambda: PeftModel.from_pretrained(base, export).eval()) if base else None
    if model is not None and tokenizer is not None:
        got = step(results, "generation with the adapter", lambda: greedy(model, tokenizer, prompt, n))
        if got is not None:
            results["generation with the adapter"].update(matches=got == expected, got=got, expected=expected)
    merged_dir = export.with_name(f"{export.name}-merged")
    if merged_dir.is_dir() and tokenizer is not None:
        merged = step(results, "merged model", lambda: AutoModelForCausalLM.from_pretrained(merged_dir).eval())
        if merged is not None:
            got = greedy(merged, tokenizer, prompt, n)
            results["merged model"].update(matches=got == expected, got=got)
    print(json.dumps(results, indent=2))
    return 0 if all(r.get("ok", True) and r.get("matches", True) for r in results.values() if isinstance(r, dict)
                    and "ok" in r) else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
