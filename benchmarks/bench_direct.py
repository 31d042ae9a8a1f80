"""Benchmark ``batchgrader grade --mode direct`` against a fake with latency, beside a FLOOR.

The dataset is ``gen_data.py``'s ``prose_{rows}.csv`` (generated if missing; 20k rows by
default). The fake is the test suite's (``tests/fakes/batch_api.py``: real HTTP on
127.0.0.1, a thread per connection, its chat route answering with the same judge as its
batches) with ``chat_latency`` seconds per answer, run **in a process of its own**
(``bench_direct.py --serve-fake``): in the client's process it would share the GIL
with the client under test, and serving one answer costs it about as much CPU as
sending one costs the floor. Its listen backlog is a real server's (``BACKLOG``), not
socketserver's 5: with 64 connections opened at once, a backlog of 5 overflows and the
dropped connections stall for a SYN retransmit (1 s and more) or are reset.

For each repetition, as fresh subprocesses against a fresh fake, in rotation:

- ``batchgrader grade FILE --mode direct --concurrency N --yes --json``: the real CLI,
  ``BATCHGRADER_HOME`` and the working folder in a fresh temporary directory,
  ``OPENAI_BASE_URL`` at the fake;
- ``floor_direct.py``: the same requests (the request files of one untimed
  ``grade --dry-run``), plain asyncio + httpx, the same concurrency, nothing durable.

The fake records when each chat call arrived and when its answer was written: the
**sending phase** of a run runs from the first call's arrival to the last answer, and
**rows/s** is the rows answered over that time (same clock, same definition for both
clients). Wall and CPU time of the client come from ``os.wait4``, its peak RSS from
sampling its ``VmHWM`` (``harness.ProcPeak``), the fake's CPU from its
``/proc/PID/stat``. Every run is checked: every request answered once (no retries),
the fake's multiset of chat payloads identical across clients and runs, and the
judge's score of every row (batchgrader's graded CSV, the floor's scores).

    uv run python benchmarks/bench_direct.py

``--profile`` also runs ``grade`` once under cProfile and adds its top functions to the
report. Results go to ``docs/benchmarks.md`` (between this script's markers, appended
at the end of the file when missing) and, raw, to ``benchmarks/results/direct-*.json``.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import gc
import hashlib
import json
import os
import platform
import pstats
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import polars as pl
from gen_data import generate, parse_size, size_label
from harness import ProcPeak, cpu_jiffies, set_priority, wait_for_quiet, write_section

from batchgrader.prompting.prompts import DEFAULT_USER
from batchgrader.settings import RequestSettings
from tests.fakes import batch_api
from tests.fakes.batch_api import FakeBatchAPI
from tests.fakes.judge import judge_score

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DOCS = ROOT / "docs" / "benchmarks.md"
RESULTS = HERE / "results"
REPRODUCE = "uv run python benchmarks/bench_direct.py"
TOOLS = ("batchgrader", "floor")
PYCACHE = Path(tempfile.gettempdir()) / "bench-direct-pycache"
BACKLOG = batch_api._Server.request_queue_size  # the fake's listen backlog (a real server's)
WARM_UP_ROWS = 200

TARGET_VS_FLOOR = 0.8  # batchgrader's rows/s, at least this times the floor's


# --- the fake, in a process of its own ----------------------------------------------


class LatencyFake(FakeBatchAPI):
    """The fake, recording (arrival, answer written) of every chat call on the system clock.

    ``time.monotonic`` is ``CLOCK_MONOTONIC``: the same clock in every process on Linux.
    """

    def __init__(self) -> None:
        self.spans: list[tuple[float, float]] = []
        super().__init__()

    def _serve(self, handler: Any) -> None:
        started = time.monotonic()
        try:
            super()._serve(handler)
        finally:
            if handler.path.endswith("/chat/completions"):
                self.spans.append((started, time.monotonic()))

    def report(self) -> dict[str, Any]:
        """The chat calls served so far: count, statuses, timing, payload digest."""
        with self._lock:
            chat = [call for call in self.calls if call.route == "chat"]
            spans = sorted(self.spans)
        statuses: dict[str, int] = {}
        for call in chat:
            statuses[str(call.status)] = statuses.get(str(call.status), 0) + 1
        digests = sorted(
            hashlib.sha256(json.dumps(c.payload, sort_keys=True).encode()).hexdigest() for c in chat
        )
        return {
            "calls": len(chat),
            "statuses": statuses,
            "max_in_flight": self.max_chat_in_flight,
            "connections": self.connections_opened,
            "first": spans[0][0] if spans else None,
            "last": max(end for _, end in spans) if spans else None,
            "payloads_sha256": hashlib.sha256("".join(digests).encode()).hexdigest(),
        }


def serve_fake(latency: float) -> None:
    """``--serve-fake``: print the base URL, answer ``report`` lines, stop at end of input."""
    with LatencyFake() as fake:
        fake.chat_latency = latency
        print(json.dumps({"base_url": fake.base_url}), flush=True)
        for line in sys.stdin:
            if line.strip() == "report":
                print(json.dumps(fake.report()), flush=True)


class FakeProcess:
    """A ``--serve-fake`` child: its base URL, its CPU time, its report."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.proc: subprocess.Popen[str] | None = None
        self.base_url = ""

    def __enter__(self) -> FakeProcess:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--serve-fake"]
        cmd += ["--latency", str(self.latency)]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
        )
        self.base_url = json.loads(self._stdout().readline())["base_url"]
        return self

    def _stdout(self) -> IO[str]:
        assert self.proc is not None and self.proc.stdout is not None
        return self.proc.stdout

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def report(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write("report\n")
        self.proc.stdin.flush()
        answer: dict[str, Any] = json.loads(self._stdout().readline())
        return answer

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self.proc is not None
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --- one run ---------------------------------------------------------------------------


@dataclass
class Run:
    """One timed client subprocess against its own fake."""

    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    send_s: float  # the fake's first chat arrival to its last answer
    rows: int  # chat calls answered
    rows_per_s: float  # rows / send_s
    fake_cpu_s: float
    max_in_flight: int
    others_cores: float | None
    payloads_sha256: str


@dataclass
class Summary:
    """The runs of one approach."""

    tool: str
    runs: list[Run] = field(default_factory=list)

    def median(self, name: str) -> float:
        return statistics.median(float(getattr(r, name)) for r in self.runs)

    @property
    def rss(self) -> float:
        return max(r.peak_rss_mb for r in self.runs)


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_once(
    cmd: list[str], env: dict[str, str], cwd: Path, latency: float
) -> tuple[Run, dict[str, Any], dict[str, Any]]:
    """Run ``cmd`` against a fresh fake; (timings, its JSON answer, the fake's report)."""
    hz = os.sysconf("SC_CLK_TCK")
    with (
        FakeProcess(latency) as fake,
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
    ):
        child_env = env | {"OPENAI_BASE_URL": fake.base_url}
        fake_before = fake.cpu_seconds()
        before, self_before = cpu_jiffies(), _self_cpu()
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=child_env, cwd=cwd)
        memory = ProcPeak(proc.pid, "VmHWM")
        memory.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        peak_mb = memory.stop() or 0.0
        after, self_cpu = cpu_jiffies(), _self_cpu() - self_before
        fake_cpu = fake.cpu_seconds() - fake_before
        served = fake.report()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} ... failed ({code}):\n{stderr[-3000:]}")
    cpu = usage.ru_utime + usage.ru_stime
    others = None
    if before is not None and after is not None:
        busy = (after[0] - before[0]) / hz
        others = max(0.0, busy - cpu - fake_cpu - self_cpu) / wall
    send = (served["last"] - served["first"]) if served["calls"] else 0.0
    run = Run(
        wall_s=wall,
        cpu_s=cpu,
        peak_rss_mb=peak_mb,
        send_s=send,
        rows=served["statuses"].get("200", 0),
        rows_per_s=served["statuses"].get("200", 0) / send if send else 0.0,
        fake_cpu_s=fake_cpu,
        max_in_flight=served["max_in_flight"],
        others_cores=others,
        payloads_sha256=served["payloads_sha256"],
    )
    return run, json.loads(stdout), served


