"""Reading a data file's bytes as text: UTF-8 (a BOM allowed), split into lines with their line
numbers, damaged lines reported rather than guessed, and files in another encoding refused with
a message that says how to re-save them."""

from pathlib import Path

from unlearn_studio.core.errors import UserError


def decode_lines(path: Path) -> tuple[list[str], dict[int, str]]:
    """The file's lines (split on "\\n" only, endings kept) and the lines that are not UTF-8.

    A file that is UTF-8 apart from a few damaged lines gets those lines reported (line number
    -> problem, the line itself decoded with replacement characters); a file written in another
    encoding altogether raises a UserError, since every row would be wrong.
    """
    raw = path.read_bytes()
    _reject_other_encodings(path, raw)
    offset = 3 if raw.startswith(b"\xef\xbb\xbf") else 0
    try:
        return _split_keep_newlines(raw[offset:].decode("utf-8")), {}
    except UnicodeDecodeError:
        pass
    lines: list[str] = []
    bad: dict[int, str] = {}
    first_bad: tuple[int, int, int] | None = None  # line, byte offset, byte value
    saw_valid_multibyte = False
    for number, chunk in enumerate(_split_keep_newlines(raw[offset:]), start=1):
        try:
            line = chunk.decode("utf-8")
            saw_valid_multibyte = saw_valid_multibyte or not chunk.isascii()
        except UnicodeDecodeError as exc:
            line = chunk.decode("utf-8", errors="replace")
            at = offset + exc.start
            bad[number] = f"bytes that are not UTF-8 (0x{chunk[exc.start]:02X} at byte offset {at})"
            first_bad = first_bad or (number, at, chunk[exc.start])
        lines.append(line)
        offset += len(chunk)
    if not saw_valid_multibyte:
        # No valid UTF-8 multi-byte character anywhere: the file is in another encoding.
        line, at, byte = first_bad
        guess = _guess_encoding(raw)
        raise UserError(
            f"{path} is not UTF-8 text: byte 0x{byte:02X} on line {line} (byte offset {at}) is not "
            f"valid UTF-8; the encoding found looks like {guess}.",
            "Re-save the file as UTF-8 (in most editors: Save As, encoding UTF-8; or "
            "`iconv -f cp1252 -t utf-8 old > new`).",
        )
    return lines, bad


def _split_keep_newlines(data):
    """Split str or bytes on "\\n" only, keeping the newline (unlike splitlines, which would
    also split inside JSON strings on \\u2028 and friends)."""
    newline = "\n" if isinstance(data, str) else b"\n"
    parts = data.split(newline)
    pieces = [part + newline for part in parts[:-1]]
    if parts[-1]:
        pieces.append(parts[-1])
    return pieces


def _reject_other_encodings(path: Path, raw: bytes) -> None:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in raw[:4096]:
        raise UserError(
            f"{path} is not UTF-8 text: it looks like UTF-16 or a binary file.",
            "Re-save the file as UTF-8 (in most editors: Save As, encoding UTF-8).",
        )


def _guess_encoding(raw: bytes) -> str:
    try:
        raw.decode("cp1252")
        return "Latin-1 / Windows-1252"
    except UnicodeDecodeError:
        return "a non-UTF-8 legacy encoding"


def decode_whole(path: Path) -> str:
    """Whole-file decoding for formats where one bad byte spoils the file (JSON)."""
    lines, bad = decode_lines(path)
    if bad:
        line, problem = next(iter(bad.items()))
        raise UserError(
            f"{path} has {problem} on line {line}; a JSON file must be valid UTF-8 throughout.",
            "Fix or remove the damaged text and save the file as UTF-8.",
        )
    return "".join(lines)
