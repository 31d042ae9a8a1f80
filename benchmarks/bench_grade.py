"""Benchmark ``batchgrader grade`` end to end against the fake Batch API, beside a FLOOR.

The dataset is ``gen_data.py``'s ``prose_100k.csv`` (generated if missing). A fake
OpenAI Batch API (``tests/fakes/batch_api.py``, real HTTP on 127.0.0.1) runs in this
process with zero latency: ``polls_per_state=1``, so every poll moves a batch one step
(validating -> in_progress -> finalizing -> completed) and a batch is done after three
polls. For each chunking it runs, as fresh subprocesses, in rotation:

- ``batchgrader grade FILE --yes --json``: the real CLI, ``BATCHGRADER_HOME`` and the
  working folder in a fresh temporary directory, ``OPENAI_BASE_URL`` at the fake, poll
  interval 0.01 s (backoff bound 0.05 s);
- ``floor_grade.py``: the same requests in the same batches, as directly as the
  libraries allow (see its docstring).

Chunkings: ``default`` (``split_token_limit`` 500,000 tokens: ~70 batches of ~1,450
rows) and ``2 batches`` (``BATCHGRADER_CHUNKING__SPLIT_TOKEN_LIMIT=20000000``: the 50,000
requests cap cuts the file in two).

The fake's own work is in both totals, so the fake times itself: every HTTP request it
serves is a span from its headers being read to its answer being written, and the fake
time of a run is the union of those spans. ``local = wall - fake`` is the time the
client spent on its own (both clients make their HTTP calls one at a time, so nothing
of theirs overlaps the fake's spans). Wall and CPU time of the client come from
``os.wait4`` on the child, its peak RSS from sampling its ``VmHWM``
(``harness.ProcPeak``). Every run is verified: the graded CSV holds every input row in order,
with ``llm_score`` equal to ``tests.fakes.judge.judge_score`` of the user message (null
for blank texts), and both clients upload byte-identical request files in the same
batches.

    uv run python benchmarks/bench_grade.py

``--profile`` also runs ``grade`` once per chunking under cProfile and adds its top
functions to the report. Results go to ``docs/benchmarks.md`` (between this script's
markers, appended at the end of the file when missing) and, raw, to
``benchmarks/results/grade-*.json``.
"""

from __future__ import annotations

import argparse
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
from typing import Any
from urllib.parse import urlsplit

import polars as pl
from gen_data import generate, parse_size, size_label
from harness import ProcPeak, cpu_jiffies, set_priority, wait_for_quiet, write_section

from batchgrader.prompting.prompts import DEFAULT_USER, load_prompt
from batchgrader.settings import ChunkingSettings, RequestSettings, RunSettings
from tests.fakes.batch_api import ROUTES, FakeBatchAPI
from tests.fakes.judge import judge_score

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DOCS = ROOT / "docs" / "benchmarks.md"
RESULTS = HERE / "results"
REPRODUCE = "uv run python benchmarks/bench_grade.py"
TOOLS = ("batchgrader", "floor")
#: Chunking name -> BATCHGRADER_CHUNKING__SPLIT_TOKEN_LIMIT (None: the default).
CHUNKINGS: dict[str, int | None] = {"default": None, "2 batches": 20_000_000}
POLL_INTERVAL = "0.01"
POLL_MAX_INTERVAL = "0.05"
PYCACHE = Path(tempfile.gettempdir()) / "bench-grade-pycache"

TARGET_VS_FLOOR = 2.0  # grade's local time (wall - fake), at most this times the floor's


# --- the timed fake --------------------------------------------------------------------


def route_of(method: str, raw_path: str) -> str:
    """The fake's route name of a request."""
    path = urlsplit(raw_path).path
    for route_method, pattern, name in ROUTES:
        if route_method == method and pattern.fullmatch(path):
            return name
    return "unknown"


