"""Files batchgrader writes: user-only state, atomic outputs, no path taken from data.

- The ledger, job folders, request and result files and logs are the user's alone
  (folders 0700, files 0600), whatever the umask.
- The graded file, parts and exports are ordinary files of the user (0666 less the
  umask), written atomically: a failure or a SIGKILL during the write leaves the old
  file (or none) under the final name, never a partial one, and the next run finishes
  the job without submitting anything again.
- Nothing in the input (ids, texts, column names) becomes a file path: requests are
  named ``row-N``, and every file lands in the state dir or the output folder.
"""

from __future__ import annotations

import json
import os
import select
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl
import pytest
from typer.testing import Result

from batchgrader.data import atomic
from batchgrader.providers.base import BatchInfo, BatchState
from batchgrader.providers.openai.client import OpenAIBatches
from batchgrader.settings import ApiSettings
from tests.conftest import FAKE_KEY
from tests.fakes.batch_api import FakeBatchAPI
from tests.fakes.judge import judge_score

Invoke = Callable[..., Result]
USER = "Please evaluate the following text: "


def mode(path: Path) -> int:
    """The permission bits of ``path``."""
    return stat.S_IMODE(path.stat().st_mode)


def modes(root: Path) -> dict[str, str]:
    """``{relative path: octal mode}`` of everything under ``root``."""
    return {str(p.relative_to(root)): oct(mode(p)) for p in sorted(root.rglob("*"))}