# --- the commands and the checks -------------------------------------------------------


def _cli() -> list[str]:
    script = Path(sys.executable).parent / "batchgrader"
    return [str(script)] if script.exists() else [sys.executable, "-m", "batchgrader"]


def command(tool: str, path: Path, requests: Path, concurrency: int) -> list[str]:
    """The child's command line."""
    flags = ["--concurrency", str(concurrency)]
    if tool == "batchgrader":
        return [*_cli(), "grade", str(path), "--mode", "direct", *flags, "--yes", "--json"]
    return [sys.executable, str(HERE / "floor_direct.py"), str(requests), *flags]


def child_env(home: Path) -> dict[str, str]:
    """The environment of both clients (no outside BATCHGRADER_* / OPENAI_* setting).

    Bytecode is cached (under ``PYCACHE``, not beside the sources) even when
    ``PYTHONDONTWRITEBYTECODE`` is set, as an installed CLI runs from compiled modules.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATCHGRADER_", "OPENAI_"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env | {
        "PYTHONPYCACHEPREFIX": str(PYCACHE),
        "OPENAI_API_KEY": "sk-bench-0000000000000000",
        "BATCHGRADER_HOME": str(home),
    }


def request_files(path: Path, work: Path, concurrency: int) -> Path:
    """The folder of the request files ``grade --dry-run`` writes for ``path``."""
    cmd = [*_cli(), "grade", str(path), "--mode", "direct", "--concurrency", str(concurrency)]
    cmd += ["--dry-run", "--json"]
    done = subprocess.run(
        cmd, env=child_env(work / "home"), cwd=work, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"grade --dry-run failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    (plan,) = json.loads(done.stdout)["plans"]
    return work / plan["folder"]


def expected_scores(path: Path) -> tuple[list[str], list[int | None]]:
    """(ids, the judge's score of each row's user message; None for blank texts)."""
    df = pl.read_csv(
        path, columns=["id", "response"], infer_schema=False, empty_string_is_null=False
    )
    prefix = DEFAULT_USER.partition("{text}")[0]
    scores = [
        None if text is None or not text.strip() else judge_score(prefix + text)
        for text in df["response"].to_list()
    ]
    return df["id"].to_list(), scores


def scores_sha256(scores: list[int | None]) -> str:
    """The floor's digest of the scores of the rows sent, in row order."""
    text = ",".join(str(s) for s in scores if s is not None)
    return hashlib.sha256(text.encode()).hexdigest()


