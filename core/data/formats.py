"""File readers: JSONL, JSON list, CSV/TSV, Parquet, plain text and `datasets` folders.

Each reader returns raw records (a dict per row, or the reason the row could not be read) with
their origin, so that every later message can point at ``file:line``.
"""

import csv
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from unlearn_studio.core.data.decoding import decode_lines, decode_whole
from unlearn_studio.core.errors import UserError

#: format name -> what it is (shown in reports and CLI help).
FORMATS = {
    "jsonl": "JSON Lines (one object per line)",
    "json": "JSON (a top-level list of objects)",
    "csv": "CSV with a header row",
    "tsv": "tab-separated values with a header row",
    "parquet": "Parquet",
    "text": "plain text (one document per line, or paragraphs separated by blank lines)",
    "datasets": "a `datasets` folder written by save_to_disk",
}
_ALIASES = {"txt": "text", "ndjson": "jsonl", "hf": "datasets", "arrow": "datasets"}
_EXTENSIONS = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv",
    ".parquet": "parquet", ".pq": "parquet", ".txt": "text", ".text": "text", ".md": "text",
}
_DATASETS_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")


@dataclass(frozen=True)
class Origin:
    """Where a row came from: ``line`` is 1-based for line formats, a 0-based index otherwise."""

    file: str
    line: int
    unit: str = "line"  # "line" or "index"

    def __str__(self) -> str:
        if self.unit == "line":
            return f"{self.file}:{self.line}"
        return f"{self.file}[{self.line}]"


@dataclass
class Record:
    """One raw row: its values as read, or the reason it could not be read."""

    origin: Origin
    values: dict | None
    error: str | None = None


@dataclass
class ReadResult:
    """What a reader found: records, the column names present, and notes for the report."""

    format: str
    records: list[Record]
    columns: list[str]
    notes: list[str] = field(default_factory=list)


def normalize_format(fmt: str) -> str:
    """The canonical format name for ``fmt`` ("auto" stays "auto")."""
    name = _ALIASES.get(fmt.lower(), fmt.lower())
    if name != "auto" and name not in FORMATS:
        raise UserError(
            f"Unknown data format '{fmt}'.",
            f"Use one of: auto, {', '.join(FORMATS)}.",
        )
    return name


def detect_format(path: Path) -> str:
    """Guess the format from the folder layout, the extension, or the first bytes."""
    if path.is_dir():
        if any((path / marker).exists() for marker in _DATASETS_MARKERS):
            return "datasets"
        raise UserError(
            f"{path} is a folder, but not one written by datasets' save_to_disk "
            f"(it has no {' / '.join(_DATASETS_MARKERS)}).",
            "Point at a data file (.jsonl, .json, .csv, .parquet, .txt) or a save_to_disk folder.",
        )
    by_extension = _EXTENSIONS.get(path.suffix.lower())
    with path.open("rb") as fh:
        head = fh.read(4096)
    if head.startswith(b"PAR1"):
        return "parquet"
    if by_extension == "json":
        # A .json file that holds JSON Lines is common; its first line is a complete object.
        return "jsonl" if _looks_like_jsonl(head) else "json"
    if by_extension:
        return by_extension
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if stripped.startswith(b"["):
        return "json"
    if stripped.startswith(b"{"):
        return "jsonl"
    raise UserError(
        f"Cannot tell the format of {path} from its name or content.",
        f"Give the format explicitly (one of: {', '.join(FORMATS)}).",
    )


def _looks_like_jsonl(head: bytes) -> bool:
    first_line = head.lstrip(b"\xef\xbb\xbf \t\r\n").split(b"\n", 1)[0]
    if not first_line.startswith(b"{"):
        return False
    try:
        return isinstance(json.loads(first_line), dict) and b"\n{" in head.replace(b"\r\n", b"\n")
    except ValueError:
        return False


def read_file(path: Path, fmt: str, split: str | None = None) -> ReadResult:
    """Read ``path`` in format ``fmt`` (already resolved, not "auto")."""
    if split is not None and fmt != "datasets":
        raise UserError(
            f"A split ('{split}') was given for {path}, but only `datasets` folders have splits.",
            "Remove the ':split' part of the path.",
        )
    readers = {
        "jsonl": _read_jsonl, "json": _read_json, "csv": _read_csv, "tsv": _read_tsv,
        "parquet": _read_parquet, "text": _read_text,
    }
    if fmt == "datasets":
        return _read_datasets(path, split)
    if path.is_dir():
        raise UserError(f"{path} is a folder, not a {fmt} file.", "Point at the data file itself.")
    return readers[fmt](path)


# --- readers --------------------------------------------------------------------------------


def _columns_in_order(records: list[Record]) -> list[str]:
    seen: dict[str, None] = {}
    for record in records:
        if record.values:
            seen.update(dict.fromkeys(record.values))
    return list(seen)


def _read_jsonl(path: Path) -> ReadResult:
    lines, bad = decode_lines(path)
    records = []
    for number, line in enumerate(lines, start=1):
        origin = Origin(str(path), number)
        if number in bad:
            records.append(Record(origin, None, bad[number]))
            continue
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            records.append(Record(origin, None, f"malformed JSON: {exc.msg} (column {exc.colno})"))
            continue
        if not isinstance(value, dict):
            records.append(
                Record(origin, None, f"expected a JSON object, found {_json_type(value)}")
            )
            continue
        records.append(Record(origin, value))
    return ReadResult("jsonl", records, _columns_in_order(records))


