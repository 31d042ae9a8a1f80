"""``batchgrader report`` end to end: real graded files written by ``grade`` against the
fake Batch API, in every format, read back and reported."""

from __future__ import annotations

import json
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import cohen_kappa_score
from typer.testing import Result

from tests.fakes.batch_api import FakeBatchAPI
from tests.helpers import FORMATS, read_rows, write_table

Invoke = Callable[..., Result]


def essay(i: int, score: int | None) -> str:
    """A text the fake judge scores ``score`` (``[[score:N]]``), or an empty text."""
    if score is None:
        return ""
    return f"Essay {i}: rivers carve valleys over {i + 3} thousand years. [[score:{score}]]"


JUDGE = [3, 4, 2, 5, 1, 3, 3, 4, 5, 2, 4, 4, 1, 3, 5, 2]
HUMAN = [3, 5, 2, 4, 2, 3, 1, 4, 5, 2, 4, 3, 1, None, 5, 4]


def labelled_input(
    folder: Path, ext: str, judge: Sequence[int | None], human: Sequence[Any]
) -> Path:
    """An input whose judge scores are fixed by markers, with a ``human`` label column."""
    frame = pl.DataFrame(
        {
            "id": list(range(len(judge))),
            "response": [essay(i, s) for i, s in enumerate(judge)],
            "human": human,
        },
        strict=False,
    )
    return write_table(folder / f"data.{ext}", frame)


def graded(bg: Invoke, src: Path, *args: object) -> Path:
    """Grade ``src`` for real and return its graded file."""
    result = bg("grade", src, *args)
    assert result.exit_code in (0, 1), result.output
    return src.parent / "output" / f"{src.stem}.graded{src.suffix}"


def report_json(bg: Invoke, *args: object) -> dict[str, Any]:
    result = bg("report", *args, "--json")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def error_line(result: Result) -> str:
    """The one error message of a failed command, unwrapped (a hint may follow)."""
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Error: ") and result.stderr.count("Error:") == 1
    message = result.stderr.split("Hint: ")[0]
    return " ".join(message.split())  # as one line, however the console wrapped it


def sk(label: list[int], judge: list[int], **kw: Any) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(cohen_kappa_score(label, judge, **kw))


@pytest.mark.parametrize("fmt", FORMATS)
def test_rows_failures_and_distribution_from_every_format(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, fmt: str
) -> None:
    """Every format grade writes is read back: rows, scored, failures by code and the
    distribution match the graded file row by row."""
    judge: list[int | None] = [4, 2, None, 5, 4, 1, 3, 4]
    src = isolated_env / f"data.{fmt}"
    texts = [essay(i, s) for i, s in enumerate(judge)]
    texts[4] = "This one breaks [[fail:invalid_prompt]]"
    texts[6] = "No score here [[garbage]]"
    write_table(src, pl.DataFrame({"id": list(range(8)), "response": texts}), fmt)
    out = graded(bg, src)
    data = report_json(bg, out)
    rows = read_rows(out)
    scores = [r["llm_score"] for r in rows]
    scores = [int(s) for s in scores if s not in (None, "")]
    assert data["rows"] == 8 == len(rows)
    assert data["scored"] == len(scores) == 5
    assert data["failed"] == {"invalid_prompt": 1, "skipped": 1, "unparseable": 1}
    counts = Counter(scores)
    assert data["distribution"] == {str(v): counts.get(v, 0) for v in range(1, 6)}
    assert data["shares"]["4"] == pytest.approx(2 / 5)
    assert data["mean"] == pytest.approx(np.mean(scores))
    assert data["median"] == pytest.approx(np.median(scores))
    assert data["scale"] == [1, 5] and data["format"] == fmt
    assert data["file"] == str(out.resolve())