def verify_graded(output: Path, ids: list[str], scores: list[int | None], label: str) -> None:
    """Assert the graded file is every row in order with the judge's score."""
    df = pl.read_csv(output, columns=["id", "llm_score"], schema_overrides={"id": pl.String})
    assert df.height == len(ids), f"{label}: {df.height:,} rows, expected {len(ids):,}"
    assert df["id"].to_list() == ids, f"{label}: rows are not in input order"
    got = df["llm_score"].to_list()
    bad = [i for i, (g, e) in enumerate(zip(got, scores, strict=True)) if g != e]
    assert not bad, f"{label}: {len(bad):,} wrong scores, first at row {bad[0]}"


def verify(
    tool: str,
    answer: dict[str, Any],
    served: dict[str, Any],
    work: Path,
    expected: tuple[list[str], list[int | None]],
    label: str,
) -> None:
    """Every request answered once, and every row with the judge's score."""
    sent = sum(s is not None for s in expected[1])
    assert served["calls"] == sent, f"{label}: the fake saw {served['calls']:,} calls, not {sent:,}"
    assert served["statuses"] == {"200": sent}, f"{label}: answers {served['statuses']}"
    if tool == "batchgrader":
        (summary,) = answer["files"]
        assert summary["status"] == "done", f"{label}: {summary}"
        assert (summary["graded"], summary["failed"]) == (sent, 0), f"{label}: {summary}"
        verify_graded(work / summary["output"], *expected, label)
    else:
        assert (answer["answered"], answer["failed"]) == (sent, 0), f"{label}: {answer}"
        assert answer["scores_sha256"] == scores_sha256(expected[1]), f"{label}: wrong scores"


def warm_up(tools: list[str], path: Path, concurrency: int) -> None:
    """One untimed run of each client on the first rows: fills the bytecode cache."""
    with tempfile.TemporaryDirectory(prefix="bench-direct-warm-") as tmp:
        work = Path(tmp)
        small = work / "warm.csv"
        with path.open(newline="", encoding="utf-8") as src, small.open("w", newline="") as dst:
            reader, writer = csv.reader(src), csv.writer(dst)
            for i, row in enumerate(reader):
                if i > WARM_UP_ROWS:
                    break
                writer.writerow(row)
        requests = request_files(small, work, concurrency)
        for tool in tools:
            cmd = command(tool, small, requests, concurrency)
            run_once(cmd, child_env(work / f"home-{tool}"), work, 0.0)


