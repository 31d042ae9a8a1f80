"""Benchmark ``batchgrader split`` against a FLOOR, in the same run.

For each dataset (``gen_data.py``'s ``prose_{size}.csv``, generated if missing) and each
limit (``--rows 50000`` and ``--tokens 500000`` by default) it runs, as fresh
subprocesses, in rotation:

- ``batchgrader split FILE --rows|--tokens N --out-dir TMP --json``: the real CLI, with
  ``BATCHGRADER_HOME`` and the working folder in a temporary directory;
- the floor (``bench_split.py --floor ...``, below): one eager ``pl.read_csv`` of the
  whole file, the request tokens of every row counted as ``count`` counts them (one
  ``Counter.count_many`` call over all user messages, constant parts counted once), the
  same greedy cut into parts, and a bare ``df.slice(...).write_csv(...)`` per part. No
  validation, no atomic writes, the whole file in memory: the least work any split of
  the same parts can do with these libraries.

Both must cut the file into the same parts (same row counts). Each run's wall time, CPU
time and peak RSS come from ``os.wait4`` on the child (what ``/usr/bin/time -v``
reports); the peak of private memory (``RssAnon``, RSS minus file-backed pages) is
sampled from ``/proc`` beside it. Before each run the harness waits (up to
``--quiet-wait`` seconds) for the machine to be idle and records how many cores other
processes used during the run.

    uv run python benchmarks/bench_split.py --sizes 100k,1m

The report is printed and, raw, saved to ``benchmarks/results/split-*.json``;
``--docs FILE`` also writes it into FILE between this script's own markers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
from gen_data import dataset_path, generate, parse_size, size_label
from harness import ProcPeak, cpu_jiffies, set_priority, wait_for_quiet, write_section

from batchgrader.prompting.prompts import DEFAULT_USER, preset
from batchgrader.prompting.tokens import Counter

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
REPRODUCE = "uv run python benchmarks/bench_split.py --sizes 100k,1m"
LIMITS = ("rows=50000", "tokens=500000")
TOOLS = ("batchgrader", "floor")

TARGET_VS_FLOOR = 1.5  # split's median wall time, at most this times the floor's
TARGET_RSS_MB = 600.0  # split's peak RSS on the 1M-row file

MODEL = "gpt-4.1-mini"  # batchgrader's default model (o200k_base)


# --- the floor -------------------------------------------------------------------------


def floor_split(path: Path, rows: int | None, tokens: int | None, out: Path) -> dict[str, Any]:
    """Split ``path`` into ``out`` the most direct way; the parts' row counts and tokens."""
    counter = Counter.for_model(MODEL)
    system = preset("generic")[0].render({})
    prefix = DEFAULT_USER.partition("{text}")[0]
    per_request = counter.message_overhead(("system", "user")) + counter.count(system)
    df = pl.read_csv(path, infer_schema=False)
    text = df["response"]
    sent = ~(text.is_null() | (text.str.strip_chars() == ""))
    counts = counter.count_many((prefix + text.filter(sent)).to_list())  # as count counts
    row_cap = rows or sys.maxsize
    token_cap = tokens or sys.maxsize
    sizes: list[int] = []
    part_tokens: list[int] = []
    n = t = 0
    sent_counts = iter(counts)
    for is_sent in sent.to_list():
        cost = per_request + next(sent_counts) if is_sent else 0
        if n and (n + 1 > row_cap or t + cost > token_cap):
            sizes.append(n)
            part_tokens.append(t)
            n = t = 0
        n += 1
        t += cost
    sizes.append(n)
    part_tokens.append(t)
    out.mkdir(parents=True, exist_ok=True)
    width = len(str(len(sizes)))
    first = 0
    for i, size in enumerate(sizes, start=1):
        df.slice(first, size).write_csv(out / f"{path.stem}_part{i:0{width}d}.csv")
        first += size
    return {"rows": sizes, "tokens": sum(part_tokens)}


# --- running ---------------------------------------------------------------------------


@dataclass
class Run:
    """One timed subprocess."""

    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    peak_private_mb: float
    others_cores: float | None
    parts: list[int]
    tokens: int


@dataclass
class Summary:
    """The runs of one approach on one dataset with one limit."""

    tool: str
    rows: int
    limit: str
    runs: list[Run] = field(default_factory=list)

    @property
    def wall(self) -> float:
        return statistics.median(r.wall_s for r in self.runs)

    @property
    def cpu(self) -> float:
        return statistics.median(r.cpu_s for r in self.runs)

    @property
    def rss(self) -> float:
        return max(r.peak_rss_mb for r in self.runs)

    @property
    def private(self) -> float:
        return max(r.peak_private_mb for r in self.runs)


