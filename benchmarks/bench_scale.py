"""Peak memory of ``batchgrader grade`` as the number of batches grows, up to 1M rows.

``tests/test_scale.py`` keeps this path in the suite at 10,000 rows; this measures it at
scale. Every run grades a file of short answers (``id,response``, ~90 request tokens a row) with
``chunking.split_row_limit`` rows per batch (default 50,000; the token limit is raised
so that the row limit decides), against a fresh fake Batch API in this process (real
HTTP on 127.0.0.1, ``polls_per_state=1``). Sizes default to 50k, 100k, 200k, 500k and
1M rows: 1, 2, 4, 10 and 20 batches. Each run is a fresh subprocess whose stdout and
stderr are files (the live display is off); its wall time, CPU time and peak RSS come
from ``os.wait4``, its peak RSS from its own ``VmHWM`` at exit (``wait4``'s ``ru_maxrss``
would count this large parent's pages copied by fork). Every output is verified: every
row in order with the fake judge's score.

Memory must stay roughly flat in the number of batches (rows are streamed a batch at a
time; results go to per-batch Parquet files, are read back a window of rows at a time
and zipped onto the input as it streams to the output): the
target is a peak RSS at the largest size at most ``--max-growth`` (default 1.5) times
the peak at one batch.

    uv run python benchmarks/bench_scale.py                 # 50k .. 1m, about 4 minutes
    uv run python benchmarks/bench_scale.py --sizes 50k,200k --no-docs

Results are printed, written raw to ``benchmarks/results/scale-*.json`` and, unless
``--no-docs``, into ``docs/reliability.md`` between this script's markers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl
from harness import write_section

from tests.fakes.batch_api import FakeBatchAPI
from tests.fakes.judge import judge_score

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DOCS = ROOT / "docs" / "reliability.md"
RESULTS = HERE / "results"
BEGIN = "<!-- BEGIN bench_scale -->"
END = "<!-- END bench_scale -->"
REPRODUCE = "uv run python benchmarks/bench_scale.py"
USER = "Please evaluate the following text: "
WORDS = ("light", "sky", "blue", "scatter", "short", "long", "wave", "red", "sun", "air", "answer")


@dataclass
class Run:
    """One measured ``grade`` run."""

    rows: int
    batches: int
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    input_mb: float


def parse_size(text: str) -> int:
    """``50k`` -> 50000, ``1m`` -> 1000000."""
    text = text.strip().lower()
    factor = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * factor)


def answer(i: int) -> str:
    """The text of row ``i`` (as in tests/test_scale.py)."""
    return f"Answer {i}: " + " ".join(WORDS[(i * k) % len(WORDS)] for k in range(1, 9))


def write_input(path: Path, rows: int) -> None:
    """The input file of ``rows`` rows, written in slices (little memory here)."""
    step = 100_000
    with path.open("wb") as handle:
        for start in range(0, rows, step):
            ids = range(start, min(rows, start + step))
            pl.DataFrame({"id": ids, "response": [answer(i) for i in ids]}).write_csv(
                handle, include_header=start == 0
            )


def verify(output: Path, rows: int) -> None:
    """Every row in order, with the fake judge's score."""
    out = pl.read_csv(output, columns=["id", "llm_score", "llm_error"])
    if out.height != rows or out["id"].to_list() != list(range(rows)):
        raise SystemExit(f"{output}: rows missing or out of order")
    if out["llm_error"].null_count() != rows:
        raise SystemExit(f"{output}: some rows failed")
    want = [judge_score(USER + answer(i)) for i in range(rows)]
    if out["llm_score"].to_list() != want:
        raise SystemExit(f"{output}: wrong scores")


#: Runs ``python -m batchgrader`` and, at exit, writes the process's own peak RSS (VmHWM,
#: in kB) to the file named by its first argument. ``wait4``'s ``ru_maxrss`` is not used:
#: Linux counts in it the parent's memory copied by fork before exec, and this process,
#: which hosts the fake server and all its files, is large.
_MEASURED = (
    "import atexit, runpy, sys\n"
    "out = sys.argv.pop(1)\n"
    "def hwm():\n"
    "    with open('/proc/self/status') as status, open(out, 'w') as f:\n"
    "        f.write(next(l.split()[1] for l in status if l.startswith('VmHWM')))\n"
    "atexit.register(hwm)\n"
    "sys.argv[0] = 'batchgrader'\n"
    "runpy.run_module('batchgrader', run_name='__main__')\n"
)


def measured_cli(report: Path) -> list[str]:
    """The command prefix that runs batchgrader and records its peak RSS in ``report``."""
    if not Path("/proc/self/status").exists():  # not Linux: ru_maxrss it is
        return [sys.executable, "-m", "batchgrader"]
    return [sys.executable, "-c", _MEASURED, str(report)]