@dataclass(frozen=True)
class Noise:
    """How long to wait for an idle machine, and when to repeat a disturbed run."""

    quiet_wait: float = 60.0
    max_others: float = 0.5  # cores other processes may use during a kept run
    retries: int = 2


def timed_run(
    tool: str,
    path: Path,
    requests: Path,
    args: argparse.Namespace,
    expected: tuple[list[str], list[int | None]],
    noise: Noise,
    label: str,
) -> Run:
    """One verified run; repeated (up to ``noise.retries`` times) when the machine was busy."""
    for attempt in range(noise.retries + 1):
        with tempfile.TemporaryDirectory(prefix="bench-direct-") as tmp:
            work = Path(tmp)
            gc.collect()
            wait_for_quiet(noise.quiet_wait)
            cmd = command(tool, path, requests, args.concurrency)
            run, answer, served = run_once(cmd, child_env(work / "home"), work, args.latency)
            verify(tool, answer, served, work, expected, label)
        print(
            f"  {label}: {run.rows_per_s:6.0f} rows/s, {run.send_s:6.2f} s sending, "
            f"{run.wall_s:6.2f} s wall, {run.cpu_s:6.2f} s CPU, {run.peak_rss_mb:5.0f} MiB, "
            f"fake {run.fake_cpu_s:5.2f} s CPU, {run.max_in_flight} in flight, "
            f"others {run.others_cores or 0:.2f} cores",
            file=sys.stderr,
        )
        if (run.others_cores or 0.0) <= noise.max_others or attempt == noise.retries:
            return run
        print(f"  {label}: the machine was busy; once more", file=sys.stderr)
    raise AssertionError("unreachable")


def bench(
    path: Path, tools: list[str], args: argparse.Namespace, noise: Noise, work: Path
) -> dict[str, Summary]:
    """Every approach ``args.repeat`` times in rotation, each run verified."""
    expected = expected_scores(path)
    requests = request_files(path, work, args.concurrency)
    warm_up(tools, path, args.concurrency)
    summaries = {tool: Summary(tool) for tool in tools}
    for i in range(args.repeat):
        for tool in tools:
            label = f"{tool:<11} run {i + 1}/{args.repeat}"
            run = timed_run(tool, path, requests, args, expected, noise, label)
            summaries[tool].runs.append(run)
    payloads = {r.payloads_sha256 for s in summaries.values() for r in s.runs}
    if len(payloads) > 1:
        raise SystemExit("the clients did not send the same requests")
    return summaries


# --- profiling -------------------------------------------------------------------------


#: Functions whose own time is waiting (on the fake, a lock, the disk, the event loop).
WAITS = ("acquire", "recv", "sleep", "poll", "select", "recv_into", "fsync")

ProfileRow = tuple[str, int, float, float]


def profile(path: Path, args: argparse.Namespace, top: int) -> dict[str, Any]:
    """Run ``grade`` once under cProfile against a fresh fake.

    Returns the run's wall and sending time, batchgrader's own functions by cumulative
    time (``phases``), and every function by own time, waits left out (``hotspots``);
    rows are (where, calls, own seconds, cumulative seconds).
    """
    with tempfile.TemporaryDirectory(prefix="bench-direct-prof-") as tmp:
        work = Path(tmp)
        prof = work / "grade.prof"
        cmd = [sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "batchgrader"]
        cmd += command("batchgrader", path, work, args.concurrency)[len(_cli()) :]
        run, answer, _ = run_once(cmd, child_env(work / "home"), work, args.latency)
        if "files" not in answer or answer["files"][0]["status"] != "done":
            raise SystemExit(f"profiled grade failed: {json.dumps(answer)[-2000:]}")
        raw: dict[Any, Any] = pstats.Stats(str(prof)).stats  # type: ignore[attr-defined]
    rows: list[ProfileRow] = []
    for (file, line, func), (_, calls, tottime, cumtime, _) in raw.items():
        where = f"{_short(file)}:{line}({func})" if line else func
        rows.append((where, calls, tottime, cumtime))
    ours = [r for r in rows if r[0].startswith("batchgrader/") and "<module>" not in r[0]]
    ours.sort(key=lambda r: r[3], reverse=True)
    busy = [r for r in rows if not any(f"'{w}'" in r[0] or f" {w}" in r[0] for w in WAITS)]
    busy.sort(key=lambda r: r[2], reverse=True)
    return {
        "wall_s": run.wall_s,
        "send_s": run.send_s,
        "rows_per_s": run.rows_per_s,
        "phases": ours[:top],
        "hotspots": busy[:top],
    }


