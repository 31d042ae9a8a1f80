"""``batchgrader split``: parts within row and token limits, written in the input's format."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from typer.testing import Result

from batchgrader.data import reading
from tests.helpers import FORMATS, break_tokenizer, write_table

Bg = Callable[..., Result]

# Quotes, separators, embedded newlines (LF and CRLF), unicode, empty and blank texts,
# number-like and null-like text.
TEXTS = [
    'He said "fine", then: left.',
    "four\nor 4\r\n\tindented",
    "東京 is in Japan 🙂 {not a placeholder}",
    "",
    "   ",
    "a\tb, c; d | e",
    "All work and no play. " * 30,
    "007",
    "NA",
    "null",
    "  padded  ",
    "naïve café — «quoted»",
]
N_ROWS = 24


def text_rows() -> list[dict[str, Any]]:
    """Rows for the text formats; the other column has empty cells now and then."""
    return [
        {
            "id": str(i + 1),
            "response": TEXTS[i % len(TEXTS)],
            "note": "" if i % 5 == 0 else f"note, {i}\nsecond line",
        }
        for i in range(N_ROWS)
    ]


def json_rows() -> list[dict[str, Any]]:
    """Rows with nested values (structs, lists) and a null in each column now and then."""
    return [
        {
            "id": i + 1,
            "response": None if i % 7 == 3 else TEXTS[i % len(TEXTS)],
            "score": None if i % 5 == 1 else i / 4,
            "meta": None
            if i % 5 == 2
            else {"lang": "en" if i % 2 else "日本", "tags": [f"t{i}", "x"], "depth": {"n": i}},
            "tags": None if i % 5 == 4 else [i, i + 1] if i % 3 else [],
        }
        for i in range(N_ROWS)
    ]


def parquet_frame() -> pl.DataFrame:
    """A frame holding the dtypes a Parquet input may carry."""
    n = N_ROWS
    return pl.DataFrame(
        {
            "id": pl.Series(range(n), dtype=pl.Int32),
            "response": [None if i % 7 == 3 else TEXTS[i % len(TEXTS)] for i in range(n)],
            "small": pl.Series([i % 200 for i in range(n)], dtype=pl.UInt8),
            "score": pl.Series([i / 3 for i in range(n)], dtype=pl.Float32),
            "ok": [i % 2 == 0 for i in range(n)],
            "day": [date(2024, 1, 1 + i % 28) for i in range(n)],
            "at": pl.Series(
                [datetime(2024, 5, 1, i % 24, tzinfo=UTC) for i in range(n)],
                dtype=pl.Datetime("us", "UTC"),
            ),
            "price": pl.Series([Decimal(i) / 100 for i in range(n)], dtype=pl.Decimal(10, 2)),
            "kind": pl.Series(["a", "b", "c"] * (n // 3), dtype=pl.Categorical),
            "blob": [bytes([i, 0, 255]) for i in range(n)],
            "tags": [[f"t{i}", None] for i in range(n)],
            "meta": [{"k": i, "v": [1.5, None]} for i in range(n)],
        }
    )


def write_input(folder: Path, fmt: str, name: str = "answers") -> Path:
    """An input file of ``N_ROWS`` rows in ``fmt``."""
    path = folder / f"{name}.{fmt}"
    if fmt in ("csv", "tsv"):
        return write_table(path, text_rows())
    if fmt == "parquet":
        return write_table(path, parquet_frame())
    return write_table(path, json_rows())


def read_all(path: Path) -> pl.DataFrame:
    """A file as batchgrader reads it."""
    return reading.open_input(path).scan().collect()


def ok(result: Result) -> Result:
    """Assert a zero exit, showing the output otherwise."""
    assert result.exit_code == 0, result.output
    return result


def split_json(bg: Bg, *args: object) -> dict[str, Any]:
    """Run ``split --json``; stdout holds the JSON alone and stderr stays empty."""
    result = ok(bg("split", *args, "--json"))
    assert result.stderr == "", result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def request_tokens(bg: Bg, path: Path) -> int:
    """The file's request tokens according to ``count``."""
    result = ok(bg("count", path, "--json"))
    tokens: int = json.loads(result.stdout)["files"][0]["input_tokens"]
    return tokens