def _read_json(path: Path) -> ReadResult:
    text = decode_whole(path)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(
            f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.",
            "Fix the JSON syntax there (a .json file must hold one list of objects; for one "
            "object per line use a .jsonl file).",
        ) from None
    if isinstance(value, dict):
        # A common wrapper: {"data": [...]} or similar with exactly one list of objects.
        lists = [v for v in value.values()
                 if isinstance(v, list) and v and all(isinstance(item, dict) for item in v)]
        if len(lists) != 1:
            raise UserError(
                f"{path} holds a JSON object, but a list of row objects was expected.",
                'Make the top level a list: [{"question": ..., "answer": ...}, ...].',
            )
        value = lists[0]
    if not isinstance(value, list):
        raise UserError(
            f"{path} holds {_json_type(value)} at the top level, but a list of objects was expected.",
            'Make the top level a list: [{"question": ..., "answer": ...}, ...].',
        )
    records = []
    for index, item in enumerate(value):
        origin = Origin(str(path), index, "index")
        if isinstance(item, dict):
            records.append(Record(origin, item))
        else:
            records.append(Record(origin, None, f"expected a JSON object, found {_json_type(item)}"))
    return ReadResult("json", records, _columns_in_order(records))


def _json_type(value) -> str:
    names = {list: "a list", str: "a string", bool: "true/false", int: "a number",
             float: "a number", type(None): "null", dict: "an object"}
    return names.get(type(value), type(value).__name__)


def _read_csv(path: Path, delimiter: str = ",", fmt: str = "csv") -> ReadResult:
    lines, bad = decode_lines(path)
    # Long documents in one cell are normal for unlearning corpora.
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    reader = csv.reader(lines, delimiter=delimiter)
    records: list[Record] = []
    header: list[str] | None = None
    last_line = 0
    try:
        for cells in reader:
            start, last_line = last_line + 1, reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if header is None:
                header = [cell.strip() for cell in cells]
                continue
            origin = Origin(str(path), start)
            damaged = [n for n in range(start, last_line + 1) if n in bad]
            if damaged:
                records.append(Record(origin, None, bad[damaged[0]]))
            elif len(cells) != len(header):
                records.append(Record(
                    origin, None,
                    f"has {len(cells)} fields but the header has {len(header)} (check the quoting)",
                ))
            else:
                records.append(Record(origin, dict(zip(header, cells))))
    except csv.Error as exc:
        raise UserError(
            f"{path} could not be read as {fmt.upper()} near line {reader.line_num}: {exc}.",
            "Check the quoting on that line (a quoted field must end with a closing quote).",
        ) from None
    return ReadResult(fmt, records, header or [])


def _read_tsv(path: Path) -> ReadResult:
    return _read_csv(path, delimiter="\t", fmt="tsv")


def _read_parquet(path: Path) -> ReadResult:
    import pyarrow.parquet as pq  # heavy; only needed here

    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises several unrelated types for unreadable files
        raise UserError(
            f"{path} could not be read as Parquet: {exc}",
            "Check that the file is a complete Parquet file, or give the right --format.",
        ) from None
    records = [
        Record(Origin(str(path), index, "index"), row) for index, row in enumerate(table.to_pylist())
    ]
    return ReadResult("parquet", records, list(table.column_names))


def _read_text(path: Path) -> ReadResult:
    lines, bad = decode_lines(path)
    stripped = [line.rstrip("\r\n") for line in lines]
    blank = [not line.strip() for line in stripped]
    # Blank lines inside the file (not just at its end) mean paragraphs are the documents.
    last_content = max((n for n, is_blank in enumerate(blank) if not is_blank), default=-1)
    paragraphs = any(blank[: last_content + 1])
    records: list[Record] = []
    if paragraphs:
        note = "plain text read as paragraphs: the file has blank lines, so each block of lines between them is one document"
        start, block, block_error = None, [], None
        for number, (line, is_blank) in enumerate(zip(stripped, blank), start=1):
            if is_blank:
                if block:
                    records.append(_text_record(path, start, "\n".join(block), block_error))
                start, block, block_error = None, [], None
                continue
            start = start or number
            block.append(line)
            block_error = block_error or bad.get(number)
        if block:
            records.append(_text_record(path, start, "\n".join(block), block_error))
    else:
        note = "plain text read one document per line (the file has no blank lines)"
        for number, (line, is_blank) in enumerate(zip(stripped, blank), start=1):
            if not is_blank:
                records.append(_text_record(path, number, line, bad.get(number)))
    return ReadResult("text", records, ["text"], [note])


def _text_record(path: Path, line: int, text: str, error: str | None) -> Record:
    origin = Origin(str(path), line)
    return Record(origin, None, error) if error else Record(origin, {"text": text})


def _read_datasets(path: Path, split: str | None) -> ReadResult:
    import datasets  # heavy; only needed here

    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as exc:  # datasets raises FileNotFoundError/ValueError/... for bad folders
        raise UserError(
            f"{path} could not be loaded with datasets.load_from_disk: {exc}",
            "Point at a folder written by Dataset.save_to_disk or DatasetDict.save_to_disk.",
        ) from None
    if isinstance(loaded, datasets.DatasetDict):
        splits = list(loaded)
        if split is None:
            raise UserError(
                f"{path} holds several splits ({', '.join(splits)}); which one should be used?",
                f"Add the split to the path, e.g. {path}:{splits[0]}",
            )
        if split not in loaded:
            raise UserError(
                f"{path} has no split '{split}'; it has: {', '.join(splits)}.",
                f"Use one of them, e.g. {path}:{splits[0]}",
            )
        loaded = loaded[split]
    elif split is not None:
        raise UserError(
            f"{path} holds a single Dataset without splits, but split '{split}' was asked for.",
            "Remove the ':split' part of the path.",
        )
    name = f"{path}:{split}" if split else str(path)
    records = [Record(Origin(name, index, "index"), row) for index, row in enumerate(loaded)]
    return ReadResult("datasets", records, list(loaded.column_names))
