"""Drawing the report: rich at 80 and 60 columns (nothing that matters is cut), and the
HTML page (self-contained, escaped)."""

from __future__ import annotations

import io
import re
from decimal import Decimal
from typing import Any

import pytest
from rich.console import Console

from batchgrader.render.report import judge_report
from batchgrader.render.report_html import page
from batchgrader.report.model import JudgeReport

LONG_PATH = "/data/projects/" + "very-long-folder-name/" * 5 + "essays.graded.parquet"
JOB_ID = "20260101-120000-abcdef"


def sample(labels: int = 5, count: int = 1234, text: str = "A long text. " * 30) -> JudgeReport:
    """A report with every section; ``labels`` scale values, ``count`` rows per cell."""
    values = [str(v) for v in range(1, labels + 1)]
    matrix = [[count // (1 + abs(i - j)) for j in range(labels)] for i in range(labels)]
    n = sum(map(sum, matrix))
    data: dict[str, Any] = {
        "file": LONG_PATH,
        "format": "parquet",
        "rows": 1_234_567,
        "field": "score",
        "column": "llm_score",
        "kind": "ordinal",
        "scale": [1, labels],
        "scored": 1_200_000,
        "failed": {"unparseable": 30_000, "invalid_prompt": 4_567},
        "distribution": {v: 120_000 * (i + 1) for i, v in enumerate(values)},
        "shares": {v: (i + 1) / labels for i, v in enumerate(values)},
        "mean": 3.25,
        "median": 3.0,
        "fields": [
            {
                "field": "tone",
                "column": "llm_tone",
                "kind": "categorical",
                "scale": None,
                "scored": 3,
                "distribution": {"<b>warm</b>": 2, "cold": 1},
                "shares": {"<b>warm</b>": 2 / 3, "cold": 1 / 3},
                "mean": None,
                "median": None,
            }
        ],
        "not_reported": {"llm_reasoning": "is free text"},
        "usage": {
            "job_id": JOB_ID,
            "model": "gpt-4.1-mini-2025-04-14",
            "batches": 25,
            "input_tokens": 987_654_321,
            "cached_input_tokens": 12_345,
            "output_tokens": 7_654_321,
            "reasoning_tokens": 0,
            "total_tokens": 995_308_642,
            "cost": Decimal("123.456789"),
            "unpriced_batches": 0,
            "answered": 1_200_000,
            "per_row": {
                "input_tokens": 823.0,
                "output_tokens": 6.4,
                "total_tokens": 829.4,
                "cost": Decimal("0.000102880657"),
            },
        },
        "agreement": {
            "labels_column": "human_score",
            "kind": "ordinal",
            "n": n,
            "unlabelled": 1_000_000,
            "unscored": 17,
            "exact": 0.61,
            "within_one": 0.93,
            "cohen_kappa": 0.52,
            "quadratic_weighted_kappa": 0.81,
            "spearman": 0.8,
            "mae": 0.47,
            "mean_difference": -0.21,
            "confusion": {"labels": values, "matrix": matrix},
            "ci": {
                "exact": [0.6, 0.62],
                "quadratic_weighted_kappa": [0.8, 0.82],
                "level": 0.95,
                "resamples": 1000,
                "seed": 19,
            },
            "undefined": {},
            "disagreements": [
                {"row": 123_456 + i, "judge": 5, "label": 1, "difference": 4, "text": text}
                for i in range(10)
            ],
        },
    }
    return JudgeReport.model_validate(data)


def draw(report: JudgeReport, width: int) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None, soft_wrap=True)
    console.print(judge_report(report))
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(out, str)
    return out


@pytest.mark.parametrize("width", [80, 60])
class TestTerminal:
    def test_fits_the_width(self, width: int) -> None:
        """No line is wider than the terminal."""
        for line in draw(sample(), width).splitlines():
            assert len(line) <= width, line

    def test_numbers_ids_and_paths_are_never_cut(self, width: int) -> None:
        """Every count, the job id and the file's path appear whole (a path may fold)."""
        out = draw(sample(), width)
        for whole in (
            "1,234,567",
            "1,200,000",
            "30,000",
            "4,567",
            "987,654,321",
            "7,654,321",
            "$123.46",
            "123,456",
            "123,465",
            JOB_ID,
            "61.0%",
            "60.0–62.0%",
            "0.800–0.820",
            "-0.21",
        ):
            assert whole in out, whole
        assert LONG_PATH in out.replace("\n", "")
        cut = [line for line in out.splitlines() if "…" in line]
        assert all("A long text" in line for line in cut), cut

    def test_every_section_is_there(self, width: int) -> None:
        """Rows, failures, distributions, tokens and cost, agreement, matrix, rows."""
        out = " ".join(draw(sample(), width).split())  # words may wrap, never numbers
        for part in (
            "Rows",
            "unparseable",
            "the answer held no valid score",
            "invalid_prompt",
            "the provider failed the request",
            "tone (3 rows)",
            "Tokens and cost",
            "Agreement with human_score",
            "moderate",
            "almost perfect",
            "judge harsher",
            "Confusion matrix",
            "Not reported: llm_reasoning is free text.",
        ):
            assert part in out, part


def test_a_wide_confusion_matrix_becomes_a_list_of_cells() -> None:
    """Ten 4-digit columns do not fit 60 columns: the matrix is listed cell by cell
    instead of cut; at 120 columns it is a matrix."""
    report = sample(labels=10, count=4321)
    narrow, wide = draw(report, 60), draw(report, 120)
    assert "label \\ judge" in wide and "label \\ judge" not in narrow
    assert re.search(r"^\s*10\s+10\s+4,321\s*$", narrow, re.MULTILINE)
    for line in narrow.splitlines():
        assert len(line) <= 60


class TestHtml:
    def test_self_contained(self) -> None:
        """No script, stylesheet link, font, image or URL: the page needs no network."""
        html = page(sample())
        assert html.startswith("<!doctype html>")
        for banned in ("<script", "<link", "<img", "http://", "https://", "@import", "url("):
            assert banned not in html, banned

    def test_values_from_the_file_are_escaped(self) -> None:
        """Texts, categories and labels from the file are escaped, never markup."""
        report = sample(text="<script>alert('x')</script> & more")
        html = page(report)
        assert "<script>" not in html and "<b>warm</b>" not in html
        assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in html
        assert "&lt;b&gt;warm&lt;/b&gt;" in html

    def test_has_every_chart_and_figure(self) -> None:
        """Distributions, the heat map, the figures and the disagreeing rows are there."""
        html = page(sample())
        assert html.count('data-chart="distribution"') == 2
        assert "data-chart='confusion'" in html and "data-chart='figures'" in html
        assert "Landis &amp; Koch (1977)" in html
        assert "row 123,456 · judge 5 · label 1 (+4)" in html
        assert "prefers-color-scheme: dark" in html and "width=device-width" in html