class TestRoundTrip:
    """The parts, read back and concatenated, are the input: same values, same dtypes."""

    @pytest.mark.parametrize("fmt", FORMATS)
    def test_by_rows(self, bg: Bg, isolated_env: Path, fmt: str) -> None:
        """--rows 5 cuts 24 rows into 5 parts in the input's format, every row kept in order."""
        path = write_input(isolated_env, fmt)
        report = split_json(bg, path, "--rows", 5)
        f = report["files"][0]
        assert [p["rows"] for p in f["parts"]] == [5, 5, 5, 5, 4]
        parts = [Path(p["file"]) for p in f["parts"]]
        assert [p.name for p in parts] == [f"answers_part{n}.{fmt}" for n in range(1, 6)]
        assert all(reading.open_input(p).format == fmt for p in parts)
        assert_frame_equal(pl.concat([read_all(p) for p in parts]), read_all(path))

    @pytest.mark.parametrize("fmt", FORMATS)
    def test_by_tokens(self, bg: Bg, isolated_env: Path, fmt: str) -> None:
        """--tokens keeps every part within the limit and the parts' tokens add up to count's."""
        path = write_input(isolated_env, fmt)
        total = request_tokens(bg, path)
        limit = total // 4
        f = split_json(bg, path, "--tokens", limit)["files"][0]
        assert len(f["parts"]) >= 4
        assert all(p["tokens"] <= limit for p in f["parts"])
        assert sum(p["tokens"] for p in f["parts"]) == f["tokens"] == total
        parts = [Path(p["file"]) for p in f["parts"]]
        assert_frame_equal(pl.concat([read_all(p) for p in parts]), read_all(path))

    def test_csv_text_is_kept_exactly(self, bg: Bg, isolated_env: Path) -> None:
        """CSV cells (quotes, newlines, CRLF, unicode, empty, number-like) come back as written."""
        path = write_input(isolated_env, "csv")
        f = split_json(bg, path, "--rows", 7)["files"][0]
        rows = [r for p in f["parts"] for r in read_all(Path(p["file"])).to_dicts()]
        assert rows == text_rows()

    def test_json_nested_values_are_kept(self, bg: Bg, isolated_env: Path) -> None:
        """Structs, lists and nulls of a JSONL input survive the split as values."""
        path = write_input(isolated_env, "jsonl")
        f = split_json(bg, path, "--rows", 6)["files"][0]
        lines = [
            json.loads(line)
            for p in f["parts"]
            for line in Path(p["file"]).read_text(encoding="utf-8").splitlines()
        ]
        assert lines == json_rows()


class TestLimits:
    """Which limits apply, and how rows are counted."""

    def test_blank_rows_are_kept_and_counted(self, bg: Bg, isolated_env: Path) -> None:
        """Blank texts are not requests but still land in a part and count toward --rows."""
        path = write_input(isolated_env, "csv")
        f = split_json(bg, path, "--rows", 12, "--tokens", 10**9)["files"][0]
        assert [p["rows"] for p in f["parts"]] == [12, 12]
        assert [p["requests"] for p in f["parts"]] == [10, 10]
        assert f["requests"] == 20
        assert [(p["first_row"], p["last_row"]) for p in f["parts"]] == [(1, 12), (13, 24)]

    def test_rows_and_tokens_together(self, bg: Bg, isolated_env: Path) -> None:
        """With both flags, whichever limit is reached first closes a part."""
        path = write_input(isolated_env, "csv")
        limit = request_tokens(bg, path) // 3
        report = split_json(bg, path, "--rows", 4, "--tokens", limit)
        assert report["limits"] == {"rows": 4, "tokens": limit}
        parts = report["files"][0]["parts"]
        assert all(p["rows"] <= 4 and p["tokens"] <= limit for p in parts)

    def test_settings_apply_without_flags(self, bg: Bg, isolated_env: Path) -> None:
        """With neither flag, chunking.split_token_limit and split_row_limit are the limits."""
        path = write_input(isolated_env, "csv")
        (isolated_env / "batchgrader.toml").write_text(
            "[chunking]\nsplit_row_limit = 10\nsplit_token_limit = 1000000\n", encoding="utf-8"
        )
        report = split_json(bg, path)
        assert report["limits"] == {"rows": 10, "tokens": 1_000_000}
        assert [p["rows"] for p in report["files"][0]["parts"]] == [10, 10, 4]

    def test_a_flag_replaces_the_settings(self, bg: Bg, isolated_env: Path) -> None:
        """--rows alone means no token limit, even with one configured."""
        path = write_input(isolated_env, "csv")
        report = split_json(bg, path, "--rows", 20)
        assert report["limits"] == {"rows": 20, "tokens": None}

    def test_one_row_over_the_token_limit_gets_its_own_part(
        self, bg: Bg, isolated_env: Path
    ) -> None:
        """A row that alone exceeds --tokens is a part of its own, with a warning per row."""
        path = write_input(isolated_env, "csv")
        result = ok(bg("split", path, "--tokens", 120, "--json"))
        f = json.loads(result.stdout)["files"][0]
        long_row = TEXTS.index("All work and no play. " * 30)
        assert f"Row {long_row + 1} needs" in result.stderr
        alone = [p for p in f["parts"] if p["tokens"] > 120]
        rows = [(long_row + 1, 1), (long_row + 13, 1)]  # numbered from 1
        assert [(p["first_row"], p["rows"]) for p in alone] == rows

    @pytest.mark.parametrize("flag", ["--rows", "--tokens"])
    def test_limit_must_be_positive(self, bg: Bg, isolated_env: Path, flag: str) -> None:
        """A zero limit is a usage error."""
        path = write_input(isolated_env, "csv")
        result = bg("split", path, flag, 0)
        assert result.exit_code == 2, result.output


