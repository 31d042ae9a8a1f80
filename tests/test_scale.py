"""Scale: 200,000 rows in 4 batches through a real ``grade`` against the fake Batch API.

``grade`` runs as a subprocess (stdout and stderr are files, not a terminal, so the live
display is off, as in CI or cron), with ``chunking.split_row_limit = 50000`` and a token limit
high enough not to cut first. Every row must come back in order with the fake judge's
score, and the child's own peak RSS (its ``VmHWM`` at exit) is recorded as the test's
``peak_rss_mb`` property and printed (``pytest -s``).
``benchmarks/bench_scale.py`` extends this to 1M rows and to memory against chunks.
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

ROWS = 200_000
ROWS_PER_BATCH = 50_000
USER = "Please evaluate the following text: "
WORDS = ("light", "sky", "blue", "scatter", "short", "long", "wave", "red", "sun", "air", "answer")


def answer(i: int) -> str:
    """A short answer that differs from row to row (so the scores differ too)."""
    return f"Answer {i}: " + " ".join(WORDS[(i * k) % len(WORDS)] for k in range(1, 9))


#: ``python -m batchgrader`` that writes its own peak RSS (VmHWM, kB) to ``argv[1]`` at
#: exit. ``wait4``'s ``ru_maxrss`` would also count the pytest process's pages that fork
#: copied before exec.
MEASURED = (
    "import atexit, runpy, sys\n"
    "out = sys.argv.pop(1)\n"
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
    cmd = [sys.executable, "-c", MEASURED, str(report), *args]
    with (cwd / "stdout.json").open("w+b") as out, (cwd / "stderr.txt").open("wb") as err:
        code = subprocess.run(cmd, cwd=cwd, stdout=out, stderr=err, check=False).returncode
        out.seek(0)
        return code, int(report.read_text(encoding="utf-8")) / 1024, out.read().decode()


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="peak RSS read from /proc")
def test_grade_200k_rows_in_four_batches(
    fake_api: FakeBatchAPI, isolated_env: Path, record_property: Callable[[str, object], None]
) -> None:
    """200k rows, 4 batches, display off: every row back in order with its score."""
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
    print(f"\n200k rows, 4 batches: peak RSS {peak_mb:.0f} MB, {seconds:.1f} s")  # noqa: T201
