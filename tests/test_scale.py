"""A big file in 4 batches through a real ``grade`` subprocess against the fake Batch API.

``grade`` runs as a subprocess (stdout and stderr are files, not a terminal, so the live
display is off, as in CI or cron) with ``chunking.split_row_limit`` cutting the file
into 4 batches and a token limit high enough not to cut first. The child streams the
input in blocks and merges the results back in windows, both smaller than a batch and
not aligned with one (set in the child, as ``tests/test_merge.py`` sets the window
in-process): every row must come back in order with the fake judge's score. The child's
own peak RSS (its ``VmHWM`` at exit) is recorded as the test's ``peak_rss_mb`` property.
Scale and memory at 200k to 1M rows are measured by ``benchmarks/bench_scale.py``, which
checks every row the same way.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

from tests.fakes.batch_api import FakeBatchAPI
from tests.fakes.judge import judge_score

ROWS = 10_000
ROWS_PER_BATCH = 2_500
#: Rows per merge window in the child (``merge.WINDOW_ROWS``, 50,000 by default): 7
#: windows, some straddling two batches.
WINDOW_ROWS = 1_500
USER = "Please evaluate the following text: "
WORDS = ("light", "sky", "blue", "scatter", "short", "long", "wave", "red", "sun", "air", "answer")


def answer(i: int) -> str:
    """A short answer that differs from row to row (so the scores differ too)."""
    return f"Answer {i}: " + " ".join(WORDS[(i * k) % len(WORDS)] for k in range(1, 9))


#: ``python -m batchgrader`` that writes its own peak RSS (VmHWM, kB) to ``argv[1]`` at
#: exit, with merge windows of ``argv[2]`` rows and input streamed in blocks of the fewest
#: rows (``workload.MIN_BATCH_ROWS``, 1,000). ``wait4``'s ``ru_maxrss`` would also count
#: the pytest process's pages that fork copied before exec.
MEASURED = (
    "import atexit, runpy, sys\n"
    "from batchgrader.execution import merge\n"
    "from batchgrader.planning import workload\n"
    "out = sys.argv.pop(1)\n"
    "merge.WINDOW_ROWS = int(sys.argv.pop(1))\n"
    "workload.BATCH_BYTES = 1\n"
    "def hwm():\n"
    "    with open('/proc/self/status') as status, open(out, 'w') as f:\n"
    "        f.write(next(l.split()[1] for l in status if l.startswith('VmHWM')))\n"
    "atexit.register(hwm)\n"
    "sys.argv[0] = 'batchgrader'\n"
    "runpy.run_module('batchgrader', run_name='__main__')\n"
)


def run_measured(args: list[str], cwd: Path) -> tuple[int, float, str]:
    """Run ``batchgrader *args``; (exit code, its own peak RSS in MB, stdout)."""
    report = cwd / "peak-rss-kb"
    cmd = [sys.executable, "-c", MEASURED, str(report), str(WINDOW_ROWS), *args]
    with (cwd / "stdout.json").open("w+b") as out, (cwd / "stderr.txt").open("wb") as err:
        code = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=err, check=False).returncode
        out.seek(0)
        return code, int(report.read_text(encoding="utf-8")) / 1024, out.read().decode()


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak RSS read from /proc")
def test_grade_in_four_batches_streamed_in_windows(
    fake_api: FakeBatchAPI, isolated_env: Path, record_property: Callable[[str, object], None]
) -> None:
    """10k rows, 4 batches, 10 read blocks, 7 merge windows, display off: every row back."""
    texts = [answer(i) for i in range(ROWS)]
    pl.DataFrame({"id": range(ROWS), "response": texts}).write_csv(isolated_env / "big.csv")
    (isolated_env / "batchgrader.toml").write_text(
        f"[chunking]\nsplit_row_limit = {ROWS_PER_BATCH}\nsplit_token_limit = 100_000_000\n",
        encoding="utf-8",
    )
    started = time.monotonic()
    code, peak_mb, stdout = run_measured(["grade", "big.csv", "--yes", "--json"], isolated_env)
    seconds = time.monotonic() - started
    assert code == 0, (isolated_env / "stderr.txt").read_text(encoding="utf-8")[-3000:]
    summary = json.loads(stdout)["files"][0]
    assert (summary["rows"], summary["graded"], summary["chunks"]) == (ROWS, ROWS, 4)
    assert fake_api.batches_created == 4
    out = pl.read_csv(isolated_env / "output" / "big.graded.csv")
    assert out.height == ROWS
    assert out["id"].to_list() == list(range(ROWS))
    assert out["response"].to_list() == texts
    assert out["llm_score"].to_list() == [judge_score(USER + t) for t in texts]
    assert out["llm_error"].null_count() == ROWS
    record_property("peak_rss_mb", round(peak_mb, 1))
    record_property("grade_seconds", round(seconds, 1))
    print(f"\n{ROWS:,} rows, 4 batches: peak RSS {peak_mb:.0f} MB, {seconds:.1f} s")  # noqa: T201