def _short(file: str) -> str:
    for marker in ("/site-packages/", "/batchgrader/", "/lib/python"):
        if marker in file:
            head = "batchgrader/" if marker == "/batchgrader/" else ""
            return head + file.split(marker, 1)[1]
    return file


# --- reporting -------------------------------------------------------------------------


def code_fingerprint() -> dict[str, str]:
    """sha256 of each of batchgrader's sources: a change during the run is reported."""
    return {
        path.relative_to(ROOT).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted((ROOT / "batchgrader").rglob("*"))
        if path.suffix in (".py", ".csv") and path.is_file()
    }


def _machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    memory = ""
    try:
        if m := re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M):
            cpu = m.group(1).strip()
        if m := re.search(r"^MemTotal:\s*(\d+) kB", Path("/proc/meminfo").read_text(), re.M):
            memory = f"{int(m.group(1)) / 1024**2:.0f} GiB"
    except OSError:
        pass
    done = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    versions = {n: metadata.version(n) for n in ("batchgrader", "openai", "httpx2")}
    return {
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "memory": memory,
        "os": platform.platform(),
        "python": platform.python_version(),
        "commit": done.stdout.strip(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        **versions,
    }


def _label(tool: str) -> str:
    return {
        "batchgrader": "`batchgrader grade --mode direct`",
        "floor": "floor (`floor_direct.py`)",
    }[tool]


def _spread(values: list[float], digits: int = 1) -> str:
    return f" ({min(values):.{digits}f}–{max(values):.{digits}f})" if len(values) > 1 else ""


def results_table(results: dict[str, Summary]) -> str:
    floor = results["floor"].median("rows_per_s") if "floor" in results else None
    lines = [
        "| approach | rows/s (sending) | vs floor | sending (s) | wall (s) | CPU (s) "
        "| peak RSS (MiB) | fake CPU (s) | most in flight |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for tool, s in results.items():
        ratio = f"{s.median('rows_per_s') / floor:.2f}x" if floor else "–"
        lines.append(
            f"| {_label(tool)} "
            f"| **{s.median('rows_per_s'):,.0f}**{_spread([r.rows_per_s for r in s.runs], 0)} "
            f"| {ratio} "
            f"| {s.median('send_s'):.1f}{_spread([r.send_s for r in s.runs])} "
            f"| {s.median('wall_s'):.1f}{_spread([r.wall_s for r in s.runs])} "
            f"| {s.median('cpu_s'):.1f}{_spread([r.cpu_s for r in s.runs])} "
            f"| {s.rss:,.0f} | {s.median('fake_cpu_s'):.1f} "
            f"| {max(r.max_in_flight for r in s.runs)} |"
        )
    return "\n".join(lines)


def targets(results: dict[str, Summary]) -> list[tuple[str, str, bool]]:
    if "batchgrader" not in results or "floor" not in results:
        return []
    ratio = results["batchgrader"].median("rows_per_s") / results["floor"].median("rows_per_s")
    return [
        (
            f"batchgrader's rows/s at least {TARGET_VS_FLOOR}x the floor's",
            f"{ratio:.2f}x",
            ratio >= TARGET_VS_FLOOR,
        )
    ]


def _profile_table(rows: list[ProfileRow]) -> str:
    lines = ["| function | calls | own (s) | cumulative (s) |", "|---|---:|---:|---:|"]
    lines += [f"| `{w}` | {c:,} | {t:.2f} | {cum:.2f} |" for w, c, t, cum in rows]
    return "\n".join(lines)


def report(
    results: dict[str, Summary],
    rows: int,
    args: argparse.Namespace,
    prof: dict[str, Any] | None,
    machine: dict[str, str],
    noise: Noise,
) -> str:
    others = [r.others_cores for s in results.values() for r in s.runs]
    seen = [o for o in others if o is not None]
    runs = max(len(s.runs) for s in results.values())
    sent = next(iter(results.values())).runs[0].rows
    ceiling = args.concurrency / args.latency if args.latency else float("inf")
    lines = [
        f"## `grade --mode direct` against a {args.latency * 1000:g} ms server (issue 17)",
        "",
        f"Measured {machine['date']} with `{REPRODUCE}`"
        + (f" (here: `{' '.join(sys.argv[1:])}`)" if sys.argv[1:] else "")
        + ".",
        "",
        f"- Machine: {machine['cpu']}, {machine['memory']} RAM; {machine['os']}",
        f"- Python {machine['python']}; batchgrader {machine['batchgrader']} "
        f"({machine['commit']}); openai {machine['openai']}; httpx2 {machine['httpx2']}",
    ]
    if seen:
        lines.append(
            f"- Other processes used {statistics.median(seen):.2f} cores (median; max "
            f"{max(seen):.2f}) of the machine during the kept runs. Each run waits up to "
            f"{noise.quiet_wait:.0f} s for an idle machine and is repeated (at most "
            f"{noise.retries} time{'s' if noise.retries != 1 else ''}) when others used more "
            f"than {noise.max_others} cores."
        )
    nice = os.getpriority(os.PRIO_PROCESS, 0)
    if nice:
        lines.append(
            f"- The fake and the clients ran at nice {nice}, in a scheduling group of their own."
        )
    lines += [
        "",
        f"**Workload.** `prose_{size_label(rows)}.csv` ({rows:,} rows, ~345 request tokens "
        f"each; {sent:,} sent, the blank ones skipped) graded with the defaults "
        f"(`{RequestSettings().model}`, the `generic` preset, structured answers) at "
        f"`--concurrency {args.concurrency}` against the fake's chat route answering after "
        f"{args.latency * 1000:.0f} ms: at most {ceiling:,.0f} rows/s. The fake (the test "
        "suite's, a thread per connection) runs in a process of its own, so it does not "
        "share the GIL with the client under test, with a listen backlog of "
        f"{BACKLOG} (socketserver's default of 5 drops most of 64 connections opened at "
        "once).",
        "",
        "**Floor** ([`floor_direct.py`](../benchmarks/floor_direct.py)): the same requests "
        "(read from the request files of one `grade --dry-run`; the fake's multiset of chat "
        "payloads is checked equal), plain asyncio + `httpx2.AsyncClient` (the HTTP client "
        "under the SDK, its pool keeping as many connections as the concurrency), one "
        "`asyncio.Semaphore`, answers parsed and kept in memory. No SDK, nothing durable, "
        "no ledger, retries, pacing or budget.",
        "",
        "**Rows/s** are the rows answered over the **sending phase**, which the fake "
        "times for both clients: from the first chat call it receives to the last answer "
        "it writes. It leaves out start-up, planning and the merge (batchgrader) and "
        "reading the request files (floor); the wall column has everything. Wall and CPU "
        "time of the client come from `os.wait4`, its peak RSS from its `VmHWM` in "
        "`/proc/PID/status` (the kernel's high-water mark of its resident memory, read "
        "every 20 ms until it exits), the fake's CPU from its `/proc/PID/stat`. Both "
        f"clients run with a warm bytecode cache. Medians of {runs} runs in rotation "
        "(range in brackets); *vs floor* is the median rows/s over the floor's; peak RSS "
        "is the maximum. Every run is checked: each request answered once with 200, every "
        "row with the judge's score (`tests.fakes.judge.judge_score`).",
        "",
        results_table(results),
        "",
        "| target | measured | met |",
        "|---|---:|---|",
    ]
    for name, measured, met in targets(results):
        lines.append(f"| {name} | {measured} | {'yes' if met else '**no**'} |")
    if "batchgrader" in results and "floor" in results:
        bg, floor = results["batchgrader"], results["floor"]
        per_row = [
            f"{1000 * s.median('cpu_s') / max(s.runs[0].rows, 1):.2f} ms ({_label(t)})"
            for t, s in results.items()
        ]
        lines += [
            "",
            "CPU per row answered (whole process): " + ", ".join(per_row) + "; the fake "
            f"spent {1000 * floor.median('fake_cpu_s') / max(floor.runs[0].rows, 1):.2f} ms "
            "of CPU per answer. End to end (rows over wall time): "
            f"{bg.runs[0].rows / bg.median('wall_s'):,.0f} rows/s (batchgrader), "
            f"{floor.runs[0].rows / floor.median('wall_s'):,.0f} rows/s (floor).",
        ]
    if prof is not None:
        lines += [
            "",
            "### cProfile of `grade --mode direct`",
            "",
            f"One run under cProfile: {prof['wall_s']:.1f} s wall, {prof['send_s']:.1f} s "
            f"sending ({prof['rows_per_s']:,.0f} rows/s; the profiler slows Python-heavy "
            "code down several times). It sees the main thread: the event loop, and "
            "the group commit's fsync as a wait.",
            "",
            "batchgrader's functions by cumulative time:",
            "",
            _profile_table(prof["phases"]),
            "",
            "Functions by own time (waits on locks, sockets, sleep and fsync left out):",
            "",
            _profile_table(prof["hotspots"]),
        ]
    return "\n".join(lines)


BEGIN, END = "<!-- BEGIN bench_direct (generated) -->", "<!-- END bench_direct -->"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="20k", help="rows of gen_data's dataset")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per fake answer")
    parser.add_argument("--concurrency", type=int, default=64, help="calls in flight")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each approach")
    parser.add_argument("--tools", default=",".join(TOOLS), help="subset of batchgrader,floor")
    parser.add_argument("--profile", action="store_true", help="add a cProfile of grade")
    parser.add_argument("--profile-top", type=int, default=20)
    parser.add_argument("--quiet-wait", type=float, default=60.0, help="seconds, per run")
    parser.add_argument(
        "--max-others",
        type=float,
        default=0.5,
        help="repeat a run during which other processes used more cores than this",
    )
    parser.add_argument("--retries", type=int, default=2, help="repeats of a disturbed run")
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="run the fake and the clients at this nice value (negative needs root)",
    )
    parser.add_argument("--docs", type=Path, default=DOCS, help="where to write the report")
    parser.add_argument("--no-docs", action="store_true", help="print the report only")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_fake:
        serve_fake(args.latency)
        return

    tools = [t for t in args.tools.split(",") if t]
    if not tools or set(tools) - set(TOOLS):
        parser.error("unknown tool")
    if "TIKTOKEN_CACHE_DIR" not in os.environ:
        print("note: TIKTOKEN_CACHE_DIR is not set; tiktoken may download.", file=sys.stderr)
    if args.nice:
        set_priority(args.nice)
    rows = parse_size(args.rows)
    path = generate(rows)
    code_before = code_fingerprint()
    noise = Noise(args.quiet_wait, args.max_others, args.retries)
    with tempfile.TemporaryDirectory(prefix="bench-direct-requests-") as tmp:
        results = bench(path, tools, args, noise, Path(tmp))
    prof = None
    if args.profile:
        print("  profiling grade", file=sys.stderr)
        prof = profile(path, args, args.profile_top)
    machine = _machine()
    code_after = code_fingerprint()
    changed = sorted(
        f for f in code_before.keys() | code_after.keys() if code_before.get(f) != code_after.get(f)
    )
    if changed:
        files = ", ".join(f"`{f}`" for f in changed)
        machine["commit"] += f"; **changed during the run: {files}**"
        print(f"warning: changed during the run: {', '.join(changed)}", file=sys.stderr)
    body = report(results, rows, args, prof, machine, noise)
    print(body)
    RESULTS.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    raw = {
        "machine": machine,
        "argv": sys.argv[1:],
        "results": {tool: [asdict(r) for r in s.runs] for tool, s in results.items()},
        "profile": prof,
    }
    (RESULTS / f"direct-{stamp}.json").write_text(json.dumps(raw, indent=2) + "\n")
    if not args.no_docs:
        write_section(args.docs, BEGIN, END, body)
        print(f"wrote {args.docs}", file=sys.stderr)
    if args.check and any(not met for _, _, met in targets(results)):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
