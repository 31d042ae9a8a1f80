"""Time and peak memory of ``batchgrader report`` on a 100k-row graded file.

The graded file is ``data/prose_100k.csv`` (``gen_data.py``: realistic essays, ~1 kB a
row) with the columns ``grade`` adds (``llm_score``, ``llm_response``, ``llm_error``,
a category field ``llm_tone``) and a ``human`` label column on 70% of the rows (the
judge's score with noise); 2% of the rows failed with assorted error codes. It is
written as CSV and as Parquet.

Measured, each as a fresh subprocess (wall time, CPU time, peak RSS from its own
``VmHWM``):

- ``report``: ``batchgrader report FILE --json``;
- ``report --labels``: the same with ``--labels human`` (agreement, 1,000 bootstrap
  resamples, the ten most different rows with their text);
- ``naive``: what a notebook does: pandas reads the whole file (polars for Parquet:
  pandas has no Parquet engine here), scikit-learn's kappas and
  scipy's rho on the labelled rows, and a bootstrap of 1,000 row resamples with numpy
  (exact agreement) and scikit-learn (weighted kappa);
- ``floor``: polars reads the two columns and counts the (label, judge) pairs: the least
  any report has to do;
- ``startup``: ``batchgrader --version``, the CLI's start (imports) that every command pays.

    uv run python benchmarks/bench_report.py            # about 5 minutes on 2 cores
    uv run python benchmarks/bench_report.py --runs 1 --no-docs

Results are printed, written raw to ``benchmarks/results/report-*.json`` and, unless
``--no-docs``, into ``docs/report.md`` between this script's markers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl
from harness import cpu_jiffies, write_section

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
RESULTS = HERE / "results"
DOCS = HERE.parent / "docs" / "report.md"
BEGIN = "<!-- BEGIN bench_report -->"
END = "<!-- END bench_report -->"
ROWS = 100_000

#: Writes the process's own peak RSS (VmHWM, kB) to argv[1] at exit, then runs argv[2:].
_PEAK = (
    "import atexit, runpy, sys\n"
    "out = sys.argv.pop(1)\n"
    "def hwm():\n"
    "    with open('/proc/self/status') as s, open(out, 'w') as f:\n"
    "        f.write(next(l.split()[1] for l in s if l.startswith('VmHWM')))\n"
    "atexit.register(hwm)\n"
    "code = sys.argv.pop(1)\n"
    "if code == '-m':\n"
    "    sys.argv[0] = 'batchgrader'\n"
    "    runpy.run_module('batchgrader', run_name='__main__')\n"
    "else:\n"
    "    exec(compile(code, 'baseline', 'exec'))\n"
)

NAIVE = """
import sys, numpy as np, pandas as pd, polars as pl
from sklearn.metrics import cohen_kappa_score
from scipy.stats import spearmanr
path = sys.argv[1]
if path.endswith('.parquet'):  # no pyarrow for pandas here: the whole file through polars
    both = pl.read_parquet(path).drop_nulls(['llm_score', 'human'])
else:
    both = pd.read_csv(path).dropna(subset=['llm_score', 'human'])
x, y = both['llm_score'].to_numpy().astype(int), both['human'].to_numpy().astype(int)
figures = [cohen_kappa_score(y, x), cohen_kappa_score(y, x, weights='quadratic'),
           spearmanr(x, y).statistic, np.mean(np.abs(x - y)), np.mean(x == y)]
rng = np.random.default_rng(0)
exact, weighted = [], []
for _ in range(1000):
    i = rng.integers(0, len(x), len(x))
    exact.append(np.mean(x[i] == y[i]))
    weighted.append(cohen_kappa_score(y[i], x[i], weights='quadratic'))
print(figures, np.quantile(exact, [0.025, 0.975]), np.quantile(weighted, [0.025, 0.975]))
"""

FLOOR = """
import sys, polars as pl
path = sys.argv[1]
lf = pl.scan_parquet(path) if path.endswith('.parquet') else pl.scan_csv(path)
print(lf.select('llm_score', 'human').drop_nulls().group_by('llm_score', 'human').len()
      .collect())
