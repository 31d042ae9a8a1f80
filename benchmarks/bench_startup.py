"""Benchmark how fast ``batchgrader`` starts: ``--help``, ``grade --help``, ``--version``, a TAB.

Each case runs as a fresh process, hyperfine-style: warm-up runs first (they write the
bytecode, in a private ``PYTHONPYCACHEPREFIX``, even when the shell sets
``PYTHONDONTWRITEBYTECODE``: an installed CLI has its ``.pyc`` files), then ``--runs``
timed runs of every variant in rotation, so a busy moment of the machine hits them all
alike. Wall and CPU time come from
``os.wait4`` on the child. The variants, measured in the same run:

- ``python -c pass``: the interpreter alone, the floor of any Python CLI;
- a minimal Typer app: one command and a ``--version`` option, the same root settings as
  batchgrader's (rich help), asked the same thing (``--help``, ``hello --help``,
  ``--version``, a TAB completing ``he``): the floor of a Typer CLI;
- ``batchgrader``, the installed console script of this checkout;
- with ``--compare REV``: ``batchgrader`` at an older commit (its package extracted with
  ``git archive`` and put first on ``PYTHONPATH``), e.g. the commit before a change.

The TAB is the request bash's completion function sends:
``_BATCHGRADER_COMPLETE=complete_bash COMP_WORDS="batchgrader gr" COMP_CWORD=1``.
One run per variant and case with ``PYTHONPROFILEIMPORTTIME=1`` records which of the
heavy libraries it imported.

    uv run python benchmarks/bench_startup.py --compare 2081f1d

Results go to ``docs/benchmarks.md`` between this script's markers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import set_priority, wait_for_quiet, write_section

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
REPRODUCE = "uv run python benchmarks/bench_startup.py"
TARGET_S = 0.25  # the issue's, on its machine
TARGET_CASES = ("--help", "TAB (`gr`)")
#: What batchgrader may add to a Typer app's own start-up (less machine-bound).
TARGET_OVER_TYPER_S = 0.1
MINIMAL = "minimal Typer app"
#: The libraries a start-up must not need, and two it should not need either.
HEAVY = ("polars", "openai", "anthropic", "tiktoken", "pydantic_settings", "tenacity", "filelock")

CASES: dict[str, tuple[list[str], dict[str, str]]] = {
    "--help": (["--help"], {}),
    "grade --help": (["grade", "--help"], {}),
    "--version": (["--version"], {}),
    "TAB (`gr`)": (
        [],
        {
            "_BATCHGRADER_COMPLETE": "complete_bash",
            "COMP_WORDS": "batchgrader gr",
            "COMP_CWORD": "1",
        },
    ),
}
#: What the minimal app is asked in each case: the same questions, its own names.
MINIMAL_CASES: dict[str, tuple[list[str], dict[str, str]]] = {
    "--help": (["--help"], {}),
    "grade --help": (["hello", "--help"], {}),
    "--version": (["--version"], {}),
    "TAB (`gr`)": (
        [],
        {"_MINIMAL_COMPLETE": "complete_bash", "COMP_WORDS": "minimal he", "COMP_CWORD": "1"},
    ),
}
MINIMAL_APP = '''
from typing import Annotated

import typer

app = typer.Typer(
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_show_locals=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo("minimal 1.0")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True)] = False,
) -> None:
    """A minimal Typer app."""


@app.command()
def hello(name: Annotated[str, typer.Argument(help="Who to greet.")] = "world") -> None:
    """Say hello."""
    typer.echo(f"hello {name}")


app(prog_name="minimal")
'''


@dataclass
class Variant:
    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cases: dict[str, tuple[list[str], dict[str, str]]] = field(default_factory=lambda: CASES)
    baseline: bool = False  # the same command for every case (python -c pass)


@dataclass
class Sample:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    heavy: tuple[str, ...] = ()


#: The children's environment: bytecode written and read in a private folder, as an
#: installed CLI has its .pyc files (a PYTHONDONTWRITEBYTECODE=1 shell would otherwise
#: time compiling every module from source, twice the work).
BASE_ENV: dict[str, str] = {}


def run_once(variant: Variant, case: str, profile: bool = False) -> tuple[float, float, str]:
    """(wall s, CPU s, stderr) of one fresh process of ``variant`` answering ``case``."""
    args, extra = ([], {}) if variant.baseline else variant.cases[case]
    env = {**BASE_ENV, **variant.env, **extra}
    if profile:
        env["PYTHONPROFILEIMPORTTIME"] = "1"
    start = time.perf_counter()
    child = subprocess.Popen(
        [*variant.argv, *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE if profile else subprocess.DEVNULL,
    )
    err = child.stderr.read().decode() if child.stderr else ""
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise SystemExit(f"{variant.name} {case}: exit {child.returncode}")
    return wall, usage.ru_utime + usage.ru_stime, err


def imported(importtime_log: str) -> tuple[str, ...]:
    """The HEAVY packages a ``-X importtime`` log shows as imported."""
    names = set(re.findall(r"^import time:\s+\d+ \|\s+\d+ \|\s*([\w.]+)", importtime_log, re.M))
    return tuple(h for h in HEAVY if h in names)


def extract(rev: str, into: Path) -> Path:
    """The ``batchgrader`` package of commit ``rev``, extracted under ``into``."""
    archive = subprocess.run(
        ["git", "archive", rev, "batchgrader"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    into.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def variants(tmp: Path, compare: str | None) -> list[Variant]:
    exe = shutil.which("batchgrader", path=str(Path(sys.executable).parent))
    if exe is None:
        raise SystemExit("no batchgrader console script beside this Python (uv sync first)")
    minimal = tmp / "minimal.py"
    minimal.write_text(MINIMAL_APP, encoding="utf-8")
    out = [
        Variant("`python -c pass`", [sys.executable, "-c", "pass"], baseline=True),
        Variant(MINIMAL, [sys.executable, str(minimal)], cases=MINIMAL_CASES),
    ]
    if compare:
        old = extract(compare, tmp / "old")
        short = subprocess.run(
            ["git", "rev-parse", "--short", compare], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        out.append(Variant(f"batchgrader at {short}", [exe], env={"PYTHONPATH": str(old)}))
    out.append(Variant("batchgrader (this checkout)", [exe]))
    return out


def bench(
    vs: list[Variant], runs: int, warmup: int, quiet_wait: float
) -> dict[str, dict[str, Sample]]:
    results = {v.name: {c: Sample() for c in CASES} for v in vs}
    for v in vs:
        for case in CASES:
            for _ in range(warmup):
                run_once(v, case)
            results[v.name][case].heavy = imported(run_once(v, case, profile=True)[2])
    for i in range(runs):
        if quiet_wait and i % 5 == 0:
            wait_for_quiet(quiet_wait)
        for case in CASES:
            for v in vs:
                wall, cpu, _ = run_once(v, case)
                results[v.name][case].wall.append(wall)
                results[v.name][case].cpu.append(cpu)
    return results


def _machine() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        if m := re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M):
            cpu = m.group(1).strip()
    except OSError:
        pass
    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return {
        "cpu": f"{cpu}, {os.cpu_count()} cores",
        "os": platform.platform(),
        "python": platform.python_version(),
        "commit": commit,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "versions": "; ".join(
            f"{n} {metadata.version(n)}" for n in ("batchgrader", "typer", "rich", "polars")
        ),
    }


def _cell(s: Sample) -> str:
    return f"{statistics.median(s.wall):.3f} ({min(s.wall):.3f}–{max(s.wall):.3f})"


def report(results: dict[str, dict[str, Sample]], runs: int, load: float) -> str:
    m = _machine()
    names = list(results)
    lines = [
        "## Start-up: `--help`, `--version` and a TAB (issue 14)",
        "",
        f"Measured {m['date']} with `{REPRODUCE}`"
        + (f" (here: `{' '.join(sys.argv[1:])}`)" if sys.argv[1:] else "")
        + ".",
        "",
        f"- Machine: {m['cpu']}; {m['os']}; other processes used {load:.2f} cores "
        "just before the timed runs",
        f"- Python {m['python']}; {m['versions']} ({m['commit']})",
        "",
        "Wall time in seconds of a fresh process, median of "
        f"{runs} runs (min–max), after warm-up runs, with the bytecode cached (in a private "
        "`PYTHONPYCACHEPREFIX`, as an installed CLI has its `.pyc` files); each variant is "
        "asked the same "
        "thing (the minimal Typer app: its own command and completion). The TAB is what "
        "bash's completion function runs: `_BATCHGRADER_COMPLETE=complete_bash "
        'COMP_WORDS="batchgrader gr" COMP_CWORD=1 batchgrader`.',
        "",
        "| case | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for case in CASES:
        lines.append(f"| {case} | " + " | ".join(_cell(results[n][case]) for n in names) + " |")
    lines += ["", "CPU time (s, median), less sensitive to a busy machine:", ""]
    lines += ["| case | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for case in CASES:
        lines.append(
            f"| {case} | "
            + " | ".join(f"{statistics.median(results[n][case].cpu):.3f}" for n in names)
            + " |"
        )
    lines += [
        "",
        "Heavy libraries imported (`PYTHONPROFILEIMPORTTIME=1`, one run each; of "
        + ", ".join(f"`{h}`" for h in HEAVY)
        + "):",
        "",
        "| case | " + " | ".join(n for n in names[1:]) + " |",
        "|---|" + "---|" * len(names[1:]),
    ]
    for case in CASES:
        cells = [", ".join(results[n][case].heavy) or "none" for n in names[1:]]
        lines.append(f"| {case} | " + " | ".join(cells) + " |")
    lines += ["", "| target | measured | met |", "|---|---:|---|"]
    for name, measured, met in targets(results):
        lines.append(f"| {name} | {measured} | {'yes' if met else '**no**'} |")
    return "\n".join(lines)


def targets(results: dict[str, dict[str, Sample]]) -> list[tuple[str, str, bool]]:
    """The issue's absolute target, and batchgrader's overhead over the minimal Typer app."""
    current, minimal = results[list(results)[-1]], results[MINIMAL]
    out = []
    for case in TARGET_CASES:
        median = statistics.median(current[case].wall)
        out.append((f"{_label(case)} under {TARGET_S} s", f"{median:.3f} s", median < TARGET_S))
    for case in CASES:
        extra = statistics.median(current[case].wall) - statistics.median(minimal[case].wall)
        out.append(
            (
                f"{_label(case)} within {TARGET_OVER_TYPER_S} s of the minimal Typer app's",
                f"{extra:+.3f} s",
                extra <= TARGET_OVER_TYPER_S,
            )
        )
    return out


def _label(case: str) -> str:
    return "a TAB" if case.startswith("TAB") else f"`batchgrader {case}`"


BEGIN, END = "<!-- BEGIN bench_startup (generated) -->", "<!-- END bench_startup -->"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--compare", metavar="REV", help="also time batchgrader at this commit")
    parser.add_argument("--quiet-wait", type=float, default=10.0, help="seconds, every 5 rounds")
    parser.add_argument("--nice", type=int, default=0, help="run at this nice value (root: <0)")
    parser.add_argument("--docs", type=Path, default=DOCS)
    parser.add_argument("--no-docs", action="store_true", help="print the report only")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args()
    if args.nice:
        set_priority(args.nice)
    with tempfile.TemporaryDirectory() as tmp:
        BASE_ENV.update(os.environ)
        BASE_ENV.pop("PYTHONDONTWRITEBYTECODE", None)
        BASE_ENV["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        vs = variants(Path(tmp), args.compare)
        load = wait_for_quiet(args.quiet_wait) if args.quiet_wait else 0.0
        results = bench(vs, args.runs, args.warmup, args.quiet_wait)
    text = report(results, args.runs, load)
    print(text)
    if not args.no_docs:
        write_section(args.docs, BEGIN, END, text)
    missed = [name for name, _, met in targets(results) if not met]
    if args.check and missed:
        raise SystemExit(f"target missed: {'; '.join(missed)}")


if __name__ == "__main__":
    main()