class TimedFake(FakeBatchAPI):
    """The fake Batch API, recording (start, end, route) of every request it serves."""

    def __init__(self) -> None:
        self.spans: list[tuple[float, float, str]] = []
        super().__init__()

    def _serve(self, handler: Any) -> None:
        started = time.perf_counter()
        try:
            super()._serve(handler)
        finally:
            ended = time.perf_counter()
            self.spans.append((started, ended, route_of(handler.command, handler.path)))

    def busy_seconds(self) -> float:
        """Wall time during which at least one request was being served."""
        total = 0.0
        end = float("-inf")
        for a, b, _ in sorted(self.spans):
            if b <= end:
                continue
            total += b - max(a, end)
            end = b
        return total

    def by_route(self) -> dict[str, float]:
        """Summed span seconds per route."""
        out: dict[str, float] = {}
        for a, b, route in self.spans:
            out[route] = out.get(route, 0.0) + b - a
        return out

    def request_files(self) -> list[str]:
        """sha256 of each uploaded batch input file, in upload order."""
        with self._lock:
            return [
                hashlib.sha256(data).hexdigest()
                for meta, data in self.files.values()
                if meta["purpose"] == "batch"
            ]


# --- one run ---------------------------------------------------------------------------


@dataclass
class Run:
    """One timed subprocess against its own fake."""

    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    fake_s: float
    local_s: float
    fake_by_route: dict[str, float]
    http_calls: int
    batches: int
    others_cores: float | None
    output_sha256: str


@dataclass
class Summary:
    """The runs of one approach with one chunking."""

    tool: str
    chunking: str
    runs: list[Run] = field(default_factory=list)

    def median(self, name: str) -> float:
        return statistics.median(float(getattr(r, name)) for r in self.runs)

    @property
    def rss(self) -> float:
        return max(r.peak_rss_mb for r in self.runs)

    def route_median(self, route: str) -> float:
        return statistics.median(r.fake_by_route.get(route, 0.0) for r in self.runs)


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_once(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[Run, dict[str, Any], Any]:
    """Run ``cmd`` against a fresh fake; (timings, its JSON answer, request file hashes)."""
    hz = os.sysconf("SC_CLK_TCK")
    fake = TimedFake()
    with fake, tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        fake.polls_per_state = 1
        child_env = env | {"OPENAI_BASE_URL": fake.base_url}
        before, self_before = cpu_jiffies(), _self_cpu()
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=child_env, cwd=cwd)
        memory = ProcPeak(proc.pid, "VmHWM")
        memory.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        peak_mb = memory.stop() or 0.0
        after, self_cpu = cpu_jiffies(), _self_cpu() - self_before
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            raise SystemExit(f"{' '.join(cmd[:3])} ... failed ({code}):\n{stderr[-3000:]}")
        cpu = usage.ru_utime + usage.ru_stime
        others = None
        if before is not None and after is not None:
            others = max(0.0, (after[0] - before[0]) / hz - cpu - self_cpu) / wall
        fake_s = fake.busy_seconds()
        run = Run(
            wall_s=wall,
            cpu_s=cpu,
            peak_rss_mb=peak_mb,
            fake_s=fake_s,
            local_s=wall - fake_s,
            fake_by_route=fake.by_route(),
            http_calls=len(fake.spans),
            batches=fake.batches_created,
            others_cores=others,
            output_sha256="",
        )
        return run, json.loads(stdout), fake.request_files()


# --- the commands and the checks -------------------------------------------------------


def _prompt_args() -> list[str]:
    """The floor's arguments that make its requests batchgrader's: prompt, model, schema."""
    prompt = load_prompt(None, None)
    system = prompt.system.render({})
    prefix, placeholder, suffix = DEFAULT_USER.partition("{text}")
    assert placeholder and not suffix, "the floor assumes the user message is prefix + text"
    request = RequestSettings()
    return [
        "--system",
        system,
        "--prefix",
        prefix,
        "--schema",
        json.dumps(prompt.answer_schema()),
        "--model",
        request.model,
        "--max-tokens",
        str(request.max_tokens_per_response),
        "--max-in-flight",
        str(RunSettings().max_simultaneous_batches),
    ]


def _cli() -> list[str]:
    script = Path(sys.executable).parent / "batchgrader"
    return [str(script)] if script.exists() else [sys.executable, "-m", "batchgrader"]


def command(tool: str, path: Path, token_limit: int | None, work: Path) -> list[str]:
    """The child's command line."""
    if tool == "batchgrader":
        return [*_cli(), "grade", str(path), "--yes", "--json"]
    limit = token_limit or ChunkingSettings().split_token_limit
    return [
        sys.executable,
        str(HERE / "floor_grade.py"),
        str(path),
        *_prompt_args(),
        "--token-limit",
        str(limit),
        "--out",
        str(work / "floor-output" / f"{path.stem}.graded.csv"),
        "--work",
        str(work / "floor-requests"),
    ]