"""


@dataclass
class Run:
    tool: str
    format: str
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    load: float


def make_graded(source: Path) -> dict[str, Path]:
    """The graded file, as CSV and Parquet (kept when present)."""
    out = {fmt: DATA / f"graded_100k.{fmt}" for fmt in ("csv", "parquet")}
    if all(p.exists() for p in out.values()):
        return out
    rng = np.random.default_rng(19)
    frame = pl.read_csv(source, n_rows=ROWS)
    n = frame.height
    score = rng.integers(1, 6, n)
    noisy = np.clip(score + rng.choice([-1, 0, 0, 0, 1], n), 1, 5)
    failed = rng.random(n) < 0.02
    codes = rng.choice(["unparseable: no number", "skipped: empty text", "server_error: x"], n)
    labelled = rng.random(n) < 0.7
    frame = frame.with_columns(
        pl.Series("human", np.where(labelled, noisy, -1)).replace(-1, None),
        pl.Series("llm_score", np.where(failed, -1, score)).replace(-1, None),
        pl.Series("llm_response", [str(s) for s in score]),
        pl.Series("llm_error", np.where(failed, codes, "")).replace("", None),
        pl.Series("llm_tone", rng.choice(["cold", "neutral", "warm"], n)),
    )
    frame.write_csv(out["csv"])
    frame.write_parquet(out["parquet"])
    return out


def measure(tool: str, fmt: str, path: Path, work: Path) -> Run:
    peak = work / "peak-kb"
    peak.unlink(missing_ok=True)
    if tool == "startup":
        args = ["-m", "--version"]
    elif tool.startswith("report"):
        args = ["-m", "report", str(path), "--json"]
        args += ["--labels", "human"] if tool == "report --labels" else []
    else:
        args = [NAIVE if tool == "naive" else FLOOR, str(path)]
    before = cpu_jiffies()
    started = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHGRADER_")}
    env["BATCHGRADER_HOME"] = str(work / "home")
    with (work / "out").open("wb") as out, (work / "err").open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", _PEAK, str(peak), *args], stdout=out, stderr=err, env=env
        )
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    after = cpu_jiffies()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit((work / "err").read_text(encoding="utf-8")[-3000:])
    cpu = usage.ru_utime + usage.ru_stime
    load = 0.0
    if before and after and after[1] > before[1]:  # other processes' share of the cores
        busy = (after[0] - before[0]) / (after[1] - before[1]) * (os.cpu_count() or 1)
        load = max(0.0, busy - cpu / wall)
    peak_mb = int(peak.read_text()) / 1024
    return Run(tool, fmt, round(wall, 2), round(cpu, 2), round(peak_mb, 1), round(load, 2))


def median_runs(runs: list[Run]) -> list[Run]:
    """The run with the median wall time of each (tool, format)."""
    keys = sorted({(r.tool, r.format) for r in runs}, key=lambda k: (k[1], TOOLS.index(k[0])))
    picked = []
    for key in keys:
        same = sorted((r for r in runs if (r.tool, r.format) == key), key=lambda r: r.wall_s)
        picked.append(same[len(same) // 2])
    return picked


TOOLS = ["report", "report --labels", "naive", "floor", "startup"]


def table(runs: list[Run], sizes: dict[str, float]) -> str:
    lines = [
        "| file | tool | wall s | CPU s | peak RSS MB | other load (cores) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in runs:
        what = "-" if r.tool == "startup" else f"{r.format} ({sizes[r.format]:,.0f} MB)"
        lines.append(
            f"| {what} | {r.tool} | {r.wall_s:.2f} "
            f"| {r.cpu_s:.2f} | {r.peak_rss_mb:,.0f} | {r.load:.1f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each (median kept)")
    parser.add_argument("--naive-runs", type=int, default=1)
    parser.add_argument("--no-docs", action="store_true")
    args = parser.parse_args()
    source = DATA / "prose_100k.csv"
    if not source.exists():
        subprocess.run([sys.executable, str(HERE / "gen_data.py"), "--sizes", "100k"], check=True)
    files = make_graded(source)
    sizes = {fmt: p.stat().st_size / 1e6 for fmt, p in files.items()}
    work = RESULTS / "report-work"
    work.mkdir(parents=True, exist_ok=True)
    runs: list[Run] = []
    for fmt, path in files.items():
        for tool in TOOLS if fmt == "csv" else [t for t in TOOLS if t != "startup"]:
            for _ in range(args.naive_runs if tool == "naive" else args.runs):
                run = measure(tool, fmt, path, work)
                print(run, flush=True)
                runs.append(run)
    chosen = median_runs(runs)
    body = table(chosen, sizes)
    print(body)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"report-{stamp}.json").write_text(
        json.dumps([asdict(r) for r in runs], indent=2), encoding="utf-8"
    )
    if not args.no_docs:
        machine = (
            f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        )
        today = dt.datetime.now(dt.UTC).date().isoformat()
        note = (
            f"Measured {today} on {machine}, median of {args.runs} runs "
            f"({args.naive_runs} for naive); `uv run python benchmarks/bench_report.py`."
        )
        write_section(DOCS, BEGIN, END, body + "\n\n" + note)


if __name__ == "__main__":
    main()
