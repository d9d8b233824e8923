"""Lists written as text in a cell: JSON, a Python repr (pandas' ``df.to_csv``) or a NumPy repr.

pandas writes a list column with ``str(value)``: a Python list repr (``['a', "it's"]``, not JSON),
or, for columns that came from ``datasets``' ``to_pandas`` (NumPy arrays), a NumPy repr whose
items are separated by spaces and line breaks, not commas (``['a' 'b'\\n 'c']``). Python would
read the latter as one concatenated string, so items are split at the top level first and each is
read on its own. Only literals are read (``ast.literal_eval``): no name is looked up and no code
runs, whatever the cell holds.
"""

from __future__ import annotations

import ast
import io
import json
import tokenize

_SKIPPED = {tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER,
            tokenize.COMMENT}
_OPEN, _CLOSE = "([{", ")]}"


class NotAList(ValueError):
    """The text looked like a list but could not be read as one; the message says why."""


def looks_like_list(value) -> bool:
    return isinstance(value, str) and value.strip().startswith("[")


def parse_list_text(text: str) -> list:
    """The list written in ``text`` (JSON, Python repr or NumPy repr); NotAList otherwise."""
    text = text.strip()
    try:
        value = json.loads(text)
    except ValueError:
        value = _python_or_numpy_list(text)
    if not isinstance(value, list):
        raise NotAList("is not a list")
    return value


def _python_or_numpy_list(text: str) -> list:
    items = _top_level_items(text)
    try:
        return [ast.literal_eval(item) for item in items]
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise NotAList("looks like a list but is neither JSON nor a list of plain values "
                       "(text in quotes, numbers)") from None


def _top_level_items(text: str) -> list[str]:
    """The source text of each item of the list ``[...]`` in ``text``: items end at a top-level
    comma, or, without commas (NumPy), where one complete value ends and the next begins."""
    try:
        tokens = [t for t in tokenize.generate_tokens(io.StringIO(text).readline) if t.type not in _SKIPPED]
    except (tokenize.TokenError, SyntaxError, IndentationError):
        raise NotAList("looks like a list but its brackets or quotes do not close") from None
    if len(tokens) < 2 or tokens[0].string != "[" or tokens[-1].string != "]":
        raise NotAList("looks like a list but does not end with ']'")
    offsets = _line_offsets(text)

    def position(point: tuple[int, int]) -> int:
        return offsets[point[0] - 1] + point[1]

    items: list[tuple[int, int]] = []
    depth, start, last_end, pending_sign = 0, None, None, False
    for token in tokens[1:-1]:
        if token.type == tokenize.OP and token.string == "," and depth == 0:
            if start is not None:
                items.append((start, last_end))
            start = None
            continue
        begins_value = depth == 0 and not pending_sign and token.string not in _CLOSE
        if begins_value and start is not None and not _continues(token):
            items.append((start, last_end))  # NumPy: the next value follows without a comma
            start = None
        if start is None:
            start = position(token.start)
        pending_sign = depth == 0 and token.string in "+-" and token.type == tokenize.OP
        if token.string in _OPEN:
            depth += 1
        elif token.string in _CLOSE:
            depth -= 1
        last_end = position(token.end)
        if depth < 0:
            raise NotAList("looks like a list but its brackets do not match")
    if start is not None:
        items.append((start, last_end))
    return [text[begin:end] for begin, end in items]


def _continues(token: tokenize.TokenInfo) -> bool:
    """Whether ``token`` continues the value before it rather than starting a new one."""
    return token.type == tokenize.OP and token.string in (":", ".")


def _line_offsets(text: str) -> list[int]:
    offsets, total = [], 0
    for line in io.StringIO(text):
        offsets.append(total)
        total += len(line)
    offsets.append(total)
    return offsets
