"""`unlearn-studio data check FILE --role R`: read a data file and show what training will see."""

import argparse
import json
import sys
from pathlib import Path

from unlearn_studio.core.data.columns import CANONICAL, LAYOUTS, parse_column_args
from unlearn_studio.core.data.formats import FORMATS
from unlearn_studio.core.data.loader import LoadedData, load_dataset_file
from unlearn_studio.core.data.roles import KINDS, ROLES
from unlearn_studio.core.data.templates import (
    IGNORE_INDEX,
    TEMPLATES,
    collate,
    mark_label_span,
    pad_token_id_for,
    tokenize_rows,
)
from unlearn_studio.core.errors import UserError
from unlearn_studio.core.paths import demo_model_dir

CELL_WIDTH = 36
MAX_ERRORS_SHOWN = 50
PREVIEW_CHARS = 800  # of each decoded example; long documents would flood the terminal


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register `data check` under ``subparsers`` (the top-level subcommands).

    Creates the `data` group (or reuses it when another module made it first) and adds `check`
    to it; the parser's ``handler`` default is :func:`run`.
    """
    data = subparsers.choices.get("data") or subparsers.add_parser("data", help="inspect data sets")
    # argparse offers no public way to find a parser's subcommands, so look among its actions.
    group = next((a for a in data._actions if isinstance(a, argparse._SubParsersAction)), None)
    if group is None:
        group = data.add_subparsers(dest="data_command", metavar="COMMAND", required=True)
    parser = group.add_parser(
        "check",
        help="read a data file, validate it and preview its rows and tokenization",
        description="Read a data file for a role, list bad rows with file:line, preview the "
                    "first rows and how they are tokenized (the answer span is marked «...»).",
    )
    parser.add_argument("file", help="data file, or a datasets folder (folder:split for one split)")
    parser.add_argument("--role", required=True, choices=list(ROLES), help="what the data is for")
    parser.add_argument("--format", default="auto", choices=["auto", *FORMATS], help="file format (default: auto)")
    parser.add_argument(
        "--column", action="append", default=[], metavar="CANONICAL=SOURCE",
        help=f"map a file column onto a canonical one ({', '.join(CANONICAL)}); repeatable",
    )
    parser.add_argument("--template", default="auto", choices=list(TEMPLATES), help="prompt template (default: auto)")
    parser.add_argument("--tokenizer", type=Path, metavar="DIR", help="tokenizer folder (default: the built-in demo model's)")
    parser.add_argument("--max-length", type=int, default=512, metavar="N", help="tokens per example (default: 512)")
    parser.add_argument("--rows", type=int, default=5, metavar="N", help="rows to preview (default: 5)")
    parser.add_argument("--json", action="store_true",
                        help="print the report as one JSON object (a refusal too: {\"ok\": false, \"error\": ...})")
    parser.set_defaults(handler=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Print the report, a preview and the first tokenized batch. 0: valid, 2: bad rows."""
    try:
        data = load_dataset_file(
            args.file, role=args.role, format=args.format,
            columns=parse_column_args(args.column), strict=False,
        )
        tokenized = _tokenized(data, args)
    except UserError as error:
        if args.json:
            print(json.dumps({"ok": False, "error": {"problem": error.problem, "fix": error.fix}}, indent=2))
        raise
    if args.json:
        print(json.dumps(_report(data, args.rows, tokenized), indent=2, ensure_ascii=False))
        return 0 if data.report.ok else 2
    _print_report(data)
    _print_preview(data, args.rows)
    _print_tokenized(tokenized)
    if data.report.ok:
        print(f"\nResult: valid ({data.n_rows} row{'s' if data.n_rows != 1 else ''}).")
        return 0
    print(f"\nResult: invalid ({len(data.report.errors)} problems in {data.n_read} rows read).")
    first = data.report.errors[0]
    print(f"error: {data.path} has {len(data.report.errors)} bad row(s), the first at {first}\n"
          f"  What to do: fix the rows listed above (file:line); a run refuses a file with bad rows.",
          file=sys.stderr)
    return 2


def _report(data: LoadedData, n_preview: int, tokenized: dict) -> dict:
    """The whole check as plain values (the --json output)."""
    return {
        "ok": data.report.ok, "file": data.path, "format": data.format, "role": data.role, "kind": data.kind,
        "layout": data.layout, "layout_means": LAYOUTS[data.layout], "columns_used": data.columns_used,
        "columns_ignored": data.columns_ignored, "rows": data.n_rows, "rows_read": data.n_read,
        "notes": data.report.notes, "warnings": data.report.warnings,
        "errors": [{"origin": str(error.origin), "problem": error.problem} for error in data.report.errors],
        "preview": [_plain_row(row) for row in data.rows[: max(n_preview, 0)]],
        "tokenized": tokenized,
    }


def _plain_row(row: dict) -> dict:
    return {key: (str(value) if key == "_origin" else value) for key, value in row.items()}