def peak_rss_kb(report: Path, fallback_kb: int) -> int:
    """The child's own peak RSS in kB (``fallback_kb`` when it did not report)."""
    try:
        return int(report.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return fallback_kb


def run_grade(rows: int, rows_per_batch: int, work: Path) -> Run:
    """Grade a fresh file of ``rows`` rows in a fresh home; measure the child."""
    source = work / "answers.csv"
    write_input(source, rows)
    (work / "batchgrader.toml").write_text(
        f"[chunking]\nsplit_row_limit = {rows_per_batch}\nsplit_token_limit = 1_000_000_000\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATCHGRADER_", "OPENAI_"))}
    env |= {
        "OPENAI_API_KEY": "sk-bench-scale-00000000000000",
        "BATCHGRADER_HOME": str(work / "home"),
        "BATCHGRADER_RUN__POLL_INTERVAL_SECONDS": "0.01",
        "BATCHGRADER_RUN__POLL_MAX_INTERVAL_SECONDS": "0.05",
    }
    cmd = [*measured_cli(work / "peak-rss-kb"), "grade", source.name, "--yes", "--json"]
    with FakeBatchAPI() as fake, (work / "stdout").open("w+b") as out:
        fake.polls_per_state = 1
        started = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            cwd=work,
            env=env | {"OPENAI_BASE_URL": fake.base_url},
            stdout=out,
            stderr=(work / "stderr").open("wb"),
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        batches = fake.batches_created
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit((work / "stderr").read_text(encoding="utf-8")[-3000:])
    verify(work / "output" / "answers.graded.csv", rows)
    return Run(
        rows=rows,
        batches=batches,
        wall_s=round(wall, 2),
        cpu_s=round(usage.ru_utime + usage.ru_stime, 2),
        peak_rss_mb=round(peak_rss_kb(work / "peak-rss-kb", usage.ru_maxrss) / 1024, 1),
        input_mb=round(source.stat().st_size / 1e6, 1),
    )


def table(runs: list[Run]) -> str:
    """The Markdown table of the runs, with growth against the first."""
    base = runs[0].peak_rss_mb
    lines = [
        "| rows | batches | input MB | wall s | CPU s | peak RSS MB | vs first run |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {r.rows:,} | {r.batches} | {r.input_mb:,.1f} | {r.wall_s:.1f} | {r.cpu_s:.1f} "
            f"| {r.peak_rss_mb:,.0f} | {r.peak_rss_mb / base:.2f}x |"
        )
    return "\n".join(lines)


def per_batch_growth(runs: list[Run]) -> float:
    """Least-squares MB of peak RSS per extra batch."""
    xs = [r.batches for r in runs]
    ys = [r.peak_rss_mb for r in runs]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def measure(rows: int, rows_per_batch: int) -> Run:
    """One run in a fresh folder, printed as it finishes."""
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        run = run_grade(rows, rows_per_batch, Path(tmp))
    print(
        f"{rows:>9,} rows  {run.batches:>3} batches  {run.wall_s:7.1f} s  "
        f"peak RSS {run.peak_rss_mb:7.0f} MB",
        flush=True,
    )
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50k,100k,200k,500k,1m")
    parser.add_argument("--rows-per-batch", type=int, default=50_000)
    parser.add_argument(
        "--fixed", default="200k", help="the file graded again in more, smaller batches"
    )
    parser.add_argument(
        "--batch-rows", default="50k,20k,10k,5k,2k", help="rows per batch for --fixed"
    )
    parser.add_argument("--max-growth", type=float, default=1.15)
    parser.add_argument("--no-docs", action="store_true")
    parser.add_argument("--check", action="store_true", help="exit 1 when memory is not flat")
    args = parser.parse_args()
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    print(f"growing files, {args.rows_per_batch:,} rows per batch", flush=True)
    growing = [measure(rows, args.rows_per_batch) for rows in sizes]
    fixed = parse_size(args.fixed)
    print(f"{fixed:,} rows in more and more batches", flush=True)
    split = [measure(fixed, parse_size(b)) for b in args.batch_rows.split(",")]
    growth = growing[-1].peak_rss_mb / growing[0].peak_rss_mb
    batch_growth = max(r.peak_rss_mb for r in split) / split[0].peak_rss_mb
    flat = batch_growth <= args.max_growth
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = "\n".join(
        [
            f"Measured {stamp} on {platform.machine()}, {os.cpu_count()} cores, Python "
            f"{platform.python_version()}, `{REPRODUCE} --sizes {args.sizes} --fixed "
            f"{args.fixed} --batch-rows {args.batch_rows}`.",
            "",
            f"**The same {fixed:,}-row file in more and more batches** (the number of "
            "batches alone):",
            "",
            table(split),
            "",
            f"Peak RSS at {split[-1].batches} batches is {batch_growth:.2f}x the "
            f"{split[0].batches}-batch run at most (target at most {args.max_growth}x: "
            f"{'met' if flat else 'MISSED'}); "
            f"{per_batch_growth(split):+.2f} MB per extra batch.",
            "",
            f"**Larger and larger files** ({args.rows_per_batch:,} rows per batch: the input "
            "grows with the number of batches):",
            "",
            table(growing),
            "",
            f"Peak RSS at {growing[-1].batches} batches is {growth:.2f}x the one-batch run; "
            f"{per_batch_growth(growing):+.1f} MB per extra batch.",
        ]
    )
    print("\n" + body)
    RESULTS.mkdir(exist_ok=True)
    raw = RESULTS / f"scale-{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}.json"
    raw.write_text(
        json.dumps(
            {
                "growing": [asdict(r) for r in growing],
                "fixed": [asdict(r) for r in split],
                "growth": growth,
                "batch_growth": batch_growth,
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    if not args.no_docs:
        write_section(DOCS, BEGIN, END, body)
    if args.check and not flat:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