def run_once(cmd: list[str], env: dict[str, str], cwd: Path) -> Run:
    """Run ``cmd`` to completion, accounted with ``os.wait4``."""
    hz = os.sysconf("SC_CLK_TCK")
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        before = cpu_jiffies()
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=cwd)
        sampler = ProcPeak(proc.pid, "RssAnon")
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        private = sampler.stop()
        after = cpu_jiffies()
        code = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if code != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed ({code}):\n{stderr}")
    cpu = usage.ru_utime + usage.ru_stime
    others = None
    if before is not None and after is not None:
        others = max(0.0, (after[0] - before[0]) / hz - cpu) / wall
    data: dict[str, Any] = json.loads(stdout)
    if "files" in data:  # batchgrader's SplitReport
        f = data["files"][0]
        data = {"rows": [p["rows"] for p in f["parts"]], "tokens": f["tokens"]}
    return Run(
        wall_s=wall,
        cpu_s=cpu,
        peak_rss_mb=usage.ru_maxrss / 1024,
        peak_private_mb=private or 0.0,
        others_cores=others,
        parts=data["rows"],
        tokens=int(data["tokens"]),
    )


def _commands(path: Path, limit: str, out: Path) -> dict[str, list[str]]:
    kind, value = limit.split("=")
    script = Path(sys.executable).parent / "batchgrader"
    cli = [str(script)] if script.exists() else [sys.executable, "-m", "batchgrader"]
    flag = [f"--{kind}", value]
    return {
        "batchgrader": [*cli, "split", str(path), *flag, "--out-dir", str(out), "--json"],
        "floor": [sys.executable, __file__, "--floor", str(path), *flag, "--out", str(out)],
    }


def bench(
    rows: int, limit: str, runs: int, env: dict[str, str], work: Path, quiet_wait: float
) -> dict[str, Summary]:
    """Both approaches on one dataset with one limit, ``runs`` times in rotation."""
    path = generate(rows)
    out = work / "parts"
    commands = _commands(path, limit, out)
    summaries = {tool: Summary(tool, rows, limit) for tool in TOOLS}
    for i in range(runs):
        for tool in TOOLS:
            shutil.rmtree(out, ignore_errors=True)
            wait_for_quiet(quiet_wait)
            run = run_once(commands[tool], env, work)
            summaries[tool].runs.append(run)
            print(
                f"  {size_label(rows):>5} {limit:<15} {tool:<11} run {i + 1}/{runs}: "
                f"{run.wall_s:7.2f} s wall, {run.cpu_s:7.2f} s CPU, {run.peak_rss_mb:6.0f} MB "
                f"RSS ({run.peak_private_mb:.0f} private), {len(run.parts)} parts, "
                f"others {run.others_cores or 0:.2f} cores",
                file=sys.stderr,
            )
    shutil.rmtree(out, ignore_errors=True)
    cuts = {(tuple(r.parts), r.tokens) for s in summaries.values() for r in s.runs}
    if len(cuts) != 1:
        raise SystemExit(f"{path.name} {limit}: the approaches cut different parts")
    return summaries


# --- reporting -------------------------------------------------------------------------