@pytest.fixture
def umask_022() -> Iterator[None]:
    """Run with the usual umask 022 (group and others may read new files)."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def write_answers(path: Path, n: int) -> list[str]:
    """A CSV of ``n`` answers; returns the texts."""
    texts = [f"Answer {i}: light scatters, so the sky looks blue ({i * 7})." for i in range(n)]
    pl.DataFrame({"id": list(range(n)), "response": texts}).write_csv(path)
    return texts


class TestPermissions:
    """State is user-only; outputs are ordinary files."""

    def test_ledger_jobs_and_logs_are_user_only(
        self, bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, home: Path, umask_022: None
    ) -> None:
        """Folders 0700; ledger, request files and logs 0600, under umask 022."""
        write_answers(isolated_env / "d.csv", 9)
        (isolated_env / "batchgrader.toml").write_text("[chunking]\nsplit_row_limit = 4\n")
        detached = bg("grade", "d.csv", "--detach", "--json")
        assert detached.exit_code == 0, detached.output
        job_id = json.loads(detached.stdout)["files"][0]["job_id"]
        data = home / "data"
        job = data / "jobs" / job_id
        folders = [data, data / "jobs", job, job / "requests", home / "logs"]
        assert {str(f): oct(mode(f)) for f in folders} == dict.fromkeys(map(str, folders), "0o700")
        files = [
            *(job / "requests").glob("*.jsonl"),
            *data.glob("ledger.sqlite3*"),
            *(home / "logs").glob("*.log"),
        ]
        assert len(list((job / "requests").glob("*.jsonl"))) == 3
        assert {str(f): oct(mode(f)) for f in files} == dict.fromkeys(map(str, files), "0o600")

    def test_result_files_are_user_only(
        self, bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, home: Path, umask_022: None
    ) -> None:
        """Every file a finished job keeps (row results) is 0600, its folder 0700."""
        write_answers(isolated_env / "d.csv", 5)
        result = bg("grade", "d.csv", "--json")
        assert result.exit_code == 0, result.output
        job_id = json.loads(result.stdout)["files"][0]["job_id"]
        results = home / "data" / "jobs" / job_id / "results"
        assert mode(results) == 0o700
        kept = list(results.iterdir())
        assert kept and {oct(mode(p)) for p in kept} == {"0o600"}, modes(results)

    def test_downloaded_result_files_are_user_only(
        self, fake_api: FakeBatchAPI, tmp_path: Path, umask_022: None
    ) -> None:
        """A file downloaded from the provider is 0600 from its first byte."""
        client = OpenAIBatches(ApiSettings(key=FAKE_KEY, base_url=fake_api.base_url))
        source = tmp_path / "requests.jsonl"
        source.write_text('{"custom_id": "row-0"}\n', encoding="utf-8")
        file_id = client.prepare(source)
        assert file_id is not None
        info = BatchInfo(
            "batch_x", "completed", BatchState.COMPLETED, 0, 1, 1, 0, results=(file_id,)
        )
        (copy,) = client.download(info, tmp_path, "copy")
        client.close()
        assert copy.read_bytes() == source.read_bytes()
        assert mode(copy) == 0o600

    def test_outputs_are_ordinary_files(
        self, bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, umask_022: None
    ) -> None:
        """The graded file, split parts and a cost export follow the umask (0644)."""
        write_answers(isolated_env / "d.csv", 4)
        for args in (
            ("grade", "d.csv"),
            ("split", "d.csv", "--rows", "2"),
            ("costs", "--export", "usage.jsonl"),
        ):
            result = bg(*args)
            assert result.exit_code == 0, (args, result.output)
        written = [
            isolated_env / "output" / "d.graded.csv",
            *sorted((isolated_env / "d_parts").iterdir()),
            isolated_env / "usage.jsonl",
        ]
        assert len(written) == 4
        assert {str(p): oct(mode(p)) for p in written} == dict.fromkeys(map(str, written), "0o644")


class TestAtomicOutput:
    """A failed or killed write never leaves a partial file under the final name."""

    def test_atomic_path_keeps_the_old_file_on_error(self, tmp_path: Path) -> None:
        """An exception mid-write leaves the old content and no temporary file."""
        target = tmp_path / "atomic" / "out.csv"
        target.parent.mkdir()
        target.write_text("old,content\n", encoding="utf-8")

        def write_half() -> None:
            with atomic.atomic_path(target) as tmp:
                tmp.write_text("new,half", encoding="utf-8")
                raise OSError("disk full")

        with pytest.raises(OSError, match="disk full"):
            write_half()
        assert target.read_text(encoding="utf-8") == "old,content\n"
        assert [p.name for p in target.parent.iterdir()] == ["out.csv"]

    def test_atomic_path_replaces_only_when_complete(self, tmp_path: Path) -> None:
        """A successful write replaces the file in one step; no temporary file stays."""
        target = tmp_path / "atomic" / "out.csv"
        target.parent.mkdir()
        target.write_text("old\n", encoding="utf-8")
        with atomic.atomic_path(target) as tmp:
            tmp.write_text("new\n", encoding="utf-8")
            assert target.read_text(encoding="utf-8") == "old\n"
        assert target.read_text(encoding="utf-8") == "new\n"
        assert [p.name for p in target.parent.iterdir()] == ["out.csv"]

    @pytest.mark.skipif(sys.platform == "win32", reason="advisory locks are POSIX")
    def test_leftovers_of_killed_writes_are_swept(self, tmp_path: Path) -> None:
        """The next write removes old unlocked temporaries; a live or fresh one stays."""
        import fcntl

        folder = tmp_path / "atomic"
        folder.mkdir()
        target = folder / "out.csv"
        old = time.time() - 2 * atomic.STALE_AFTER_SECONDS
        dead, live, fresh, other = (
            folder / f".{name}.tmp"
            for name in ("out.csv.dead0001", "out.csv.live0002", "out.csv.new00003", "o.csv.x")
        )
        for leftover in (dead, live, fresh, other):
            leftover.write_text("half a file", encoding="utf-8")
        for aged in (dead, live, other):
            os.utime(aged, (old, old))
        with live.open("rb") as held:  # another writer, still running
            fcntl.flock(held, fcntl.LOCK_EX)
            with atomic.atomic_path(target) as tmp:
                tmp.write_text("new\n", encoding="utf-8")
        assert target.read_text(encoding="utf-8") == "new\n"
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            ["out.csv", live.name, fresh.name, other.name]
        )

    @pytest.mark.parametrize("existing", [False, True], ids=["new", "overwrite"])
    def test_failed_output_write_then_rerun(
        self,
        bg: Invoke,
        fake_api: FakeBatchAPI,
        isolated_env: Path,
        monkeypatch: pytest.MonkeyPatch,
        existing: bool,
    ) -> None:
        """A write that fails halfway leaves no partial output; a re-run writes it, no new batch."""
        texts = write_answers(isolated_env / "d.csv", 20)
        target = isolated_env / "graded.csv"
        if existing:
            target.write_text("the old graded file\n", encoding="utf-8")
        real_sink = pl.LazyFrame.sink_csv

        def sink_half_then_fail(self: pl.LazyFrame, path: Path, **kwargs: object) -> None:
            self.head(5).collect().write_csv(path)
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(pl.LazyFrame, "sink_csv", sink_half_then_fail)
        failed = bg("grade", "d.csv", "--output", "graded.csv", "--overwrite")
        assert failed.exit_code != 0
        assert fake_api.batches_created == 1
        if existing:
            assert target.read_text(encoding="utf-8") == "the old graded file\n"
        else:
            assert not target.exists()
        assert sorted(p.name for p in isolated_env.iterdir() if p.name.endswith(".tmp")) == []
        monkeypatch.setattr(pl.LazyFrame, "sink_csv", real_sink)
        again = bg("grade", "d.csv", "--output", "graded.csv", "--overwrite")
        assert again.exit_code == 0, again.output
        out = pl.read_csv(target)
        assert out["id"].to_list() == list(range(20))
        assert out["llm_score"].to_list() == [judge_score(USER + t) for t in texts]
        assert fake_api.batches_created == 1

    def test_sigkill_during_the_output_write(
        self, bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
    ) -> None:
        """SIGKILL while the graded file is written: no partial file; the re-run completes it."""
        n = 50
        texts = write_answers(isolated_env / "big.csv", n)
        env = {k: v for k, v in os.environ.items() if not k.startswith("COV_")}
        target = isolated_env / "output" / "big.graded.csv"
        mid_write, told = os.pipe()
        proc = subprocess.Popen(
            [sys.executable, "-c", HALTS_MID_WRITE, str(told), "grade", "big.csv", "--json"],
            cwd=isolated_env,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            pass_fds=(told,),
        )
        os.close(told)
        try:
            ready, _, _ = select.select([mid_write], [], [], 120)
            said = os.read(mid_write, 64) if ready else b""
        finally:
            os.close(mid_write)
        if said != b"mid-write\n":  # exited (EOF) or timed out before the write began
            proc.kill()
            _, err = proc.communicate(timeout=60)
            pytest.fail(f"grade never reached the output write ({proc.returncode}):\n{err!r}")
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL
        assert not target.exists(), "a partial graded file under the final name"
        (leftover,) = (isolated_env / "output").glob(".big.graded.csv.*.tmp")
        assert pl.read_csv(leftover).height == 5  # killed half-way through the write
        batches = fake_api.batches_created
        assert batches == 1
        old = time.time() - 2 * atomic.STALE_AFTER_SECONDS
        os.utime(leftover, (old, old))  # as if killed long ago
        rerun = bg("grade", "big.csv", "--json")
        assert rerun.exit_code == 0, rerun.output
        assert fake_api.batches_created == batches
        out = pl.read_csv(target)
        assert out.height == n
        assert out["id"].to_list() == list(range(n))
        assert out["llm_score"].to_list() == [judge_score(USER + t) for t in texts]
        assert list((isolated_env / "output").glob(".*.tmp")) == []


#: ``python -m batchgrader`` whose write of the graded file stops half-way: the first 5
#: rows reach the temporary file, the child says so on the descriptor ``argv[1]``, then
#: waits to be killed. Every other write is the real one.
HALTS_MID_WRITE = """
import os, runpy, sys, threading
import polars as pl
told = int(sys.argv.pop(1))
real_sink_csv = pl.LazyFrame.sink_csv
def sink_csv(self, path, **kwargs):
    if not os.path.basename(path).startswith(".big.graded.csv."):
        return real_sink_csv(self, path, **kwargs)
    real_sink_csv(self.head(5), path, **kwargs)
    os.write(told, b"mid-write\\n")
    threading.Event().wait()