def _print_report(data: LoadedData) -> None:
    print(f"File:     {data.path}")
    print(f"Format:   {data.format} ({FORMATS[data.format]})")
    print(f"Role:     {data.role} ({ROLES[data.role].description})")
    print(f"Kind:     {data.kind} ({KINDS[data.kind]})")
    if data.layout != data.kind:
        print(f"Layout:   {data.layout} ({LAYOUTS[data.layout]})")
    mapping = ", ".join(f"{canonical} <- {source}" for canonical, source in data.columns_used.items())
    print(f"Columns:  {mapping}")
    if data.columns_ignored:
        # pandas' to_csv writes its index as a column without a name.
        names = (name or "(a column without a name: a saved index)" for name in data.columns_ignored)
        print(f"Ignored:  {', '.join(names)}")
    print(f"Rows:     {data.n_rows} usable of {data.n_read} read")
    for note in data.report.notes:
        print(f"Note:     {note}")
    for warning in data.report.warnings:
        print(f"Warning:  {warning}")
    if data.report.errors:
        print(f"\nErrors ({len(data.report.errors)}):")
        for error in data.report.errors[:MAX_ERRORS_SHOWN]:
            print(f"  {error}")
        if len(data.report.errors) > MAX_ERRORS_SHOWN:
            print(f"  ... and {len(data.report.errors) - MAX_ERRORS_SHOWN} more")


def _cell(value, width: int = CELL_WIDTH) -> str:
    if isinstance(value, list):
        value = " | ".join(str(item.get("content", item)) if isinstance(item, dict) else str(item) for item in value)
    text = "" if value is None else str(value)
    text = text.replace("\r", "").replace("\n", "\\n")
    return text if len(text) <= width else text[: width - 1] + "…"


def _print_preview(data: LoadedData, n: int) -> None:
    rows = data.rows[: max(n, 0)]
    if not rows:
        return
    # What training reads: the canonical columns each row has (a conversation gives question,
    # answer and history), in a fixed order.
    shown = [column for column in ("question", "answer", "history", *CANONICAL)
             if any(column in row for row in rows)]
    shown = list(dict.fromkeys(shown))
    headers = ["origin", *shown]
    table = [[_cell(Path(row["_origin"].file).name + _origin_suffix(row["_origin"]), 24)]
             + [_cell(row.get(column)) for column in shown] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(headers)]
    print(f"\nPreview (first {len(rows)} of {data.n_rows} rows):")
    for line in [headers, ["-" * w for w in widths], *table]:
        print("  " + "  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())


def _origin_suffix(origin) -> str:
    return f":{origin.line}" if origin.unit == "line" else f"[{origin.line}]"


def _default_tokenizer_dir() -> Path | None:
    folder = demo_model_dir()
    return folder if folder.is_dir() else None


def _tokenized(data: LoadedData, args: argparse.Namespace) -> dict:
    """The first rows as training tokenizes them: {"template", "tokenizer", "examples", "warnings"}
    ({"skipped": why} without a tokenizer)."""
    folder = args.tokenizer or _default_tokenizer_dir()
    if folder is None:
        return {"skipped": "no --tokenizer given and the demo model is not built yet"}
    rows = data.rows[: max(args.rows, 0)]
    if not rows:
        return {"skipped": "no usable rows"}
    from unlearn_studio.core.model.loading import load_tokenizer  # loads transformers: only for the preview

    tokenizer = load_tokenizer(folder)
    template = data.template(args.template, tokenizer)
    encoded, warnings = tokenize_rows(rows, template, tokenizer, args.max_length)
    batch = collate(encoded, pad_token_id_for(tokenizer))
    examples = []
    for row, ids, mask, labels in zip(rows, batch["input_ids"], batch["attention_mask"], batch["labels"]):
        n_tokens = int(mask.sum())
        examples.append({
            "origin": str(row["_origin"]), "tokens": n_tokens, "trained": int((labels != IGNORE_INDEX).sum()),
            "marked": mark_label_span(tokenizer, ids[:n_tokens].tolist(), labels[:n_tokens].tolist()),
        })
    return {"template": template, "tokenizer": str(folder), "max_length": args.max_length,
            "examples": examples, "warnings": warnings}


def _print_tokenized(tokenized: dict) -> None:
    if "skipped" in tokenized:
        print(f"\nTokenization: skipped ({tokenized['skipped']}).")
        return
    print(f"\nTokenized (template {tokenized['template']}, tokenizer {tokenized['tokenizer']}, max length "
          f"{tokenized['max_length']}); the trained (label) span is marked «...»:")
    for example in tokenized["examples"]:
        print(f"  [{example['origin']}] {example['tokens']} tokens, {example['trained']} trained")
        marked = example["marked"]
        if len(marked) > PREVIEW_CHARS:
            marked = marked[:PREVIEW_CHARS] + " …"
        for line in marked.split("\n"):
            print(f"    {line}")
    for warning in tokenized["warnings"]:
        print(f"Warning:  {warning}")
