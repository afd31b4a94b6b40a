"""One dollar format in every reason text and message (probe item 14): `format_usd` ($1,234.56,
sign before `$`), or `format_usd_exact` for a figure with sub-cent digits; never `$1001.075800`."""

from __future__ import annotations

import ast
import re
from decimal import Decimal
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from actors.policy.buckets import usd
from messages.money import MAX_MICROS, format_usd, format_usd_exact

ROOT = Path(__file__).resolve().parents[2]
SHAPE = re.compile(r"-?\$(0|[1-9]\d{0,2}(,\d{3})*)\.\d{2,6}")


@settings(max_examples=400, derandomize=True, database=None)
@given(st.integers(min_value=-MAX_MICROS, max_value=MAX_MICROS))
def test_exact_format_reads_back_to_the_same_micros(micros):
    text = format_usd_exact(micros)
    assert SHAPE.fullmatch(text), text
    # oracle: strip the sign, `$` and separators, read as a decimal of dollars
    value = Decimal(text.replace("$", "").replace(",", "")) * 1_000_000
    assert value == micros
    if micros % 10_000 == 0:
        assert text == format_usd(micros)
    assert usd(micros) == text  # the reason texts' helper is this format


def test_exact_format_examples():
    assert format_usd_exact(1_001_075_800) == "$1,001.0758"
    assert format_usd_exact(500_345_098) == "$500.345098"
    assert format_usd_exact(-5) == "-$0.000005"
    assert format_usd_exact(-1_234_560_000) == "-$1,234.56"


def _dollar_fstrings(path: Path) -> list[str]:
    """f-strings with a literal `$` right before an interpolated value: dollars formatted by hand."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.JoinedStr):
            continue
        for before, value in zip(node.values, node.values[1:], strict=False):
            if not (isinstance(before, ast.Constant) and isinstance(before.value, str)
                    and before.value.endswith("$") and isinstance(value, ast.FormattedValue)):
                continue
            expr = value.value
            if isinstance(expr, ast.Name) and expr.id.endswith("_ENV"):
                continue  # `$TREASURY_DATA_DIR` in help text: an environment variable, not money
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {ast.unparse(node)[:80]}")
    return found


def test_no_dollars_formatted_by_hand_in_actors_and_supervisor():
    found = [hit for pkg in ("actors", "supervisor") for p in sorted((ROOT / pkg).rglob("*.py"))
             for hit in _dollar_fstrings(p)]
    assert found == [], "route these through messages.money.format_usd / format_usd_exact:\n" + "\n".join(found)
