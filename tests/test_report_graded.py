"""Reading graded files: their fields and kinds, their error codes, their labels.

These build small graded files by hand (every format, CSV as text) and call the core
directly; ``test_report_cli.py`` covers files written by a real ``grade``.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from batchgrader.errors import InputFileError, UsageError
from batchgrader.report import build_report
from batchgrader.report.graded import Field, open_graded, scale_values
from batchgrader.report.job import JobFacts, UsageTotals
from batchgrader.report.labels import compare
from tests.helpers import FORMATS, write_table


def row(
    text: str, human: int | None, score: int | None, response: str | None, error: str | None
) -> dict[str, Any]:
    return {"text": text, "human": human, "llm_score": score, "llm_response": response,
            "llm_error": error}  # fmt: skip


ROWS = [
    row("a", 4, 4, "4", None),
    row("b", 2, 3, "3", None),
    row("c", None, 5, "5", None),
    row("", 1, None, None, "skipped: empty text"),
    row("e", 3, None, "hm", "unparseable: no number in 'hm'"),
    row("f", 5, None, None, "refused: the model declined"),
    row("g", 5, None, "...", "truncated: max tokens"),
    row("h", 2, None, None, "http_500"),
    row("i", 1, 1, "1", None),
]


def facts(schema: dict[str, Any] | None = None, scale: tuple[int, int] | None = (1, 5)) -> JobFacts:
    """What the ledger would say about the job (no usage)."""
    usage = UsageTotals(0, 0, 0, 0, 0, 0, Decimal(0), 0)
    return JobFacts("job-1", "gpt-test", scale, schema, "text", usage)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_gives_the_same_report(tmp_path: Path, fmt: str) -> None:
    """The same rows as CSV (text), TSV, JSON, JSONL or Parquet (typed) report alike."""
    path = write_table(tmp_path / f"g.{fmt}", ROWS)
    report = build_report(path, labels="human", text_column="text")
    assert report.rows == 9 and report.scored == 4
    assert report.failed == {
        "http_500": 1,
        "refused": 1,
        "skipped": 1,
        "truncated": 1,
        "unparseable": 1,
    }
    assert report.distribution == {"1": 1, "2": 0, "3": 1, "4": 1, "5": 1}
    assert report.mean == pytest.approx(13 / 4) and report.median == 3.5
    a = report.agreement
    assert a is not None and a.n == 3 and a.unlabelled == 1 and a.unscored == 5
    assert a.exact == pytest.approx(2 / 3)
    assert [(d.row, d.judge, d.label, d.text) for d in a.disagreements] == [(2, 3, 2, "b")]


def test_error_code_is_the_text_before_the_first_colon(tmp_path: Path) -> None:
    """``code: message`` counts under ``code``; a message with colons keeps one code."""
    rows: list[dict[str, Any]] = [
        {"llm_score": None, "llm_error": "invalid_prompt: bad: really bad"},
        {"llm_score": None, "llm_error": " invalid_prompt :x"},
        {"llm_score": None, "llm_error": ": no code"},
        {"llm_score": 2, "llm_error": "   "},
    ]
    report = build_report(write_table(tmp_path / "g.jsonl", rows))
    assert report.failed == {"invalid_prompt": 2, "error": 1}
    assert report.scored == 1


def test_whole_floats_and_padded_text_are_the_same_labels(tmp_path: Path) -> None:
    """Labels written as 4.0 or " 4 " are 4; an empty label is missing, not an error."""
    path = tmp_path / "g.csv"
    path.write_text("llm_score,human\n4,4.0\n3, 3 \n2,\n5,5\n", encoding="utf-8")  # CSV: all text
    a = build_report(path, labels="human").agreement
    assert a is not None and a.n == 3 and a.exact == 1.0 and a.unlabelled == 1


class TestFieldKinds:
    def test_without_a_schema_numbers_are_scales_and_short_strings_categories(
        self, tmp_path: Path
    ) -> None:
        """No ledger: numbers are ordinal, a few short strings categorical, the rest not
        reported (with the reason)."""
        rows = [
            {
                "llm_score": i % 5 + 1,
                "llm_clarity": str(i % 3 + 1),
                "llm_tone": ["warm", "cold"][i % 2],
                "llm_reasoning": "short",
                "llm_notes": f"note number {i} " * 4,
                "llm_id": str(i * 1.5),
                "llm_empty": None,
            }
            for i in range(120)
        ]
        report = build_report(write_table(tmp_path / "g.parquet", rows))
        kinds = {f.field: f.kind for f in report.fields}
        assert kinds == {"clarity": "ordinal", "tone": "categorical"}
        assert report.not_reported == {
            "llm_reasoning": "is free text",
            "llm_notes": "is free text (or too many different values to be categories)",
            "llm_id": "has 120 distinct values: not a scale",
            "llm_empty": "holds no values",
        }

    def test_the_jobs_schema_decides(self, tmp_path: Path) -> None:
        """With the job's schema: integer/number ordinal with bounds, enum and boolean
        categorical, other strings free text, whatever the values look like."""
        schema = {
            "properties": {
                "score": {"type": "integer"},
                "clarity": {"type": "integer", "minimum": 0, "maximum": 3},
                "weight": {"type": ["number", "null"]},
                "tone": {"type": "string", "enum": ["cold", "warm"]},
                "ok": {"type": "boolean"},
                "why": {"type": "string"},
                "tags": {"type": "array"},
            }
        }
        rows = [
            {
                "llm_score": 3,
                "llm_clarity": "1",
                "llm_weight": "0.5",
                "llm_tone": "warm",
                "llm_ok": "true",
                "llm_why": "x",
                "llm_tags": "[]",
            }
        ]
        graded = write_table(tmp_path / "g.csv", rows)
        found = open_graded(graded, None, facts(schema))
        by_name = {f.name: f for f in found.fields}
        assert by_name["score"] == Field("score", "llm_score", "ordinal", 1, 5, whole=True)
        assert by_name["clarity"] == Field("clarity", "llm_clarity", "ordinal", 0, 3, whole=True)
        assert by_name["weight"] == Field("weight", "llm_weight", "ordinal", whole=False)
        assert by_name["tone"].categories == ("cold", "warm")
        assert by_name["ok"].categories == ("false", "true")
        assert found.not_reported == {
            "llm_why": "is free text",
            "llm_tags": "is not a number or a category in the answer schema",
        }

    def test_a_schema_without_a_score_reports_its_first_field(self, tmp_path: Path) -> None:
        """llm_score empty (the schema has no score): the first field is reported instead."""
        rows = [{"llm_score": None, "llm_clarity": str(v), "llm_error": None} for v in (1, 2, 2)]
        report = build_report(write_table(tmp_path / "g.csv", rows))
        assert report.field == "clarity" and report.scored == 3
        assert "llm_score" in report.not_reported

    def test_field_that_is_not_reported_says_why(self, tmp_path: Path) -> None:
        """--field on a free-text column: exit-2 error saying it is free text."""
        rows = [{"llm_score": 1, "llm_reasoning": "because"}]
        with pytest.raises(UsageError, match="llm_reasoning is free text"):
            build_report(write_table(tmp_path / "g.csv", rows), field="reasoning")

    def test_the_labels_column_is_never_a_field(self, tmp_path: Path) -> None:
        """A labels column named like a field is compared with, not reported as a field."""
        rows = [{"llm_score": v, "llm_human": v} for v in (1, 2, 3)]
        report = build_report(write_table(tmp_path / "g.csv", rows), labels="llm_human")
        assert report.fields == [] and report.agreement is not None


class TestLabelsOnTheScale:
    def test_a_category_outside_the_enum(self, tmp_path: Path) -> None:
        """A categorical field with known categories refuses a label outside them."""
        schema = {"properties": {"tone": {"type": "string", "enum": ["cold", "warm"]}}}
        rows = [{"llm_score": 1, "llm_tone": "warm", "label": "hot"}]
        path = write_table(tmp_path / "g.csv", rows)
        graded = open_graded(path, None, facts(schema))
        with pytest.raises(InputFileError, match="row 1 holds 'hot', not one of: cold, warm"):
            compare(graded, graded.field("tone"), "label", None)

    def test_a_number_field_takes_fractional_labels(self, tmp_path: Path) -> None:
        """A schema ``number`` from 0 to 1 takes a label of 0.5, and refuses 1.5."""
        schema = {"properties": {"weight": {"type": "number", "minimum": 0, "maximum": 1}}}
        rows = [{"llm_score": 1, "llm_weight": "1.0", "label": 0.5}]
        graded = open_graded(write_table(tmp_path / "g.csv", rows), None, facts(schema))
        a = compare(graded, graded.field("weight"), "label", None)
        assert a.mae == 0.5 and a.confusion.labels == ["0.5", "1"]
        rows[0]["label"] = 1.5
        graded = open_graded(write_table(tmp_path / "g.csv", rows), None, facts(schema))
        with pytest.raises(InputFileError, match=r"holds '1\.5', outside the judge's scale 0-1"):
            compare(graded, graded.field("weight"), "label", None)

    def test_fractions_are_fine_when_the_judge_gives_fractions(self, tmp_path: Path) -> None:
        """Without a schema, a field where the judge gives 2.5 takes a label of 3.5."""
        rows = [
            {"llm_score": 1, "llm_weight": 2.5, "human": 3.5},
            {"llm_score": 1, "llm_weight": 3.0, "human": 3.0},
        ]
        path = write_table(tmp_path / "g.parquet", rows)
        a = build_report(path, field="weight", labels="human").agreement
        assert a is not None and a.confusion.labels == ["2.5", "3", "3.5"]
        assert a.mae == pytest.approx(0.5)


class TestScaleValues:
    def test_whole_scales_fill_their_gaps(self) -> None:
        """A whole-number scale lists every step between its bounds and what was seen."""
        field = Field("score", "llm_score", "ordinal", 1, 5)
        assert scale_values(field, [3, 7]) == [1, 2, 3, 4, 5, 6, 7]
        assert scale_values(Field("s", "llm_s", "ordinal"), [4, 2]) == [2, 3, 4]

    def test_categories_are_sorted_with_the_known_ones(self) -> None:
        """Categories: the known ones and the seen ones, sorted."""
        field = Field("tone", "llm_tone", "categorical", categories=("warm", "cold"))
        assert scale_values(field, ["neutral"]) == ["cold", "neutral", "warm"]