pl.LazyFrame.sink_csv = sink_csv
sys.argv[0] = "batchgrader"
runpy.run_module("batchgrader", run_name="__main__")
"""


HOSTILE = [
    "../../escaped",
    "../escaped.csv",
    "/tmp/absolute-escape",
    "..\\..\\windows-escape",
    "output/../../x",
    "~/home-escape",
    "$(touch pwned)",
    "row-000000",
    "\x00nul",
]


def test_input_values_never_become_paths(
    bg: Invoke,
    fake_api: FakeBatchAPI,
    isolated_env: Path,
    home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ids, texts and column names like ../../x are data: requests are row-N, files stay put."""
    monkeypatch.setenv("BATCHGRADER_RUN__DELETE_REMOTE_FILES", "false")  # to read them here
    base = tmp_path.parent
    siblings = set(base.iterdir())
    df = pl.DataFrame(
        {
            "custom_id": HOSTILE,
            "../../column": HOSTILE,
            "response": [f"text {v}" for v in HOSTILE],
        }
    )
    df.write_ndjson(isolated_env / "hostile.jsonl")
    dry = bg("grade", "hostile.jsonl", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    result = bg("grade", "hostile.jsonl", "--json")
    assert result.exit_code == 0, result.output
    uploaded = [
        json.loads(line)
        for meta, data in fake_api.files.values()
        if meta["purpose"] == "batch"
        for line in data.decode("utf-8").splitlines()
    ]
    ids = [line["custom_id"] for line in uploaded]
    assert ids == [f"row-{i:06d}" for i in range(len(HOSTILE))]
    written = {p for p in tmp_path.rglob("*") if p.is_file()}
    allowed = (home, isolated_env / "output")
    strays = [p for p in written if not any(p.is_relative_to(a) for a in allowed)]
    assert strays == [isolated_env / "hostile.jsonl"]
    assert set(base.iterdir()) == siblings
    assert not Path("/tmp/absolute-escape").exists()
    assert not (isolated_env / "pwned").exists()
    out = pl.read_ndjson(isolated_env / "output" / "hostile.graded.jsonl")
    assert out["custom_id"].to_list() == HOSTILE and out["../../column"].to_list() == HOSTILE