def table(results: list[dict[str, Summary]]) -> str:
    lines = [
        "| rows | file | limit | parts | approach | runs | wall (s), median | CPU (s) "
        "| peak RSS (MB) | private (MB) | wall vs floor | CPU vs floor |",
        "|---:|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for summaries in results:
        floor = summaries["floor"]
        for tool, s in summaries.items():
            walls = sorted(r.wall_s for r in s.runs)
            spread = f" ({walls[0]:.2f}–{walls[-1]:.2f})" if len(walls) > 1 else ""
            size_mb = dataset_path(s.rows).stat().st_size / 1e6
            label = "`batchgrader split`" if tool == "batchgrader" else "floor"
            lines.append(
                f"| {s.rows:,} | {size_mb:,.0f} MB | `--{s.limit.replace('=', ' ')}` "
                f"| {len(s.runs[0].parts)} | {label} | {len(s.runs)} | {s.wall:.2f}{spread} "
                f"| {s.cpu:.2f} | {s.rss:,.0f} | {s.private:,.0f} | {s.wall / floor.wall:.2f}x "
                f"| {s.cpu / floor.cpu:.2f}x |"
            )
    return "\n".join(lines)


def targets(results: list[dict[str, Summary]]) -> list[tuple[str, str, bool]]:
    out = []
    for summaries in results:
        s, floor = summaries["batchgrader"], summaries["floor"]
        where = f"{size_label(s.rows)} rows, `--{s.limit.replace('=', ' ')}`"
        ratio = s.wall / floor.wall
        out.append(
            (
                f"{where}: within {TARGET_VS_FLOOR}x of the floor",
                f"{ratio:.2f}x",
                ratio <= TARGET_VS_FLOOR,
            )
        )
        if s.rows >= 1_000_000:
            out.append(
                (
                    f"{where}: peak RSS under {TARGET_RSS_MB:.0f} MB",
                    f"{s.rss:,.0f} MB",
                    s.rss < TARGET_RSS_MB,
                )
            )
    return out


def report(results: list[dict[str, Summary]]) -> str:
    others = [r.others_cores for ss in results for s in ss.values() for r in s.runs]
    seen = [o for o in others if o is not None]
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        cwd=HERE.parent,
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    lines = [
        f"Measured {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC with `{REPRODUCE}`"
        + (f" (here: `{' '.join(sys.argv[1:])}`)" if sys.argv[1:] else "")
        + ".",
        "",
        f"- Commit {commit}, {os.cpu_count()} cores, polars {pl.__version__}.",
    ]
    nice = os.getpriority(os.PRIO_PROCESS, 0)
    if nice:
        lines.append(f"- The measured processes ran at nice {nice} (the machine was shared).")
    if seen:
        lines.append(
            f"- Other processes used {statistics.median(seen):.2f} cores (median; max "
            f"{max(seen):.2f}) during the timed runs."
        )
    lines += ["", table(results), "", "| target | measured | met |", "|---|---:|---|"]
    for name, measured, met in targets(results):
        lines.append(f"| {name} | {measured} | {'yes' if met else '**no**'} |")
    return "\n".join(lines)


BEGIN, END = "<!-- BEGIN bench_split (generated) -->", "<!-- END bench_split -->"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100k,1m", help="e.g. 10k,100k,1m")
    parser.add_argument("--limits", default=",".join(LIMITS), help="e.g. rows=50000")
    parser.add_argument("--runs", type=int, default=3, help="runs per approach below 1M rows")
    parser.add_argument("--runs-large", type=int, default=1, help="runs at 1M rows and above")
    parser.add_argument("--quiet-wait", type=float, default=30.0, help="seconds, per run")
    parser.add_argument(
        "--nice", type=int, default=0, help="run at this nice value (see bench_count.py)"
    )
    parser.add_argument("--docs", type=Path, help="also write the report into this file")
    parser.add_argument("--floor", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--rows", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--tokens", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor is not None:  # a floor run, in its own process
        print(json.dumps(floor_split(args.floor, args.rows, args.tokens, args.out)))
        return

    if "TIKTOKEN_CACHE_DIR" not in os.environ:
        print("note: TIKTOKEN_CACHE_DIR is not set; tiktoken may download.", file=sys.stderr)
    if args.nice:
        set_priority(args.nice)
    sizes = [parse_size(s) for s in args.sizes.split(",") if s]
    limits = [x for x in args.limits.split(",") if x]
    results: list[dict[str, Summary]] = []
    with tempfile.TemporaryDirectory(prefix="bench-split-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BATCHGRADER_", "OPENAI_"))}
        env["BATCHGRADER_HOME"] = tmp
        for rows in sizes:
            runs = args.runs_large if rows >= 1_000_000 else args.runs
            for limit in limits:
                results.append(bench(rows, limit, runs, env, Path(tmp), args.quiet_wait))
    body = report(results)
    print(body)
    RESULTS.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    raw = {
        "argv": sys.argv[1:],
        "results": [
            {"rows": s.rows, "limit": s.limit, "tool": s.tool, "runs": [asdict(r) for r in s.runs]}
            for ss in results
            for s in ss.values()
        ],
    }
    (RESULTS / f"split-{stamp}.json").write_text(json.dumps(raw, indent=2) + "\n")
    if args.docs is not None:
        write_section(args.docs, BEGIN, END, body)
        print(f"wrote {args.docs}", file=sys.stderr)


if __name__ == "__main__":
    main()
