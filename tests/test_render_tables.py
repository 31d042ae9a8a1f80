"""Every table fits 80 and 60 columns on a terminal without cutting a number, id or path,
and prints as plain lines (every value whole, one row per line) elsewhere."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from rich.cells import cell_len
from rich.console import Console, RenderableType

from batchgrader.cli._context import show
from batchgrader.config_report import config_report, path_report
from batchgrader.execution.listing import ChunkLine, JobDetail, JobLine, JobList
from batchgrader.execution.maintenance import CleanReport, ForgottenLimits
from batchgrader.execution.session import RunReport
from batchgrader.execution.summary import RunSummary
from batchgrader.ledger.records import UsageEvent
from batchgrader.money.costs import build_report
from batchgrader.planning.estimate import CostEstimate, CountReport, FileCount
from batchgrader.planning.plans import DryRun, PlannedChunk, PlannedFile
from batchgrader.planning.splitting import FileSplit, PartSpec, SplitLimits, SplitReport
from batchgrader.render.config import paths_table, settings_table
from batchgrader.render.costs import costs_table
from batchgrader.render.fit import FitTable
from batchgrader.render.jobs import clean_report, forgotten_limits, job_detail_table, jobs_table
from batchgrader.render.planning import count_table, dry_run_table, estimate_line, split_table
from batchgrader.render.summary import summary_table
from batchgrader.settings.loading import load_settings

WIDTHS = (80, 60)
#: Paths as long as a real project's (54 characters: a note line "[1] ..." fits 60).
INPUT = "/home/researcher/essay-grading/data/2026/answers_01.csv"
OUTPUT = "/home/researcher/essay-grading/output/answers.graded.csv"
JOB = "20261201-024512-a1b2c3"
BATCH = "batch_6801f2a3b4c5d6e7f8091a2b3c4d5e6f"
NOW = datetime(2026, 11, 15, 12, 0, tzinfo=UTC)
MONEY = CostEstimate(
    input=Decimal("1234.5678"),
    output_expected=Decimal("0.0000616"),
    output_worst=Decimal("12.5"),
    total_expected=Decimal("1234.5678616"),
    total_worst=Decimal("1247.0678"),
    sync_total_expected=Decimal("2469.1357232"),
    sync_total_worst=Decimal("2494.1356"),
)


def draw(renderable: RenderableType, width: int, *, terminal: bool = True) -> str:
    """What the CLI prints for ``renderable`` on a console of ``width`` columns."""
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=terminal, color_system=None)
    show(console, renderable)
    return out.getvalue()


def assert_fits(text: str, width: int, whole: list[str]) -> None:
    """No line is wider than ``width`` (but a line holding one long value alone, as
    ``  value`` or ``[n] value``), nothing is ellipsised, and every value is whole."""
    for line in text.splitlines():
        if cell_len(line.rstrip()) > width:
            alone = re.sub(r"^(\[\d+\] | +)", "", line.rstrip())
            assert alone in whole, f"wider than {width}: {line}"
    assert "…" not in text
    for value in whole:
        assert value in text, f"{value!r} is cut or missing at {width} columns:\n{text}"


# --- the models, as the commands build them ---------------------------------------------


def count_report() -> CountReport:
    big = FileCount(
        path=INPUT,
        rows=11_783_456,
        skipped=0,
        requests=11_783_456,
        input_tokens=2_345_678_901,
        mean_tokens=199.1,
        max_tokens=12_345,
        max_row=11_783_001,
        over_context=0,
        expected_output_tokens=1,
        worst_output_tokens=2,
        cost=MONEY,
    )
    return CountReport(
        model="gpt-4.1-mini",
        priced_as="gpt-4.1-mini",
        encoding="o200k_base",
        endpoint="/v1/chat/completions",
        prompt="generic",
        context_window=1_047_576,
        files=[big, big.model_copy(update={"path": "b.csv"})],
        total=big.model_copy(update={"path": "total"}),
    )


def dry_run() -> DryRun:
    chunks = [
        PlannedChunk(
            chunk=n,
            first_row=(n - 1) * 50_000 + 1,
            last_row=n * 50_000,
            requests=50_000,
            tokens=9_876_543,
            bytes=198_765_432,
            file=f"chunk-{n:04d}.jsonl",
        )
        for n in (1, 2, 236)
    ]
    plan = PlannedFile(
        input=INPUT,
        rows=11_783_456,
        requests=11_783_456,
        skipped=0,
        tokens=2_345_678_901,
        folder="output/dry-run-answers_01-20261201T024512Z",
        chunks=chunks,
    )
    return DryRun(
        model="gpt-4.1-mini",
        endpoint="/v1/chat/completions",
        plans=[plan],
        estimate=MONEY,
        expected_output_tokens=6,
    )


def run_report() -> RunReport:
    summary = RunSummary(
        job_id=JOB,
        input=INPUT,
        output=OUTPUT,
        status="done",
        rows=11_783_456,
        graded=11_783_000,
        failed=456,
        skipped=0,
        invalid_answers=0,
        score_counts={"1": 10, "5": 100},
        chunks=236,
        chunks_failed=0,
        input_tokens=2_345_678_901,
        output_tokens=23_567_890,
        cost=Decimal("1234.5678"),
        errors=["chunk 3: batch expired: 456 rows not graded"],
        error_log=OUTPUT + ".errors.log",
    )
    return RunReport(files=[summary], today_cost=Decimal("0.03"))


def job_line() -> JobLine:
    return JobLine(
        id=JOB,
        file=INPUT,
        model="gpt-4.1-mini-2025-04-14",
        status="submitted",
        chunks_done=12,
        chunks=236,
        rows=11_783_456,
        cost=Decimal("0.0312"),
        created_at=NOW,
        age_seconds=7384,
        output=None,
    )


def job_detail() -> JobDetail:
    chunk = ChunkLine(
        chunk=12,
        first_row=550_001,
        last_row=600_000,
        requests=50_000,
        tokens=9_876_543,
        status="in_progress",
        mode="batch",
        batch_id=BATCH,
        completed=49_990,
        failed=10,
        error="expired: 10 rows not run before the batch expired",
    )
    other = chunk.model_copy(update={"chunk": 13, "error": None, "batch_id": BATCH[:-1] + "0"})
    return JobDetail(job=job_line().model_copy(update={"output": OUTPUT}), chunks=[chunk, other])


def split_report() -> SplitReport:
    parts = [
        PartSpec(
            part=n,
            file=f"/data/answers_parts/answers_part{n:02d}.csv",
            first_row=(n - 1) * 1_000_000 + 1,
            last_row=n * 1_000_000,
            rows=1_000_000,
            requests=999_999,
            tokens=199_999_999,
            bytes=1_234_567_890,
        )
        for n in (1, 12)
    ]
    split = FileSplit(
        input=INPUT,
        format="csv",
        rows=11_783_456,
        requests=11_783_450,
        tokens=2_345_678_901,
        within_limits=False,
        out_dir="/data/answers_parts",
        parts=parts,
    )
    return SplitReport(
        model="gpt-4.1-mini",
        encoding="o200k_base",
        prompt="generic",
        limits=SplitLimits(rows=1_000_000, tokens=200_000_000),
        dry_run=False,
        files=[split],
    )


def usage(batch: str, when: datetime, *, committed: bool = False, job: str = JOB) -> UsageEvent:
    return UsageEvent(
        timestamp=when.isoformat(),
        batch_id=batch,
        job_id=job,
        source_file=INPUT,
        api_key_prefix="sk-...wxyz",
        base_url_host="api.openai.com",
        model="gpt-4.1-mini-2025-04-14",
        endpoint="/v1/chat/completions",
        input_tokens=123_456_789,
        cached_input_tokens=12_345_678,
        output_tokens=9_876_543,
        reasoning_tokens=0,
        total_tokens=133_333_332,
        cost=Decimal("1234.567891"),
        committed=committed,
        requests_completed=50_000,
        requests_failed=0,
    )


def cost_report(by: Any) -> Any:
    events = [
        usage("batch_a", NOW - timedelta(hours=2)),
        usage("batch_b", NOW - timedelta(days=3), committed=True),
    ]
    return build_report(events, now=NOW, by=by)


# --- the tests --------------------------------------------------------------------------

CASES: dict[str, tuple[Callable[[], RenderableType], list[str]]] = {
    "count": (
        lambda: count_table(count_report()),
        ["11,783,456", "2,345,678,901", INPUT, "$1,234.57", "$1,247.07"],
    ),
    "dry run": (
        lambda: dry_run_table(dry_run()),
        ["11,750,001-11,800,000", "9,876,543", "output/dry-run-answers_01-20261201T024512Z"],
    ),
    "summary": (
        lambda: summary_table(run_report()),
        ["11,783,000", "2,345,678,901", "23,567,890", "$1,234.57", OUTPUT, OUTPUT + ".errors.log"],
    ),
    "jobs list": (lambda: jobs_table(JobList(jobs=[job_line()])), [JOB, "11,783,456"]),
    "jobs show": (
        lambda: job_detail_table(job_detail()),
        [JOB, BATCH, BATCH[:-1] + "0", "49,990", INPUT, OUTPUT, "expired:"],
    ),
    "split": (
        lambda: split_table(split_report()),
        ["11,000,001-12,000,000", "199,999,999", "answers_part12.csv", "/data/answers_parts"],
    ),
    "costs by model": (
        lambda: costs_table(cost_report("model")),
        ["133,333,332", "$1,234.57", "gpt-4.1-mini-2025-04-14"],
    ),
    "costs by file": (lambda: costs_table(cost_report("file")), ["133,333,332", INPUT]),
    "costs by job": (lambda: costs_table(cost_report("job")), ["$1,234.57", JOB]),
    "costs by day": (lambda: costs_table(cost_report("day")), ["2026-11-15", "$1,234.57"]),
    "clean": (
        lambda: clean_report(CleanReport(removed=[JOB], kept_for_retry=[], remote_files_deleted=3)),
        ["1 finished job(s)", "3 file(s)"],
    ),
    "forget limits": (
        lambda: forgotten_limits(ForgottenLimits(forgotten={"gpt-4o": 90_000_000})),
        ["90,000,000"],
    ),
}


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("case", list(CASES))
def test_table_fits_without_cutting(case: str, width: int) -> None:
    """At 80 and 60 columns every line fits and every number, id and path is whole."""
    build, whole = CASES[case]
    assert_fits(draw(build(), width), width, whole)


@pytest.mark.parametrize("width", WIDTHS)
def test_settings_and_paths_fit(
    width: int, isolated_env: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """config show and config path fit; a long setting value and the paths stay whole."""
    out = isolated_env / "a-rather-long-folder-name-for-graded-files"
    monkeypatch.setenv("BATCHGRADER_PATHS__OUTPUT_DIR", str(out))
    (isolated_env / "batchgrader.toml").write_text('[request]\nmodel = "gpt-4o"\n')
    loaded = load_settings(None, None)
    report = config_report(loaded)
    sources = [f"{r.source} ({r.source_detail})" for r in report.settings if r.source_detail]
    values = [str(out), "gpt-4o", "request.max_tokens_per_response", *sources]
    assert_fits(draw(settings_table(report), width), width, values)
    paths = path_report(loaded)
    places = [str(r.path) for r in paths.paths]
    assert_fits(draw(paths_table(paths), width), width, places)


def test_a_path_longer_than_the_screen_is_printed_whole() -> None:
    """A path wider than the terminal is never cut: it is printed whole on its own line."""
    long = "/mnt/shared/projects/" + "very-long-folder-name/" * 4 + "answers.graded.csv"
    report = run_report()
    report.files[0].output = long
    text = draw(summary_table(report), 60)
    assert f"  {long}" in text.splitlines()


def test_what_gives_way_first_is_named() -> None:
    """Dropped columns are named under the table; moved ids are listed as numbered notes."""
    text = draw(job_detail_table(job_detail()), 60)
    assert "Not shown at 60 columns: requests, tokens" in text
    assert f"[1] {BATCH}" in text.splitlines()
    wide = draw(job_detail_table(job_detail()), 200)
    assert "Not shown" not in wide and BATCH in wide and "[1]" not in wide


def test_all_zero_columns_go_first() -> None:
    """A listed column of zeros is dropped before columns with figures."""
    table = FitTable(shrink=("a", "b"))
    table.column("name", "text")
    table.column("a", "num")
    table.column("b", "num")
    table.row("x" * 20, "12,345,678", "0")
    layout = table.layout(34)
    assert layout.dropped == ["b"]


@pytest.mark.parametrize("case", ["count", "summary", "jobs list", "jobs show", "split"])
def test_plain_lines_without_a_terminal(case: str) -> None:
    """Without a terminal a table prints plain aligned lines: no box, nothing dropped."""
    build, whole = CASES[case]
    text = draw(build(), 80, terminal=False)
    assert not set("┃│━┏┗") & set(text)
    assert "Not shown" not in text and "[1]" not in text
    for value in whole:
        assert value in text


def test_plain_lines_keep_each_row_on_one_line() -> None:
    """A piped jobs list has one line per job with every figure of the job on it."""
    text = draw(jobs_table(JobList(jobs=[job_line()])), 80, terminal=False)
    (line,) = [row for row in text.splitlines() if JOB in row]
    for value in ("answers_01.csv", "gpt-4.1-mini-2025-04-14", "12/236", "11,783,456", "2h03m"):
        assert value in line


@pytest.mark.parametrize(
    ("mode", "tier", "said"),
    [
        (
            "auto",
            None,
            "Estimated cost at Batch API rates: $1,234.57 expected, $1,247.07 worst case "
            "(synchronous: $2,469.14)",
        ),
        (
            "direct",
            None,
            "Estimated cost of direct calls at synchronous rates: $2,469.14 expected, "
            "$2,494.14 worst case (Batch API: $1,234.57)",
        ),
        (
            "direct",
            "flex",
            "Estimated cost of flex calls at Batch API rates: $1,234.57 expected, "
            "$1,247.07 worst case (synchronous: $2,469.14)",
        ),
        (
            "batch",
            "flex",
            "Estimated cost at Batch API rates: $1,234.57 expected, $1,247.07 worst case "
            "(synchronous: $2,469.14)",
        ),
    ],
)
def test_the_estimate_leads_with_the_rates_the_run_pays(
    mode: str, tier: str | None, said: str
) -> None:
    """A direct run is priced at synchronous rates, Batch API's beside (what batching
    would save); batches and flex calls at Batch API rates, synchronous beside."""
    report = dry_run().model_copy(update={"mode": mode, "service_tier": tier})
    assert " ".join(draw(estimate_line(report), 200).split()) == said