class TestOutput:
    """Where the parts go, their names, and never overwriting by accident."""

    def test_default_out_dir_is_beside_the_input(self, bg: Bg, isolated_env: Path) -> None:
        """Without --out-dir the parts go to {stem}_parts/ next to the input."""
        write_input(isolated_env / "data", "csv")
        f = split_json(bg, Path("data", "answers.csv"), "--rows", 12)["files"][0]
        assert f["out_dir"] == str(Path("data", "answers_parts"))
        folder = isolated_env / "data" / "answers_parts"
        assert sorted(p.name for p in folder.iterdir()) == [f"answers_part{n}.csv" for n in (1, 2)]

    def test_out_dir_is_created(self, bg: Bg, isolated_env: Path) -> None:
        """--out-dir names the folder of the parts, created with its parents."""
        path = write_input(isolated_env, "tsv")
        out = isolated_env / "a" / "b"
        ok(bg("split", path, "--rows", 12, "--out-dir", out))
        assert sorted(p.name for p in out.iterdir()) == ["answers_part1.tsv", "answers_part2.tsv"]

    def test_ten_or_more_parts_are_zero_padded(self, bg: Bg, isolated_env: Path) -> None:
        """12 parts are named _part01 to _part12, so they sort in order."""
        path = write_input(isolated_env, "jsonl")
        f = split_json(bg, path, "--rows", 2)["files"][0]
        names = [Path(p["file"]).name for p in f["parts"]]
        assert names == [f"answers_part{n:02d}.jsonl" for n in range(1, 13)]
        assert names == sorted(names)

    def test_existing_part_is_an_error(self, bg: Bg, isolated_env: Path) -> None:
        """An existing part file stops the split (exit 2): it is untouched, nothing written."""
        path = write_input(isolated_env, "csv")
        folder = isolated_env / "answers_parts"
        folder.mkdir()
        (folder / "answers_part2.csv").write_text("keep me\n", encoding="utf-8")
        result = bg("split", path, "--rows", 12)
        assert result.exit_code == 2, result.output
        assert "answers_part2.csv already exists" in " ".join(result.stderr.split())
        assert "--overwrite" in result.stderr
        assert [p.name for p in folder.iterdir()] == ["answers_part2.csv"]
        assert (folder / "answers_part2.csv").read_text(encoding="utf-8") == "keep me\n"

    def test_overwrite_replaces_parts(self, bg: Bg, isolated_env: Path) -> None:
        """--overwrite replaces existing part files."""
        path = write_input(isolated_env, "csv")
        folder = isolated_env / "answers_parts"
        folder.mkdir()
        (folder / "answers_part2.csv").write_text("old\n", encoding="utf-8")
        ok(bg("split", path, "--rows", 12, "--overwrite"))
        assert read_all(folder / "answers_part2.csv").height == 12
        assert sorted(p.name for p in folder.iterdir()) == [f"answers_part{n}.csv" for n in (1, 2)]

    def test_older_parts_are_warned_about(self, bg: Bg, isolated_env: Path) -> None:
        """Part files of an earlier split that this one does not replace get a warning."""
        path = write_input(isolated_env, "csv")
        ok(bg("split", path, "--rows", 2))
        result = ok(bg("split", path, "--rows", 12))
        assert "12 older part file(s)" in " ".join(result.stderr.split())

    def test_file_within_limits_is_not_copied(self, bg: Bg, isolated_env: Path) -> None:
        """A file that already fits is reported as such, and no folder or part is written."""
        path = write_input(isolated_env, "parquet")
        result = ok(bg("split", path, "--rows", 100))
        assert "already within the limits" in " ".join(result.stdout.split())
        assert sorted(p.name for p in isolated_env.iterdir()) == ["answers.parquet"]

    def test_one_row_file_is_within_limits(self, bg: Bg, isolated_env: Path) -> None:
        """A one-row file is within any limits (exit 0, nothing written)."""
        path = write_table(isolated_env / "one.csv", [{"response": "only row"}])
        f = split_json(bg, path, "--rows", 1)["files"][0]
        assert f["within_limits"] is True and f["parts"] == [] and f["rows"] == 1
        assert sorted(p.name for p in isolated_env.iterdir()) == ["one.csv"]

    @pytest.mark.parametrize("content", ["", "response\n"])
    def test_empty_file_is_an_error(self, bg: Bg, isolated_env: Path, content: str) -> None:
        """An empty or header-only file is bad input (exit 2), and nothing is written."""
        path = isolated_env / "empty.csv"
        path.write_text(content, encoding="utf-8")
        result = bg("split", path, "--rows", 1)
        assert result.exit_code == 2, result.output
        assert "empty.csv" in result.stderr
        assert sorted(p.name for p in isolated_env.iterdir()) == ["empty.csv"]

    def test_dry_run_writes_nothing(self, bg: Bg, isolated_env: Path) -> None:
        """--dry-run reports the planned parts (no sizes) and writes no file."""
        path = write_input(isolated_env, "csv")
        report = split_json(bg, path, "--rows", 12, "--dry-run")
        assert report["dry_run"] is True
        assert [p["bytes"] for p in report["files"][0]["parts"]] == [None, None]
        assert sorted(p.name for p in isolated_env.iterdir()) == ["answers.csv"]

    def test_bad_file_among_several_writes_nothing(self, bg: Bg, isolated_env: Path) -> None:
        """Every input is read before any part is written: one bad file, no parts at all."""
        good = write_input(isolated_env, "csv")
        bad = isolated_env / "bad.csv"
        bad.write_text("a,b\n1,2\n3\n", encoding="utf-8")  # a ragged row
        result = bg("split", good, bad, "--rows", 5)
        assert result.exit_code == 2, result.output
        assert "bad.csv" in result.stderr
        assert sorted(p.name for p in isolated_env.iterdir()) == ["answers.csv", "bad.csv"]

    def test_same_stem_into_one_folder_is_an_error(self, bg: Bg, isolated_env: Path) -> None:
        """Two inputs whose parts would share names in one --out-dir stop the split."""
        a = write_input(isolated_env / "a", "csv")
        b = write_input(isolated_env / "b", "csv")
        result = bg("split", a, b, "--rows", 5, "--out-dir", isolated_env / "out")
        assert result.exit_code == 2, result.output
        assert "would both write" in " ".join(result.stderr.split())
        assert not (isolated_env / "out").exists()


