"""Random tables in every format go through a real ``grade`` and come back unchanged.

Hypothesis writes tables of awkward text (quotes, commas, tabs, ``\\r``, newlines, NUL
characters, BOMs, line separators, special-token look-alikes, braces) and nulls, with
1 to 30 rows, in CSV, TSV, JSON, JSONL and Parquet, and grades them against the fake
Batch API. The graded file must hold every input row, in order, with the same columns
and values, followed by the ``llm_*`` columns: the fake judge's score for every text
that has content, and ``llm_error = "skipped: empty text"`` for null or blank ones.
"""

from __future__ import annotations

import csv
import json
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import Result

from tests.fakes.batch_api import FakeBatchAPI
from tests.fakes.judge import judge_score
from tests.helpers import FORMATS, write_table

Invoke = Callable[..., Result]
USER = "Please evaluate the following text: "
TEXT = "response"
EXAMPLES_PER_FORMAT = 25

#: Whitespace as polars' ``str.strip_chars()`` sees it (Unicode White_Space): Python's
#: ``str.isspace`` also counts the separators U+001C..U+001F, which are not blank text.
WHITESPACE = "".join(
    chr(c) for c in range(0x3001) if chr(c).isspace() and c not in range(0x1C, 0x20)
)

AWKWARD = [
    '"',
    "'",
    ",",
    ";",
    "\t",
    "\n",
    "\r",
    "\r\n",
    "\x00",
    " ",
    "\u00a0",
    "\u0085",
    "\u2028",
    "\ufeff",
    "\\",
    "{text}",
    "{",
    "}",
    "<|endoftext|>",
    "NA",
    "null",
    "é",
    "東京",
    "🙂",
    "x",
]
pieces = st.one_of(
    st.sampled_from(AWKWARD),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=6),
    st.text(string.printable, max_size=6),
)
texts = st.lists(pieces, max_size=8).map("".join).filter(lambda t: "[[" not in t)
cells = st.one_of(st.none(), texts)
OTHER_COLUMNS = ["id", "note", 'odd "name", here', "tab\tname", "ünï"]


@st.composite
def tables(draw: st.DrawFn) -> pl.DataFrame:
    """A table of 1-30 rows: the graded column and 0-3 other text columns, any order."""
    others = draw(st.lists(st.sampled_from(OTHER_COLUMNS), unique=True, max_size=3))
    columns = draw(st.permutations([TEXT, *others]))
    n = draw(st.integers(1, 30))
    data = {name: draw(st.lists(cells, min_size=n, max_size=n)) for name in columns}
    return pl.DataFrame(data, schema=dict.fromkeys(columns, pl.String))


def is_blank(value: str | None) -> bool:
    """A text that is skipped: null, empty or whitespace only."""
    return value is None or not value.strip(WHITESPACE)


def read_back(path: Path, fmt: str) -> list[dict[str, Any]]:
    """A file's rows, read the plain way (CSV/TSV values are text, as batchgrader reads)."""
    if fmt in ("csv", "tsv"):
        with path.open(encoding="utf-8", newline="") as handle:
            header, *records = csv.reader(handle, delimiter="\t" if fmt == "tsv" else ",")
        # A blank line is a row of empty fields (a one-column table's null is written so).
        return [dict(zip(header, r or [""] * len(header), strict=True)) for r in records]
    if fmt == "json":
        rows: list[dict[str, Any]] = json.loads(path.read_text(encoding="utf-8"))
        return rows
    if fmt == "jsonl":
        lines = path.read_bytes().decode("utf-8").split("\n")
        return [json.loads(line) for line in lines if line.strip()]
    return pl.read_parquet(path).to_dicts()


def as_csv_text(value: Any) -> str:
    """How a value reads back from CSV (null and empty are both empty)."""
    return "" if value is None else str(value)


@pytest.mark.parametrize("fmt", FORMATS)
def test_graded_output_round_trips_every_row(
    bg: Invoke,
    fake_api: FakeBatchAPI,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fmt: str,
) -> None:
    """Every input row comes back unchanged and in order, with its score or skip reason."""
    counter = iter(range(10**6))

    @settings(
        max_examples=EXAMPLES_PER_FORMAT,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(df=tables())
    def check(df: pl.DataFrame) -> None:
        work = tmp_path / f"example-{next(counter)}"
        work.mkdir()
        monkeypatch.chdir(work)
        monkeypatch.setenv("BATCHGRADER_HOME", str(work / "home"))
        src = write_table(work / f"input.{fmt}", df, fmt)
        original = src.read_bytes()
        result = bg("grade", src.name, "--json")
        assert result.exit_code == 0, result.output
        out = work / "output" / f"input.graded.{fmt}"
        got = read_back(out, fmt)
        want = read_back(src, fmt)
        assert len(got) == len(want) == df.height
        assert src.read_bytes() == original
        for index, (row, before) in enumerate(zip(got, want, strict=True)):
            names = list(row)
            assert names[: len(df.columns)] == df.columns, names
            assert all(name.startswith("llm_") for name in names[len(df.columns) :]), names
            assert {k: row[k] for k in df.columns} == before, index
            text = df[TEXT][index]
            if is_blank(text):
                assert row["llm_error"] == "skipped: empty text", (index, text)
                assert row["llm_score"] in (None, ""), (index, row)
            else:
                assert row["llm_error"] in (None, ""), (index, row)
                assert int(row["llm_score"]) == judge_score(USER + text), (index, text)
        if fmt in ("csv", "tsv"):
            expected = [{k: as_csv_text(v) for k, v in r.items()} for r in df.to_dicts()]
            assert want == expected  # the input itself holds the table's values
        else:
            assert want == df.to_dicts()

    check()