def child_env(home: Path, token_limit: int | None) -> dict[str, str]:
    """The environment of both clients (no outside BATCHGRADER_* / OPENAI_* setting).

    Bytecode is cached (under ``PYCACHE``, not beside the sources) even when
    ``PYTHONDONTWRITEBYTECODE`` is set: an installed CLI runs from compiled modules, and
    compiling every import again would add about 1.5 s of start-up to each run.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BATCHGRADER_", "OPENAI_"))}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env |= {
        "PYTHONPYCACHEPREFIX": str(PYCACHE),
        "OPENAI_API_KEY": "sk-bench-0000000000000000",
        "BATCHGRADER_HOME": str(home),
        "BATCHGRADER_RUN__POLL_INTERVAL_SECONDS": POLL_INTERVAL,
        "BATCHGRADER_RUN__POLL_MAX_INTERVAL_SECONDS": POLL_MAX_INTERVAL,
    }
    if token_limit is not None:
        env["BATCHGRADER_CHUNKING__SPLIT_TOKEN_LIMIT"] = str(token_limit)
    return env


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


def verify(output: Path, ids: list[str], scores: list[int | None], label: str) -> str:
    """Assert the graded file is every row in order with the judge's score; its sha256."""
    df = pl.read_csv(output, columns=["id", "llm_score"], schema_overrides={"id": pl.String})
    assert df.height == len(ids), f"{label}: {df.height:,} rows, expected {len(ids):,}"
    assert df["id"].to_list() == ids, f"{label}: rows are not in input order"
    got = df["llm_score"].to_list()
    bad = [i for i, (g, e) in enumerate(zip(got, scores, strict=True)) if g != e]
    assert not bad, f"{label}: {len(bad):,} wrong scores, first at row {bad[0]}"
    digest = hashlib.sha256()
    with output.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def warm_up(tools: list[str]) -> None:
    """One untimed run of each client on the 10k-row file: fills the bytecode cache."""
    small = generate(10_000)
    for tool in tools:
        with tempfile.TemporaryDirectory(prefix="bench-grade-warm-") as tmp:
            work = Path(tmp)
            run_once(command(tool, small, None, work), child_env(work / "home", None), work)


@dataclass(frozen=True)
class Noise:
    """How long to wait for an idle machine, and when to repeat a disturbed run."""

    quiet_wait: float = 60.0
    max_others: float = 0.5  # cores other processes may use during a kept run
    retries: int = 2


def timed_run(
    tool: str,
    path: Path,
    chunking: str,
    expected: tuple[list[str], list[int | None]],
    noise: Noise,
    label: str,
) -> tuple[Run, list[str]]:
    """One verified run; repeated (up to ``noise.retries`` times) when the machine was busy."""
    token_limit = CHUNKINGS[chunking]
    for attempt in range(noise.retries + 1):
        with tempfile.TemporaryDirectory(prefix="bench-grade-") as tmp:
            work = Path(tmp)
            gc.collect()
            wait_for_quiet(noise.quiet_wait)
            run, answer, files = run_once(
                command(tool, path, token_limit, work), child_env(work / "home", token_limit), work
            )
            if tool == "batchgrader":
                (summary,) = answer["files"]
                assert summary["status"] == "done", f"{label}: {summary}"
                output = work / summary["output"]
            else:
                output = Path(answer["output"])
            run.output_sha256 = verify(output, *expected, label)
        print(
            f"  {label}: {run.wall_s:6.2f} s wall, {run.fake_s:6.2f} s fake, "
            f"{run.local_s:6.2f} s local, {run.cpu_s:6.2f} s CPU, {run.peak_rss_mb:5.0f} MB, "
            f"{run.batches} batches, others {run.others_cores or 0:.2f} cores",
            file=sys.stderr,
        )
        if (run.others_cores or 0.0) <= noise.max_others or attempt == noise.retries:
            return run, files
        print(f"  {label}: the machine was busy; once more", file=sys.stderr)
    raise AssertionError("unreachable")


