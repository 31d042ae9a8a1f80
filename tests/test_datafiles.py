"""Input files: formats, discovery and validation before any work (datafiles.py)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from batchgrader.data import formats, reading
from batchgrader.errors import InputFileError, UsageError
from tests.helpers import FORMATS, read_rows, write_table

ROWS = [
    {"id": "1", "response": 'He said "hi", then left.', "topic": "a"},
    {"id": "2", "response": "line one\nline two", "topic": "b"},
    {"id": "3", "response": "naïve café — 東京 🙂", "topic": "c"},
]


def all_values(source: reading.InputFile) -> list[dict[str, object]]:
    """Every row of an opened input, read through its batches."""
    frames = list(source.iter_batches(list(source.columns), batch_rows=2))
    return [row for frame in frames for row in frame.to_dicts()]


class TestFormats:
    """Every supported format is read by its extension, values unchanged."""

    @pytest.mark.parametrize("fmt", FORMATS)
    def test_reads_each_format(self, tmp_path: Path, fmt: str) -> None:
        """Each format is opened with its columns, row count and exact text values."""
        path = write_table(tmp_path / f"in.{fmt}", ROWS)
        source = reading.open_input(path)
        assert source.format == fmt
        assert source.columns == ("id", "response", "topic")
        assert source.rows == 3
        assert all_values(source) == ROWS

    def test_ndjson_extension_is_jsonl(self, tmp_path: Path) -> None:
        """A .ndjson file is read as JSONL."""
        path = write_table(tmp_path / "in.ndjson", ROWS, "jsonl")
        assert reading.open_input(path).format == "jsonl"

    @pytest.mark.parametrize("fmt", FORMATS)
    def test_format_override_ignores_the_extension(self, tmp_path: Path, fmt: str) -> None:
        """``--format`` reads a file whose extension says nothing (or something else)."""
        path = write_table(tmp_path / "data.txt", ROWS, fmt)
        source = reading.open_input(path, formats.parse_format(fmt))
        assert source.format == fmt
        assert all_values(source) == ROWS

    def test_csv_values_stay_text(self, tmp_path: Path) -> None:
        """CSV cells that look like numbers or nulls come back exactly as written."""
        path = tmp_path / "in.csv"
        path.write_text('response,n\n007,NA\n"",1e3\n', encoding="utf-8")
        source = reading.open_input(path)
        assert all_values(source) == [{"response": "007", "n": "NA"}, {"response": "", "n": "1e3"}]

    def test_bom_and_crlf_are_accepted(self, tmp_path: Path) -> None:
        """A UTF-8 BOM and Windows line ends do not change column names or values."""
        path = tmp_path / "in.csv"
        path.write_bytes(b"\xef\xbb\xbfresponse,q\r\na,b\r\nc,d\r\n")
        source = reading.open_input(path)
        assert source.columns == ("response", "q")
        assert all_values(source) == [{"response": "a", "q": "b"}, {"response": "c", "q": "d"}]

    def test_unknown_extension_is_usage_error(self, tmp_path: Path) -> None:
        """An unsupported extension names the file and the supported types."""
        path = tmp_path / "notes.txt"
        path.write_text("response\nx\n", encoding="utf-8")
        with pytest.raises(UsageError, match=r"notes\.txt: unsupported file type '\.txt'"):
            reading.open_input(path)

    def test_unknown_format_name_is_usage_error(self) -> None:
        """An unknown ``--format`` value lists the known ones."""
        with pytest.raises(UsageError, match="Unknown format 'xml'") as info:
            formats.parse_format("xml")
        assert info.value.hint is not None and "parquet" in info.value.hint


class TestDiscover:
    """FILE arguments: files, folders, or the configured input folder."""

    def test_folder_gives_its_supported_files_sorted(self, tmp_path: Path) -> None:
        """A folder contributes every supported file inside it, sorted by name."""
        folder = tmp_path / "in"
        for name in ("b.jsonl", "a.csv", "c.parquet"):
            write_table(folder / name, ROWS)
        (folder / "readme.txt").write_text("not data", encoding="utf-8")
        (folder / "sub").mkdir()
        found = reading.discover([folder], tmp_path / "unused")
        assert [p.name for p in found] == ["a.csv", "b.jsonl", "c.parquet"]

    def test_files_and_folders_keep_argument_order(self, tmp_path: Path) -> None:
        """Files and folders are expanded in the order given."""
        single = write_table(tmp_path / "z.csv", ROWS)
        folder = tmp_path / "in"
        write_table(folder / "a.csv", ROWS)
        found = reading.discover([single, folder], tmp_path / "unused")
        assert found == [single, folder / "a.csv"]

    def test_no_argument_uses_input_dir(self, tmp_path: Path) -> None:
        """With no FILE the configured input folder is read."""
        input_dir = tmp_path / "input"
        write_table(input_dir / "x.tsv", ROWS)
        assert reading.discover([], input_dir) == [input_dir / "x.tsv"]

    def test_missing_input_dir_is_usage_error(self, tmp_path: Path) -> None:
        """No FILE and no input folder is a usage error naming the folder."""
        with pytest.raises(UsageError, match=r"input folder .*missing-dir.* does not exist"):
            reading.discover([], tmp_path / "missing-dir")

    def test_folder_without_supported_file_is_usage_error(self, tmp_path: Path) -> None:
        """A folder holding no supported file is an error naming the folder."""
        folder = tmp_path / "docs"
        folder.mkdir()
        (folder / "notes.txt").write_text("x", encoding="utf-8")
        with pytest.raises(UsageError, match="docs: the folder holds no supported file"):
            reading.discover([folder], tmp_path / "unused")

    def test_missing_file_is_input_error(self, tmp_path: Path) -> None:
        """A FILE that does not exist is named."""
        with pytest.raises(InputFileError, match=r"nope\.csv: no such file or folder"):
            reading.discover([tmp_path / "nope.csv"], tmp_path / "unused")

    def test_unsupported_file_argument_is_usage_error(self, tmp_path: Path) -> None:
        """A FILE with an unsupported extension is rejected before anything is read."""
        path = tmp_path / "notes.docx"
        path.write_bytes(b"PK")
        with pytest.raises(UsageError, match="unsupported file type"):
            reading.discover([path], tmp_path / "unused")


# (file name, content, expected message fragment); every one must name the file.
BAD_INPUTS = [
    ("empty.csv", b"", "the file is empty"),
    ("blank.jsonl", b"\n \n", "the file is empty"),
    ("header.csv", b"response,q\n", "a header but no rows"),
    ("header.tsv", b"response\tq\n", "a header but no rows"),
    ("empty.json", b"[]", "no rows"),
    ("object.json", b'{"response": "a"}', "must be an array of objects"),
    ("mixed.json", b'[{"response": "a"}, 3]', "must be an array of objects"),
    ("broken.json", b'[{"response": "a"},\n{"response": ', "invalid JSON at line 2"),
    ("broken.jsonl", b'{"response": "a"}\n{"response": \n', "line 2 is not valid JSON"),
    ("array.jsonl", b'{"response": "a"}\n[1, 2]\n', "line 2 is not a JSON object"),
    ("latin1.csv", b"response,q\na,b\ncaf\xe9,d\n", "line 3 is not valid UTF-8 (byte 0xe9)"),
    ("latin1.jsonl", b'{"response": "a"}\n{"response": "\xff"}\n', "line 2 is not valid UTF-8"),
    ("latin1.json", b'[{"response": "a"},\n{"response": "\xff"}]', "line 2 is not valid UTF-8"),
    ("long.csv", b"response,q\na,b\nc,d,e\n", "row 2 (ending on line 3) has 3 fields"),
    ("short.csv", b"response,q\na,b\nc\nd,e\n", "row 2 (ending on line 3) has 1 field,"),
    ("short.tsv", b"response\tq\tr\na\tb\tc\nd\te\n", "row 2 (ending on line 3) has 2 fields"),
    ("quote.csv", b'response,q\n"a,b\nc,d\n', "row 1, starting on line 2: a quoted"),
    ("stray.csv", b'response,q\na"x,b\nc,d\ne"y,f\n', "malformed CSV"),
    ("dup.csv", b"response,response\na,b\n", "'response' appears twice"),
    ("junk.parquet", b"not a parquet file", "cannot be read as PARQUET"),
]


class TestValidation:
    """Bad inputs fail before any work with one message naming the file (and line)."""

    @pytest.mark.parametrize(
        ("name", "content", "message"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS]
    )
    def test_bad_input_is_located(
        self, tmp_path: Path, name: str, content: bytes, message: str
    ) -> None:
        """Each malformed file raises InputFileError naming the file and the problem."""
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(InputFileError) as info:
            all_values(reading.open_input(path))
        assert info.value.message.startswith(f"{path}: "), info.value.message
        assert message in info.value.message
        assert "\n" not in info.value.message

    @pytest.mark.parametrize("fmt", ["json", "parquet"])
    def test_zero_rows_with_schema(self, tmp_path: Path, fmt: str) -> None:
        """A typed file with columns but no rows is rejected."""
        empty = pl.DataFrame({"response": []}, schema={"response": pl.String})
        path = write_table(tmp_path / f"in.{fmt}", empty)
        with pytest.raises(InputFileError, match=f"{path}: the file has no rows"):
            reading.open_input(path)

    def test_blank_lines_are_empty_rows(self, tmp_path: Path) -> None:
        """A blank CSV line reads as a row of empty fields, like polars reads it."""
        path = tmp_path / "in.csv"
        path.write_bytes(b"response,q\na,b\n\nd,e\n")
        source = reading.open_input(path)
        assert source.rows == 3
        assert all_values(source)[1] == {"response": "", "q": ""}

    def test_quoted_fields_with_separators_and_newlines(self, tmp_path: Path) -> None:
        """Quoted commas, doubled quotes and newlines count as one row each."""
        path = tmp_path / "in.csv"
        path.write_bytes(b'response,q\n"a, ""b""",1\n"multi\nline\n",2\n')
        source = reading.open_input(path)
        assert source.rows == 2
        assert [r["response"] for r in all_values(source)] == ['a, "b"', "multi\nline\n"]

    def test_huge_field_is_not_malformed(self, tmp_path: Path) -> None:
        """A field beyond the csv module's default 128 KiB limit is still valid."""
        essay = "word " * 60_000
        path = write_table(tmp_path / "in.csv", [{"response": essay}, {"response": "x"}])
        source = reading.open_input(path)
        assert source.rows == 2

    def test_missing_column_lists_existing_columns(self, tmp_path: Path) -> None:
        """A missing column is named and the file's columns are listed in the hint."""
        source = reading.open_input(write_table(tmp_path / "in.csv", ROWS))
        with pytest.raises(InputFileError, match="no column 'answer'") as info:
            reading.require_columns(source, ["answer"], "the graded column, --column")
        assert info.value.hint == "Columns in the file: id, response, topic."

    def test_matches_plain_reader(self, tmp_path: Path) -> None:
        """The polars read equals the stdlib read used by the slow-way tests."""
        for fmt in FORMATS:
            path = write_table(tmp_path / f"in.{fmt}", ROWS)
            assert read_rows(path) == all_values(reading.open_input(path)), fmt
