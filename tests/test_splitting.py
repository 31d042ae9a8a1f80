"""Splitting files into parts (splitting.py): names, limits, streaming and all-or-nothing."""

from __future__ import annotations

import itertools
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from batchgrader.data import reading, writing
from batchgrader.errors import InputFileError
from batchgrader.planning import splitting
from batchgrader.planning.spec import RequestSpec, request_spec
from batchgrader.settings import ChunkingSettings
from batchgrader.settings.loading import load_settings
from tests.helpers import FORMATS, write_table

ROWS = [{"id": str(i), "response": f'answer {i}, "quoted"\nline {i} 🙂'} for i in range(20)]


@pytest.fixture
def spec() -> RequestSpec:
    """The default request spec (generic prompt, gpt-4.1-mini)."""
    return request_spec(load_settings().settings, allow_unpriced=True)


def read_all(path: Path) -> pl.DataFrame:
    """A file as batchgrader reads it."""
    return reading.open_input(path).scan().collect()


def tree(folder: Path) -> list[str]:
    """Every path under ``folder``, relative, sorted (temporary files included)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


class TestNames:
    """Part file names and folders."""

    @pytest.mark.parametrize(
        ("parts", "first", "last"),
        [(2, "a_part1.csv", "a_part2.csv"), (9, "a_part1.csv", "a_part9.csv")],
    )
    def test_fewer_than_ten_parts_are_not_padded(self, parts: int, first: str, last: str) -> None:
        """Up to 9 parts the number is not padded."""
        names = [p.name for p in splitting.part_paths(Path("in/a.csv"), Path("out"), parts)]
        assert (names[0], names[-1], len(names)) == (first, last, parts)

    @pytest.mark.parametrize(
        ("parts", "first", "last"), [(10, "a_part01", "a_part10"), (100, "a_part001", "a_part100")]
    )
    def test_ten_or_more_parts_are_padded(self, parts: int, first: str, last: str) -> None:
        """From 10 parts on, numbers are zero-padded to the widest one."""
        paths = splitting.part_paths(Path("a.jsonl"), Path("out"), parts)
        assert (paths[0].stem, paths[-1].stem) == (first, last)
        assert all(p.parent == Path("out") and p.suffix == ".jsonl" for p in paths)

    def test_default_out_dir(self) -> None:
        """The default folder is {stem}_parts beside the input."""
        assert splitting.default_out_dir(Path("data/x.parquet")) == Path("data/x_parts")


class TestLimits:
    """The limits a split uses."""

    def test_flags_win(self) -> None:
        """Given flags are the limits; the other kind is then unlimited."""
        settings = ChunkingSettings(split_row_limit=10)
        limits = splitting.split_limits(settings, rows=None, tokens=1_000)
        assert (limits.rows, limits.tokens) == (None, 1_000)

    def test_settings_without_flags(self) -> None:
        """With no flag, the configured split limits apply (500,000 tokens by default)."""
        assert splitting.split_limits(ChunkingSettings(), rows=None, tokens=None).tokens == 500_000
        limits = splitting.split_limits(ChunkingSettings(split_row_limit=7), rows=None, tokens=None)
        assert (limits.rows, limits.tokens) == (7, 500_000)

    def test_batch_caps_do_not_apply(self) -> None:
        """Parts are not batch files: more than 50,000 rows per part is allowed."""
        limits = splitting.split_limits(ChunkingSettings(), rows=80_000, tokens=None)
        assert limits.row_cap == 80_000


class TestStreaming:
    """The streamed writer routes batches to parts across every boundary."""

    @pytest.mark.parametrize("fmt", FORMATS)
    @pytest.mark.parametrize("batch_rows", [1, 3, 7, 50])
    def test_batches_smaller_and_larger_than_parts(
        self,
        spec: RequestSpec,
        isolated_env: Path,
        monkeypatch: pytest.MonkeyPatch,
        fmt: str,
        batch_rows: int,
    ) -> None:
        """Parts of 5 rows come out whole whether a batch holds 1, 3, 7 or 50 rows."""
        monkeypatch.setattr(splitting, "_batch_rows", lambda source: batch_rows)
        path = write_table(isolated_env / f"in.{fmt}", ROWS)
        limits = splitting.split_limits(ChunkingSettings(), rows=5, tokens=None)
        report = splitting.split_files([path], spec, limits)
        parts = [Path(p.file) for p in report.files[0].parts]
        assert len(parts) == 4
        assert_frame_equal(pl.concat([read_all(p) for p in parts]), read_all(path))
        assert [p.bytes for p in report.files[0].parts] == [p.stat().st_size for p in parts]


class TestAllOrNothing:
    """A failure while writing leaves no part, no temporary file and no new folder."""

    def test_failure_mid_write_leaves_nothing(
        self, spec: RequestSpec, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A write error after some parts were written removes them all."""
        first = write_table(isolated_env / "first.csv", ROWS)
        second = write_table(isolated_env / "second.jsonl", ROWS)
        calls = 0
        real = writing.append_rows

        def failing(*args: object, **kwargs: object) -> None:
            nonlocal calls
            calls += 1
            if calls == 6:  # the first file's 4 parts and a part of the second are done
                raise OSError(28, "No space left on device")
            real(*args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(splitting, "append_rows", failing)
        monkeypatch.setattr(splitting, "_batch_rows", lambda source: 5)
        limits = splitting.split_limits(ChunkingSettings(), rows=5, tokens=None)
        with pytest.raises(OSError, match="No space left"):
            splitting.split_files([first, second], spec, limits, out_dir=Path("out/parts"))
        assert tree(isolated_env) == ["first.csv", "second.jsonl"]

    def test_existing_folder_is_kept(
        self, spec: RequestSpec, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A folder that existed before the split stays, with only its own files."""
        path = write_table(isolated_env / "in.parquet", ROWS)
        out = isolated_env / "out"
        out.mkdir()
        (out / "mine.txt").write_text("x", encoding="utf-8")

        def failing(*args: object) -> None:
            raise OSError(5, "I/O error")

        monkeypatch.setattr(splitting, "sink_rows", failing)
        limits = splitting.split_limits(ChunkingSettings(), rows=5, tokens=None)
        with pytest.raises(OSError, match="I/O error"):
            splitting.split_files([path], spec, limits, out_dir=out)
        assert tree(out) == ["mine.txt"]

    def test_file_changed_between_passes(
        self, spec: RequestSpec, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Rows appended after planning are caught: an error, and nothing is written."""
        path = write_table(isolated_env / "in.csv", ROWS)
        check = splitting._check_targets

        def append_then_check(plans: list[splitting._Plan], overwrite: bool) -> None:
            with path.open("a", encoding="utf-8") as handle:
                handle.write("99,late row\n")
            check(plans, overwrite)

        monkeypatch.setattr(splitting, "_check_targets", append_then_check)
        limits = splitting.split_limits(ChunkingSettings(), rows=5, tokens=None)
        with pytest.raises(InputFileError, match="changed while it was being split"):
            splitting.split_files([path], spec, limits)
        assert tree(isolated_env) == ["in.csv"]


class TestPlan:
    """What the plan holds."""

    def test_tokens_per_part_add_up(self, spec: RequestSpec, isolated_env: Path) -> None:
        """Per-part tokens sum to the file's; requests exclude blank rows."""
        rows = [*ROWS[:10], {"id": "b", "response": " "}, *ROWS[10:]]
        path = write_table(isolated_env / "in.csv", rows)
        limits = splitting.split_limits(ChunkingSettings(), rows=None, tokens=200)
        report = splitting.split_files([path], spec, limits, dry_run=True)
        f = report.files[0]
        tokens: list[int] = []
        for part in f.parts:
            assert part.tokens is not None  # a --tokens split counts every part
            tokens.append(part.tokens)
        assert sum(tokens) == f.tokens
        assert sum(p.rows for p in f.parts) == f.rows == 21
        assert f.requests == 20
        assert all(t <= 200 for t in tokens)
        ranges = [(p.first_row, p.last_row) for p in f.parts]
        assert ranges[0][0] == 1 and ranges[-1][1] == 21  # rows numbered from 1
        assert all(a[1] + 1 == b[0] for a, b in itertools.pairwise(ranges))
        assert tree(isolated_env) == ["in.csv"]