def test_tokens_and_cost_come_from_the_ledger(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """The job's tokens and cost are the run summary's; per row is per answered row."""
    src = labelled_input(isolated_env, "csv", JUDGE, HUMAN)
    run = bg("grade", src, "--json")
    assert run.exit_code == 0, run.output
    summary = json.loads(run.stdout)["files"][0]
    usage = report_json(bg, isolated_env / "output" / "data.graded.csv")["usage"]
    assert usage["job_id"] == summary["job_id"]
    assert usage["input_tokens"] == summary["input_tokens"]
    assert usage["output_tokens"] == summary["output_tokens"]
    assert isinstance(usage["cost"], float)
    assert Decimal(str(usage["cost"])) == Decimal(str(summary["cost"]))
    assert usage["answered"] == len(JUDGE)
    assert usage["per_row"]["input_tokens"] == pytest.approx(usage["input_tokens"] / len(JUDGE))
    assert usage["per_row"]["cost"] == pytest.approx(usage["cost"] / len(JUDGE))


def test_without_the_ledger_there_is_no_usage(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, tmp_path: Path
) -> None:
    """A graded file the ledger does not know (a copy) is reported without tokens or cost."""
    out = graded(bg, labelled_input(isolated_env, "parquet", JUDGE, HUMAN))
    copy = tmp_path / "elsewhere.parquet"
    copy.write_bytes(out.read_bytes())
    data = report_json(bg, copy)
    assert data["usage"] is None
    assert data["scale"] is None  # the scale comes from the job
    assert data["scored"] == len(JUDGE)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_agreement_with_labels_matches_the_references(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, fmt: str
) -> None:
    """--labels: the figures are scikit-learn's and scipy's on the rows with both."""
    out = graded(bg, labelled_input(isolated_env, fmt, JUDGE, HUMAN))
    a = report_json(bg, out, "--labels", "human")["agreement"]
    pairs = [(j, h) for j, h in zip(JUDGE, HUMAN, strict=True) if h is not None]
    judge, label = [j for j, _ in pairs], [h for _, h in pairs]
    x, y = np.array(judge), np.array(label)
    assert a["n"] == len(pairs) == 15
    assert a["unlabelled"] == 1 and a["unscored"] == 0
    assert a["exact"] == pytest.approx(np.mean(x == y))
    assert a["within_one"] == pytest.approx(np.mean(np.abs(x - y) <= 1))
    assert a["cohen_kappa"] == pytest.approx(sk(label, judge))
    assert a["quadratic_weighted_kappa"] == pytest.approx(
        sk(label, judge, labels=[1, 2, 3, 4, 5], weights="quadratic")
    )
    assert a["spearman"] == pytest.approx(spearmanr(judge, label).statistic)
    assert a["mae"] == pytest.approx(np.mean(np.abs(x - y)))
    assert a["mean_difference"] == pytest.approx(np.mean(x - y))
    assert a["confusion"]["labels"] == ["1", "2", "3", "4", "5"]
    assert a["confusion"]["matrix"][0] == [1, 0, 1, 0, 0]  # label 1: judge said 1 and 3
    low, high = a["ci"]["exact"]
    assert low <= a["exact"] <= high
    assert a["ci"]["resamples"] == 1000 and a["undefined"] == {}


def test_disagreements_are_the_widest_gaps_with_their_text(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """The listed rows are the biggest |judge - label| first, 1-based, with their text."""
    out = graded(bg, labelled_input(isolated_env, "csv", JUDGE, HUMAN))
    found = report_json(bg, out, "--labels", "human")["agreement"]["disagreements"]
    assert [(d["row"], d["difference"]) for d in found] == [
        (7, 2),
        (16, -2),
        (2, -1),
        (4, 1),
        (5, -1),
        (12, 1),
    ]
    assert found[0]["judge"] == 3 and found[0]["label"] == 1
    assert found[0]["text"] == essay(6, 3)


def test_long_texts_are_cut_short(bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path) -> None:
    """A disagreeing row's text is kept to 200 characters, on one line."""
    text = "word\nand more words " * 40 + "[[score:1]]"
    src = write_table(
        isolated_env / "long.csv", pl.DataFrame({"response": [text, essay(1, 2)], "human": [5, 2]})
    )
    found = report_json(bg, graded(bg, src), "--labels", "human")["agreement"]["disagreements"]
    assert len(found) == 1
    assert len(found[0]["text"]) == 200 and found[0]["text"].endswith("…")
    assert "\n" not in found[0]["text"]


SCHEMA = {
    "type": "object",
    "properties": {
        "reasoning": {"type": "string"},
        "clarity": {"type": "integer", "minimum": 1, "maximum": 3},
        "tone": {"type": "string", "enum": ["cold", "neutral", "warm"]},
        "score": {"type": "integer", "minimum": 1, "maximum": 5},
    },
}


SCHEMA_ENUM = ["cold", "neutral", "warm"]


def schema_file(folder: Path) -> Path:
    path = folder / "schema.json"
    path.write_text(json.dumps(SCHEMA), encoding="utf-8")
    return path


def test_schema_fields_numbers_and_categories(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """With --schema, each number and category field is reported; free text is not."""
    src = labelled_input(isolated_env, "csv", JUDGE, HUMAN)
    out = graded(bg, src, "--schema", schema_file(isolated_env))
    data = report_json(bg, out)
    fields = {f["field"]: f for f in data["fields"]}
    assert set(fields) == {"clarity", "tone"}
    tones = Counter(r["llm_tone"] for r in read_rows(out))
    assert fields["tone"]["kind"] == "categorical"
    assert fields["tone"]["distribution"] == {t: tones.get(t, 0) for t in SCHEMA_ENUM}
    assert fields["clarity"]["kind"] == "ordinal" and fields["clarity"]["scale"] == [1, 3]
    assert list(fields["clarity"]["distribution"]) == ["1", "2", "3"]
    assert data["not_reported"] == {"llm_reasoning": "is free text"}


def test_categorical_field_against_labels(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """--field tone --labels: exact agreement, Cohen's kappa and the confusion matrix;
    the ordinal figures are null with a reason."""
    src = labelled_input(isolated_env, "jsonl", JUDGE, HUMAN)
    out = graded(bg, src, "--schema", schema_file(isolated_env))
    tones = [r["llm_tone"] for r in read_rows(out)]
    human_tone = ["warm" if i % 3 else t for i, t in enumerate(tones)]
    frame = pl.read_ndjson(out).with_columns(pl.Series("human_tone", human_tone))
    frame.write_ndjson(out)
    data = report_json(bg, out, "--field", "tone", "--labels", "human_tone")
    a = data["agreement"]
    assert data["field"] == "tone" and data["kind"] == "categorical" and a["kind"] == "categorical"
    assert a["cohen_kappa"] == pytest.approx(sk(human_tone, tones))  # type: ignore[arg-type]
    assert a["exact"] == pytest.approx(np.mean(np.array(tones) == np.array(human_tone)))
    for name in ("within_one", "quadratic_weighted_kappa", "spearman", "mae", "mean_difference"):
        assert a[name] is None and "categorical" in a["undefined"][name]
    assert a["ci"]["quadratic_weighted_kappa"] is None
    assert a["confusion"]["labels"] == SCHEMA_ENUM
    assert all(d["difference"] is None for d in a["disagreements"])


def test_perfect_single_value_agreement_is_null_with_a_reason(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """Judge and label both 4 on every row: kappas and rho are null, each with a reason."""
    out = graded(bg, labelled_input(isolated_env, "csv", [4] * 6, [4] * 6))
    a = report_json(bg, out, "--labels", "human")["agreement"]
    assert a["exact"] == 1.0
    for name in ("cohen_kappa", "quadratic_weighted_kappa", "spearman"):
        assert a[name] is None
        assert a["undefined"][name]
    assert a["ci"]["quadratic_weighted_kappa"] is None


def test_a_label_the_judge_never_gave_is_in_the_matrix(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """Labels of 1 where the judge never says 1: a row of the matrix, not an error."""
    judge = [2, 3, 4, 5, 3, 4]
    human = [1, 3, 4, 5, 1, 4]
    out = graded(bg, labelled_input(isolated_env, "parquet", judge, human))
    a = report_json(bg, out, "--labels", "human")["agreement"]
    assert a["confusion"]["matrix"][0] == [0, 1, 1, 0, 0]
    assert a["cohen_kappa"] == pytest.approx(sk(human, judge))


class TestBadInput:
    def test_no_score_column(self, bg: Invoke, isolated_env: Path) -> None:
        """A file without llm_score: exit 2, one line naming the file."""
        path = write_table(isolated_env / "plain.csv", [{"response": "x", "human": 3}])
        assert "no score column" in error_line(bg("report", path))

    def test_no_score_column_in_json_mode(self, bg: Invoke, isolated_env: Path) -> None:
        """--json: the error envelope alone on stdout, exit 2."""
        path = write_table(isolated_env / "plain.jsonl", [{"response": "x"}])
        result = bg("report", path, "--json")
        assert result.exit_code == 2
        envelope = json.loads(result.stdout)["error"]
        assert envelope["code"] == "input" and "no score column" in envelope["message"]

    @pytest.mark.parametrize(
        ("labels", "says"),
        [
            (["n/a", 3, 4], "row 1 holds 'n/a', not a number"),
            ([3, 9, 4], "row 2 holds '9', outside the judge's scale 1-5"),
            ([3, 4, "3.5"], "row 3 holds '3.5', a fraction"),
        ],
    )
    def test_labels_not_on_the_scale(
        self,
        bg: Invoke,
        fake_api: FakeBatchAPI,
        isolated_env: Path,
        labels: list[Any],
        says: str,
    ) -> None:
        """A label that is not a number, off the job's scale or a fraction: exit 2."""
        src = labelled_input(isolated_env, "csv", [3, 4, 4], [str(v) for v in labels])
        line = error_line(bg("report", graded(bg, src), "--labels", "human"))
        assert "labels column 'human' is not on the judge's scale" in line and says in line

    def test_no_row_with_both(self, bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path) -> None:
        """Labels only where the judge gave nothing: exit 2, one line."""
        src = labelled_input(isolated_env, "csv", [3, None, None], [None, 2, 4])
        line = error_line(bg("report", graded(bg, src), "--labels", "human"))
        assert "no row has both" in line

    def test_labels_column_missing(self, bg: Invoke, isolated_env: Path) -> None:
        """An unknown --labels column: exit 2, and the columns in the hint."""
        path = write_table(isolated_env / "g.csv", [{"llm_score": 3, "llm_error": None}])
        result = bg("report", path, "--labels", "humans")
        assert "no labels column 'humans'" in error_line(result)
        assert "llm_score" in result.stderr

    def test_score_column_not_numeric(self, bg: Invoke, isolated_env: Path) -> None:
        """A CSV whose llm_score holds text: exit 2, naming the row and the value."""
        path = isolated_env / "g.csv"
        path.write_text("llm_score,llm_error\n3,\ngood,\n", encoding="utf-8")
        line = error_line(bg("report", path))
        assert "llm_score is not numeric: row 2 holds 'good'" in line

    def test_unknown_field(self, bg: Invoke, isolated_env: Path) -> None:
        """--field naming no llm_<field> column: exit 2 with the fields there are."""
        path = write_table(isolated_env / "g.csv", [{"llm_score": 3, "llm_tone": "warm"}])
        result = bg("report", path, "--field", "clarity")
        assert "no answer field 'clarity'" in error_line(result)
        assert "score, tone" in result.stderr

    def test_missing_file(self, bg: Invoke, isolated_env: Path) -> None:
        """A file that does not exist: exit 2, one line."""
        assert "cannot be read" in error_line(bg("report", isolated_env / "nope.csv"))


class TestHtml:
    def test_writes_the_page_and_refuses_to_replace_it(
        self, bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
    ) -> None:
        """--html writes the page; again without --overwrite is exit 2; with it, replaced."""
        out = graded(bg, labelled_input(isolated_env, "csv", JUDGE, HUMAN))
        page = isolated_env / "pages" / "report.html"
        result = bg("report", out, "--labels", "human", "--html", page)
        assert result.exit_code == 0, result.output
        assert page.read_text(encoding="utf-8").startswith("<!doctype html>")
        assert f"Wrote {page}" in result.stderr
        again = bg("report", out, "--html", page)
        assert "exists" in error_line(again)
        page.write_text("old", encoding="utf-8")
        assert bg("report", out, "--html", page, "--overwrite").exit_code == 0
        assert "Judge report" in page.read_text(encoding="utf-8")

    def test_json_and_html_together(
        self, bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
    ) -> None:
        """--json with --html: the JSON alone on stdout, the page written, stderr empty."""
        out = graded(bg, labelled_input(isolated_env, "csv", JUDGE, HUMAN))
        page = isolated_env / "r.html"
        data = report_json(bg, out, "--html", page)
        assert data["rows"] == len(JUDGE) and page.exists()


def test_terminal_report_shows_every_section(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """The terminal report has the rows, the distribution, tokens and cost and agreement."""
    out = graded(bg, labelled_input(isolated_env, "csv", JUDGE, HUMAN))
    result = bg("report", out, "--labels", "human")
    assert result.exit_code == 0, result.output
    for part in (
        "Judge report: score",
        "Rows",
        "score (16 rows; mean",
        "Tokens and cost",
        "Agreement with human",
        "Cohen's kappa",
        "Confusion matrix",
        "Rows where judge and label differ most",
    ):
        assert part in result.stdout, part


@pytest.mark.parametrize("width", [80, 60])
def test_terminal_report_fits_the_terminal(
    bg: Invoke,
    fake_api: FakeBatchAPI,
    isolated_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    width: int,
) -> None:
    """At 80 and 60 columns every line of the printed report fits; the job id is whole."""
    out = graded(bg, labelled_input(isolated_env, "csv", JUDGE, HUMAN))
    monkeypatch.setenv("COLUMNS", str(width))
    result = bg("report", out, "--labels", "human")
    assert result.exit_code == 0, result.output
    for line in result.stdout.splitlines():
        assert len(line) <= width, line
    job_id = report_json(bg, out)["usage"]["job_id"]
    assert job_id in result.stdout


def test_help_is_complete(bg: Invoke) -> None:
    """report --help names the argument and every option."""
    result = bg("report", "--help")
    assert result.exit_code == 0
    for option in ("GRADED_FILE", "--labels", "--field", "--column", "--format", "--html"):
        assert option in result.stdout
    assert "--overwrite" in result.stdout and "--json" in result.stdout