def bench(
    path: Path, runs: int, tools: list[str], chunkings: list[str], noise: Noise
) -> dict[str, dict[str, Summary]]:
    """Every approach with every chunking, ``runs`` times in rotation, each run verified."""
    expected = expected_scores(path)
    warm_up(tools)
    results: dict[str, dict[str, Summary]] = {}
    for chunking in chunkings:
        summaries = {tool: Summary(tool, chunking) for tool in tools}
        uploads: dict[str, list[str]] = {}
        for i in range(runs):
            for tool in tools:
                label = f"{chunking:<9} {tool:<11} run {i + 1}/{runs}"
                run, files = timed_run(tool, path, chunking, expected, noise, label)
                uploads.setdefault(tool, files)
                assert files == uploads[tool], f"{label}: request files differ between runs"
                summaries[tool].runs.append(run)
        if len({json.dumps(f) for f in uploads.values()}) > 1:
            raise SystemExit(f"{chunking}: the approaches uploaded different request files")
        results[chunking] = summaries
    return results


# --- profiling -------------------------------------------------------------------------


#: Functions whose own time is waiting (on the fake, the tokenizer threads, the poll sleep).
WAITS = ("acquire", "recv", "sleep", "poll", "select", "recv_into")

ProfileRow = tuple[str, int, float, float]