class TestInputs:
    """Which files are split."""

    def test_no_file_uses_the_input_dir(self, bg: Bg, isolated_env: Path) -> None:
        """Without FILE, every supported file of paths.input_dir is split."""
        write_input(isolated_env / "input", "csv", "first")
        write_input(isolated_env / "input", "jsonl", "second")
        report = split_json(bg, "--rows", 12)
        assert [Path(f["input"]).name for f in report["files"]] == ["first.csv", "second.jsonl"]
        assert (isolated_env / "input" / "first_parts" / "first_part2.csv").is_file()
        assert (isolated_env / "input" / "second_parts" / "second_part2.jsonl").is_file()

    def test_format_override_keeps_the_extension(self, bg: Bg, isolated_env: Path) -> None:
        """--format reads a file with another extension; parts keep that extension."""
        path = write_table(isolated_env / "answers.txt", text_rows(), "tsv")
        f = split_json(bg, path, "--format", "tsv", "--rows", 12)["files"][0]
        assert [Path(p["file"]).name for p in f["parts"]] == [
            "answers_part1.txt",
            "answers_part2.txt",
        ]
        assert f["format"] == "tsv"

    def test_column_option_picks_the_counted_text(self, bg: Bg, isolated_env: Path) -> None:
        """--column chooses the text whose requests are counted (every row is then sent)."""
        path = write_input(isolated_env, "csv")
        f = split_json(bg, path, "--column", "id", "--rows", 12, "--tokens", 10**9)["files"][0]
        assert f["requests"] == N_ROWS


