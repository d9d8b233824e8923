"""How the app writes numbers: one style everywhere (three significant digits, shares as
percentages, counts with thousands separators or k/M/B, durations in words), so that the same
value never reads 0.25 in one place and 25.0% or -0.001924 in another."""

from __future__ import annotations

import math

DASH = "–"  # a value that is missing (not measured, not a number)
DIGITS = 3


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and not math.isfinite(value))


def number(value: float | None, digits: int = DIGITS) -> str:
    """``digits`` significant digits, no exponent for ordinary sizes: 0.25, 1.35, 0.00192, 1.2e-05."""
    if _missing(value):
        return DASH
    if value == 0:
        return "0"
    magnitude = abs(value)
    if 1e-4 <= magnitude < 1e6:
        decimals = max(0, digits - 1 - math.floor(math.log10(magnitude)))
        text = f"{magnitude:.{decimals}f}"
        if "." in text:
            text = text.rstrip("0").rstrip(".")
    else:
        mantissa, exponent = f"{magnitude:.{digits - 1}e}".split("e")
        text = f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    return ("−" if value < 0 else "") + text


def share(value: float | None, digits: int = DIGITS) -> str:
    """A share of 1 as a percentage: 0.25 → "25%", 0.9834 → "98.3%"."""
    if _missing(value):
        return DASH
    return number(value * 100, digits) + "%"


def change(value: float | None, as_share: bool = False) -> str:
    """A difference with its sign: "+0.12", "−3.4 points" for shares, "0" for none."""
    if _missing(value):
        return DASH
    text = (number(abs(value) * 100) + " points") if as_share else number(abs(value))
    if value > 0:
        return "+" + text
    if value < 0:
        return "−" + text
    return "0"


def count(n: int | None) -> str:
    """1,234 below ten thousand; 12.3k, 4.56M, 1.24B above."""
    if n is None:
        return DASH
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e4)):
        if n >= size:
            size = 1e3 if unit == "k" else size
            return f"{number(n / size)}{unit}"
    return f"{n:,}"


def duration_text(seconds: float | None) -> str:
    """'45 s', '3 min 05 s', '1 h 02 min'."""
    if _missing(seconds):
        return DASH
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def setting(value) -> str:
    """A setting as a person types it: 5e-05 → "5e-5", 0.0005 → "0.0005", lists comma-separated."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(setting(v) for v in value)
    if isinstance(value, float):
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e6):
            mantissa, exponent = f"{value:.6e}".split("e")
            return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
        return f"{value:g}"
    return str(value)