def profile(path: Path, chunking: str, top: int) -> dict[str, Any]:
    """Run ``grade`` once under cProfile against a fresh fake.

    Returns the run's wall and fake time, batchgrader's own functions by cumulative time
    (``phases``) and every function by own time, waits left out (``hotspots``); rows
    are (where, calls, own seconds, cumulative seconds). cProfile sees the main thread
    only: tokenizing (in worker threads) shows as its caller waiting.
    """
    token_limit = CHUNKINGS[chunking]
    fake = TimedFake()
    with tempfile.TemporaryDirectory(prefix="bench-grade-prof-") as tmp, fake:
        work = Path(tmp)
        prof = work / "grade.prof"
        env = child_env(work / "home", token_limit) | {"OPENAI_BASE_URL": fake.base_url}
        cmd = [sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "batchgrader"]
        cmd += ["grade", str(path), "--yes", "--json"]
        started = time.perf_counter()
        done = subprocess.run(cmd, env=env, cwd=work, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
        answer = json.loads(done.stdout)  # cProfile exits 0 whatever the CLI's exit code
        if "files" not in answer or answer["files"][0]["status"] != "done":
            raise SystemExit(f"profiled grade failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
        raw: dict[Any, Any] = pstats.Stats(str(prof)).stats  # type: ignore[attr-defined]
        fake_s = fake.busy_seconds()
    rows: list[ProfileRow] = []
    for (file, line, func), (_, calls, tottime, cumtime, _) in raw.items():
        where = f"{_short(file)}:{line}({func})" if line else func
        rows.append((where, calls, tottime, cumtime))
    ours = [r for r in rows if r[0].startswith("batchgrader/") and "<module>" not in r[0]]
    ours.sort(key=lambda r: r[3], reverse=True)
    busy = [r for r in rows if not any(f"'{w}'" in r[0] or f" {w}" in r[0] for w in WAITS)]
    busy.sort(key=lambda r: r[2], reverse=True)
    return {"wall_s": wall, "fake_s": fake_s, "phases": ours[:top], "hotspots": busy[:top]}


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
    versions = {n: metadata.version(n) for n in ("batchgrader", "openai", "polars", "tiktoken")}
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
    return {"batchgrader": "`batchgrader grade`", "floor": "floor (`floor_grade.py`)"}[tool]


def _spread(values: list[float]) -> str:
    return f" ({min(values):.1f}–{max(values):.1f})" if len(values) > 1 else ""


def results_table(results: dict[str, dict[str, Summary]], rows: int) -> str:
    lines = [
        "| chunking | approach | batches | HTTP calls | wall (s) | fake (s) | local = wall − fake "
        "(s) | CPU (s) | peak RSS (MB) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for chunking, summaries in results.items():
        for tool, s in summaries.items():
            lines.append(
                f"| {chunking} | {_label(tool)} | {s.runs[0].batches} | {s.runs[0].http_calls} "
                f"| {s.median('wall_s'):.1f}{_spread([r.wall_s for r in s.runs])} "
                f"| {s.median('fake_s'):.1f}{_spread([r.fake_s for r in s.runs])} "
                f"| **{s.median('local_s'):.1f}**{_spread([r.local_s for r in s.runs])} "
                f"| {s.median('cpu_s'):.1f} | {s.rss:,.0f} |"
            )
    return "\n".join(lines)


def route_table(results: dict[str, dict[str, Summary]]) -> str:
    routes = ("upload", "list", "create", "retrieve", "file_content")
    lines = [
        "| chunking | approach | " + " | ".join(f"`{r}`" for r in routes) + " |",
        "|---|---|" + "---:|" * len(routes),
    ]
    for chunking, summaries in results.items():
        for tool, s in summaries.items():
            cells = " | ".join(f"{s.route_median(r):.2f}" for r in routes)
            lines.append(f"| {chunking} | {_label(tool)} | {cells} |")
    return "\n".join(lines)


def targets(results: dict[str, dict[str, Summary]]) -> list[tuple[str, str, bool]]:
    out = []
    for chunking, summaries in results.items():
        if "batchgrader" in summaries and "floor" in summaries:
            ratio = summaries["batchgrader"].median("local_s") / summaries["floor"].median(
                "local_s"
            )
            out.append(
                (
                    f"{chunking}: `grade`'s local time within {TARGET_VS_FLOOR:.0f}x "
                    "of the floor's",
                    f"{ratio:.2f}x",
                    ratio <= TARGET_VS_FLOOR,
                )
            )
    return out


def _identical(summaries: dict[str, Summary]) -> bool:
    return len({r.output_sha256 for s in summaries.values() for r in s.runs}) == 1


def _profile_table(rows: list[ProfileRow]) -> str:
    lines = ["| function | calls | own (s) | cumulative (s) |", "|---|---:|---:|---:|"]
    lines += [f"| `{w}` | {c:,} | {t:.2f} | {cum:.2f} |" for w, c, t, cum in rows]
    return "\n".join(lines)


def report(
    results: dict[str, dict[str, Summary]],
    rows: int,
    profiles: dict[str, dict[str, Any]],
    machine: dict[str, str],
    noise: Noise,
) -> str:
    others = [r.others_cores for ss in results.values() for s in ss.values() for r in s.runs]
    seen = [o for o in others if o is not None]
    runs = max(len(s.runs) for ss in results.values() for s in ss.values())
    lines = [
        "## `grade` end to end against the fake Batch API (issue 5)",
        "",
        f"Measured {machine['date']} with `{REPRODUCE}`"
        + (f" (here: `{' '.join(sys.argv[1:])}`)" if sys.argv[1:] else "")
        + ".",
        "",
        f"- Machine: {machine['cpu']}, {machine['memory']} RAM; {machine['os']}",
        f"- Python {machine['python']}; batchgrader {machine['batchgrader']} "
        f"({machine['commit']}); openai {machine['openai']}; polars {machine['polars']}; "
        f"tiktoken {machine['tiktoken']}",
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
        "each, 0.1% blank) graded with the defaults (`gpt-4.1-mini`, the `generic` preset, "
        "structured answers, at most 2 batches in flight) against the fake server in this "
        "process with zero latency (`polls_per_state=1`: a batch is done after three polls). "
        f"Poll interval {POLL_INTERVAL} s (backoff bound {POLL_MAX_INTERVAL} s). Chunkings: "
        "**default** (`split_token_limit` 500,000) and **2 batches** "
        "(`BATCHGRADER_CHUNKING__SPLIT_TOKEN_LIMIT=20000000`, cut by the 50,000-request cap).",
        "",
        "**Floor** ([`floor_grade.py`](../benchmarks/floor_grade.py)): the same requests "
        "(byte-identical request files, checked) in the same batches, done as directly as "
        "the libraries allow: eager `pl.read_csv`, tokens counted as in `floor_count.py`, "
        "`json.dumps` per request line, upload + create with the openai SDK, polls back to "
        "back with no sleep, each output downloaded whole and parsed with `json.loads`, "
        "scores joined by row with polars, `write_csv`. No ledger, fingerprint, atomic "
        "writes, retries or per-row error handling.",
        "",
        "**Fake time.** The fake times every request it serves (headers read to answer "
        "written; the run's fake time is the union of those spans: validating, running the "
        "judge and writing the result files happen inside the polls). "
        "`local = wall − fake` is the client's own time: both clients make their HTTP calls "
        "one at a time. Wall and CPU time of the client process come from `os.wait4`, its "
        "peak RSS from sampling its `VmHWM` in `/proc` (`ru_maxrss` would report this "
        "process's own peak: Linux carries a forked child's pre-exec peak over). Both run "
        "with a warm bytecode cache, as an installed CLI does. "
        f"Medians of {runs} runs in rotation (range in brackets); peak RSS is the maximum. "
        "Every run is checked: all rows in input order, `llm_score` equal to "
        "`tests.fakes.judge.judge_score` of the user message, null for blank texts.",
        "",
        results_table(results, rows),
        "",
        "Graded files byte-identical between the two approaches: "
        + ", ".join(f"{'yes' if _identical(ss) else '**no**'} ({c})" for c, ss in results.items())
        + ".",
        "",
        "| target | measured | met |",
        "|---|---:|---|",
    ]
    for name, measured, met in targets(results):
        lines.append(f"| {name} | {measured} | {'yes' if met else '**no**'} |")
    cpu = [
        f"{ss['batchgrader'].median('cpu_s') / ss['floor'].median('cpu_s'):.2f}x ({chunking})"
        for chunking, ss in results.items()
        if "batchgrader" in ss and "floor" in ss
    ]
    if cpu:
        lines += [
            "",
            "For reference, the clients' CPU time (less sensitive to a busy machine than "
            "wall time), batchgrader over the floor: " + ", ".join(cpu) + ".",
        ]
    lines += [
        "",
        "Where the fake's time goes (seconds, summed over the requests of a run, median):",
        "",
        route_table(results),
    ]
    for chunking, prof in profiles.items():
        lines += [
            "",
            f"### cProfile of `grade`, {chunking} chunking",
            "",
            f"One run under cProfile: {prof['wall_s']:.1f} s wall, of which the fake "
            f"{prof['fake_s']:.1f} s (the profiler slows Python-heavy code down). It sees the "
            "main thread only, so the tokenizer threads show as their caller waiting, and "
            "time spent waiting for the fake is inside the HTTP calls.",
            "",
            "batchgrader's functions by cumulative time:",
            "",
            _profile_table(prof["phases"]),
            "",
            "Functions by own time (waits on locks, sockets and sleep left out):",
            "",
            _profile_table(prof["hotspots"]),
        ]
    return "\n".join(lines)


BEGIN, END = "<!-- BEGIN bench_grade (generated) -->", "<!-- END bench_grade -->"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="100k", help="rows of gen_data's dataset")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--tools", default=",".join(TOOLS), help="subset of batchgrader,floor")
    parser.add_argument(
        "--chunkings", default=",".join(CHUNKINGS), help="subset of: " + ", ".join(CHUNKINGS)
    )
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
    args = parser.parse_args()

    tools = [t for t in args.tools.split(",") if t]
    chunkings = [c for c in args.chunkings.split(",") if c]
    if set(tools) - set(TOOLS) or set(chunkings) - set(CHUNKINGS):
        parser.error("unknown tool or chunking")
    if "TIKTOKEN_CACHE_DIR" not in os.environ:
        print("note: TIKTOKEN_CACHE_DIR is not set; tiktoken may download.", file=sys.stderr)
    if args.nice:
        set_priority(args.nice)
    rows = parse_size(args.size)
    path = generate(rows)
    code_before = code_fingerprint()
    noise = Noise(args.quiet_wait, args.max_others, args.retries)
    results = bench(path, args.runs, tools, chunkings, noise)
    profiles = {}
    if args.profile:
        for chunking in chunkings:
            print(f"  profiling grade ({chunking})", file=sys.stderr)
            profiles[chunking] = profile(path, chunking, args.profile_top)
    machine = _machine()
    code_after = code_fingerprint()
    changed = sorted(
        f for f in code_before.keys() | code_after.keys() if code_before.get(f) != code_after.get(f)
    )
    if changed:
        files = ", ".join(f"`{f}`" for f in changed)
        machine["commit"] += f"; **changed during the run: {files}**"
        print(f"warning: changed during the run: {', '.join(changed)}", file=sys.stderr)
    body = report(results, rows, profiles, machine, noise)
    print(body)
    RESULTS.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    raw = {
        "machine": machine,
        "argv": sys.argv[1:],
        "results": {
            chunking: {tool: [asdict(r) for r in s.runs] for tool, s in ss.items()}
            for chunking, ss in results.items()
        },
        "profiles": profiles,
    }
    (RESULTS / f"grade-{stamp}.json").write_text(json.dumps(raw, indent=2) + "\n")
    if not args.no_docs:
        write_section(args.docs, BEGIN, END, body)
        print(f"wrote {args.docs}", file=sys.stderr)
    if args.check and any(not met for _, _, met in targets(results)):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