class TestReport:
    """What split prints."""

    def test_json_schema(self, bg: Bg, isolated_env: Path) -> None:
        """--json prints the report alone on stdout, with these keys and types."""
        path = write_input(isolated_env, "csv")
        report = split_json(bg, path, "--rows", 12, "--tokens", 10**9)
        assert set(report) == {"model", "encoding", "prompt", "limits", "dry_run", "files"}
        assert report["model"] == "gpt-4.1-mini" and report["encoding"] == "o200k_base"
        (f,) = report["files"]
        assert set(f) == {
            "input",
            "format",
            "rows",
            "requests",
            "tokens",
            "within_limits",
            "out_dir",
            "parts",
            "tokens_label",
        }
        assert f["tokens_label"] == "exact"
        assert f["within_limits"] is False and f["format"] == "csv"
        for n, part in enumerate(f["parts"], start=1):
            assert set(part) == {
                "part",
                "file",
                "first_row",
                "last_row",
                "rows",
                "requests",
                "tokens",
                "bytes",
            }
            assert part["part"] == n
            assert part["bytes"] == Path(part["file"]).stat().st_size

    def test_table(self, bg: Bg, isolated_env: Path) -> None:
        """The table lists each part file with its rows, tokens and bytes."""
        path = write_input(isolated_env, "csv")
        result = ok(bg("split", path, "--rows", 12, "--tokens", 10**9))
        out = " ".join(result.stdout.split())
        for name in ("part file", "rows", "tokens", "bytes", "answers_part1.csv", "1-12", "13-24"):
            assert name in out
        assert "at most 12 rows" in out

    def test_json_error_envelope(self, bg: Bg, isolated_env: Path) -> None:
        """In --json mode an error is a JSON envelope on stdout."""
        path = write_input(isolated_env, "csv")
        ok(bg("split", path, "--rows", 12))
        result = bg("split", path, "--rows", 12, "--json")
        assert result.exit_code == 2
        assert json.loads(result.stdout)["error"]["code"] == "output_exists"


class TestRowsAlone:
    """split --rows needs nothing but rows: no graded column, prompt or tokenizer."""

    def test_rows_split_any_table_offline(
        self, bg: Bg, isolated_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        """A file without a 'response' column splits by rows with no tokenizer at hand."""
        from batchgrader.prompting import tokens

        path = isolated_env / "people.csv"
        pl.DataFrame({"name": [f"n{i}" for i in range(7)], "age": list(range(7))}).write_csv(path)
        break_tokenizer(monkeypatch, tmp_path)
        try:
            result = bg("split", path, "--rows", "3", "--json")
        finally:
            tokens._encoding.cache_clear()
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["model"] is None
        (split_file,) = report["files"]
        assert [p["rows"] for p in split_file["parts"]] == [3, 3, 1]
        assert split_file["tokens"] is None
        parts = sorted((isolated_env / "people_parts").glob("*.csv"))
        assert pl.concat([pl.read_csv(p) for p in parts]).equals(pl.read_csv(path))

    def test_tokens_need_the_graded_column_and_say_so(self, bg: Bg, isolated_env: Path) -> None:
        """--tokens counts requests: without the graded column it stops, naming it."""
        path = isolated_env / "people.csv"
        pl.DataFrame({"name": ["a", "b"]}).write_csv(path)
        result = bg("split", path, "--tokens", "100")
        assert result.exit_code == 2, result.output
        assert "response" in result.stderr and "--column" in result.stderr
