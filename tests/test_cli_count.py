"""``batchgrader count``: exact request tokens per file and the cost estimate."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import Result

from batchgrader.prompting import tokens
from batchgrader.prompting.prompts import load_prompt
from batchgrader.prompting.tokens import Counter
from tests.helpers import FORMATS, break_tokenizer, slow_count, write_prompt, write_table

Bg = Callable[..., Result]

# Unicode, newlines, quotes, separators, braces, blank and null texts.
ROWS: list[dict[str, Any]] = [
    {"topic": "física", "question": "Why?", "response": 'He said "fine", then: left.'},
    {"topic": "maths", "question": "2+2?", "response": "four\nor 4\r\n\tindented"},
    {"topic": "東京", "question": "Where?", "response": "東京 is in Japan 🙂 {not a placeholder}"},
    {"topic": "null", "question": "Empty?", "response": None},
    {"topic": "", "question": "Blank?", "response": "   "},
    {"topic": "tabs", "question": "Tab\tseparated?", "response": "a\tb, c; d | e"},
    {"topic": "long", "question": "Essay?", "response": "All work and no play. " * 80},
]
SENT = 5

MULTI_COLUMN = {
    "system": "You grade answers about {topic}. Examples:\n{dynamic_examples}\nReply in JSON.",
    "user": 'Q: {question}\nA: {text}\nReturn {{"score": n}} for "{topic}".',
    "scale": {"min": 0, "max": 10},
}


def ok(result: Result) -> Result:
    """Assert a zero exit, showing the output otherwise."""
    assert result.exit_code == 0, result.output
    return result


def count_json(bg: Bg, *args: object) -> dict[str, Any]:
    """Run ``count --json`` and parse stdout (stderr must stay empty)."""
    result = ok(bg("count", *args, "--json"))
    assert result.stderr == "", result.stderr
    data: dict[str, Any] = json.loads(result.stdout, parse_float=Decimal)  # money is exact
    return data


def flat(text: str) -> str:
    """Whitespace-normalised text (rich wraps long lines)."""
    return " ".join(text.split())


def assert_usage_error(result: Result, *fragments: str) -> None:
    """Exit 2, one Error line naming the problem on stderr, nothing on stdout."""
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert "Traceback" not in result.output
    assert flat(result.stderr).count("Error: ") == 1, result.stderr
    for fragment in fragments:
        assert fragment in flat(result.stderr), result.stderr


@pytest.fixture
def examples_file(isolated_env: Path) -> Path:
    """An examples file for ``{dynamic_examples}``."""
    path = isolated_env / "examples.txt"
    path.write_text('Good: "Paris is the capital."\nBad: "it is big"\n', encoding="utf-8")
    return path


class TestExactCounts:
    """The count of a file equals the sum of per-request counts done the slow way."""

    @pytest.mark.parametrize("fmt", FORMATS)
    @pytest.mark.parametrize("prompt_kind", ["generic", "style-match", "multi-column"])
    def test_count_equals_slow_way(
        self, bg: Bg, isolated_env: Path, examples_file: Path, fmt: str, prompt_kind: str
    ) -> None:
        """count --json matches messages rendered with Template.render and counted one by one."""
        path = write_table(isolated_env / f"answers.{fmt}", ROWS)
        args: list[object] = [path]
        if prompt_kind == "generic":
            prompt = load_prompt("generic", None)
        elif prompt_kind == "style-match":
            prompt = load_prompt("style-match", examples_file)
            args += ["--prompt", "style-match", "--examples", examples_file]
        else:
            prompt_file = write_prompt(isolated_env / "grade.toml", **MULTI_COLUMN)
            prompt = load_prompt(str(prompt_file), examples_file)
            args += ["--prompt", prompt_file, "--examples", examples_file]
        report = count_json(bg, *args)
        want = slow_count(path, prompt, "response", Counter.for_model("gpt-4.1-mini"))
        got = report["files"][0]
        assert want["requests"] == SENT
        assert {k: got[k] for k in want} == want

    @pytest.mark.parametrize(
        ("model", "encoding"), [("gpt-4", "cl100k_base"), ("gpt-4o", "o200k_base")]
    )
    def test_model_picks_the_encoding(
        self, bg: Bg, isolated_env: Path, model: str, encoding: str
    ) -> None:
        """Old models are counted with cl100k_base, current ones with o200k_base."""
        path = write_table(isolated_env / "answers.csv", ROWS)
        report = count_json(bg, path, "--model", model)
        assert report["encoding"] == encoding
        want = slow_count(path, load_prompt("generic", None), "response", Counter.for_model(model))
        assert report["files"][0]["input_tokens"] == want["input_tokens"]

    def test_responses_endpoint_counts_the_same(self, bg: Bg, isolated_env: Path) -> None:
        """The /v1/responses endpoint sends the same messages, so the same tokens."""
        path = write_table(isolated_env / "answers.jsonl", ROWS)
        chat = count_json(bg, path)["files"][0]["input_tokens"]
        responses = count_json(bg, path, "--endpoint", "/v1/responses")
        assert responses["endpoint"] == "/v1/responses"
        assert responses["files"][0]["input_tokens"] == chat

    def test_column_option_picks_the_graded_text(self, bg: Bg, isolated_env: Path) -> None:
        """``--column`` chooses which column is ``{text}``."""
        path = write_table(isolated_env / "answers.csv", ROWS)
        report = count_json(bg, path, "--column", "question")
        want = slow_count(
            path, load_prompt("generic", None), "question", Counter.for_model("gpt-4.1-mini")
        )
        assert report["files"][0]["requests"] == len(ROWS)
        assert report["files"][0]["input_tokens"] == want["input_tokens"]

    def test_max_row_and_mean(self, bg: Bg, isolated_env: Path) -> None:
        """The largest request is reported with its 1-based row, and the mean per request."""
        path = write_table(isolated_env / "answers.csv", ROWS)
        f = count_json(bg, path)["files"][0]
        assert f["max_row"] == 7
        assert float(f["mean_tokens"]) == round(f["input_tokens"] / f["requests"], 1)


class TestReport:
    """What count prints."""

    def test_json_schema(self, bg: Bg, isolated_env: Path) -> None:
        """``count --json`` has the documented keys, and nothing on stderr."""
        path = write_table(isolated_env / "answers.csv", ROWS)
        report = count_json(bg, path)
        assert set(report) == {
            "model",
            "priced_as",
            "encoding",
            "endpoint",
            "prompt",
            "context_window",
            "files",
            "total",
        }
        assert report["model"] == "gpt-4.1-mini"
        assert report["prompt"] == "generic"
        assert report["total"] is None
        (f,) = report["files"]
        assert set(f) == {
            "path",
            "rows",
            "skipped",
            "requests",
            "input_tokens",
            "mean_tokens",
            "max_tokens",
            "max_row",
            "over_context",
            "expected_output_tokens",
            "worst_output_tokens",
            "cost",
            "input_tokens_label",
            "input_figure",
        }
        assert (f["input_tokens_label"], f["input_figure"]) == ("exact", None)
        assert (f["path"], f["rows"], f["skipped"], f["requests"]) == (str(path), 7, 2, 5)
        assert f["worst_output_tokens"] == 5 * 512
        assert set(f["cost"]) == {
            "input",
            "output_expected",
            "output_worst",
            "total_expected",
            "total_worst",
            "sync_total_expected",
            "sync_total_worst",
        }
        assert all(isinstance(v, (Decimal, int)) for v in f["cost"].values()), "money: numbers"

    def test_banner_and_table(self, bg: Bg, isolated_env: Path) -> None:
        """The table goes to stdout; the 'no requests are made' banner to stderr."""
        write_table(isolated_env / "answers.csv", ROWS)
        result = ok(bg("count", "answers.csv"))
        assert "no requests are made" in result.stderr
        assert "no requests are made" not in result.stdout
        assert "answers.csv" in result.stdout
        assert "Tokens (exact, as sent)" in result.stdout

    def test_several_files_have_a_total(self, bg: Bg, isolated_env: Path) -> None:
        """Several files get one row each and a total row that sums them."""
        write_table(isolated_env / "a.csv", ROWS)
        write_table(isolated_env / "more" / "b.jsonl", ROWS[:3])
        write_table(isolated_env / "more" / "c.parquet", ROWS[3:])
        report = count_json(bg, "a.csv", "more")
        assert [f["path"] for f in report["files"]] == [
            "a.csv",
            str(Path("more") / "b.jsonl"),
            str(Path("more") / "c.parquet"),
        ]
        total = report["total"]
        assert total["path"] == "total"
        for key in ("rows", "skipped", "requests", "input_tokens", "worst_output_tokens"):
            assert total[key] == sum(f[key] for f in report["files"]), key
        assert total["max_tokens"] == max(f["max_tokens"] for f in report["files"])
        text = ok(bg("count", "a.csv", "more")).stdout
        assert "total" in text

    def test_no_file_uses_input_dir(self, bg: Bg, isolated_env: Path) -> None:
        """With no FILE, the configured paths.input_dir is counted."""
        (isolated_env / "batchgrader.toml").write_text(
            '[paths]\ninput_dir = "inbox"\n', encoding="utf-8"
        )
        write_table(isolated_env / "inbox" / "x.csv", ROWS)
        report = count_json(bg)
        assert [f["path"] for f in report["files"]] == [str(Path("inbox") / "x.csv")]

    def test_inputs_are_never_modified(self, bg: Bg, isolated_env: Path) -> None:
        """Counting leaves every input byte for byte unchanged."""
        paths = [write_table(isolated_env / f"in.{fmt}", ROWS) for fmt in FORMATS]
        before = {p: p.read_bytes() for p in paths}
        count_json(bg, *paths)
        assert {p: p.read_bytes() for p in paths} == before


class TestEmptyTexts:
    """Null, empty and blank texts are skipped, or an error with --fail-on-empty."""

    @pytest.mark.parametrize("fmt", FORMATS)
    def test_skipped_by_default(self, bg: Bg, isolated_env: Path, fmt: str) -> None:
        """Blank texts are counted as skipped and cost nothing."""
        path = write_table(isolated_env / f"answers.{fmt}", ROWS)
        f = count_json(bg, path)["files"][0]
        assert (f["rows"], f["skipped"], f["requests"]) == (7, 2, 5)

    @pytest.mark.parametrize("fmt", FORMATS)
    def test_fail_on_empty(self, bg: Bg, isolated_env: Path, fmt: str) -> None:
        """``--fail-on-empty`` stops with the file and the first blank row named."""
        path = write_table(isolated_env / f"answers.{fmt}", ROWS)
        result = bg("count", path, "--fail-on-empty")
        assert_usage_error(result, f"{path}: row 4 has an empty or null 'response'")


BAD_FILES = [
    ("empty.csv", b"", "empty.csv: the file is empty"),
    ("header.csv", b"response,q\n", "header.csv: the file has a header but no rows"),
    ("latin1.csv", b"response\nok\ncaf\xe9\n", "latin1.csv: line 3 is not valid UTF-8"),
    ("ragged.csv", b"response,q\na,b\nc\n", "ragged.csv: row 2 (ending on line 3) has 1 field"),
    ("bad.jsonl", b'{"response": "a"}\n{oops}\n', "bad.jsonl: line 2 is not valid JSON"),
    ("bad.json", b'{"response": "a"}', "bad.json: a .json input must be an array of objects"),
    ("numbers.jsonl", b'{"response": 1}\n', "numbers.jsonl: the graded column 'response' holds"),
]


class TestBadInput:
    """Bad input: one clear message naming the file (and line), exit 2, no traceback."""

    @pytest.mark.parametrize(
        ("name", "content", "message"), BAD_FILES, ids=[b[0] for b in BAD_FILES]
    )
    def test_bad_file(
        self, bg: Bg, isolated_env: Path, name: str, content: bytes, message: str
    ) -> None:
        """Each malformed input fails before counting, naming the file."""
        (isolated_env / name).write_bytes(content)
        assert_usage_error(bg("count", name), message)

    def test_missing_column_lists_columns(self, bg: Bg, isolated_env: Path) -> None:
        """A missing graded column is named, with the file's columns listed."""
        write_table(isolated_env / "answers.csv", ROWS)
        result = bg("count", "answers.csv", "--column", "answer")
        assert_usage_error(
            result,
            "answers.csv: no column 'answer'",
            "Columns in the file: topic, question, response.",
        )

    def test_unknown_placeholder_is_checked_first(self, bg: Bg, isolated_env: Path) -> None:
        """A prompt placeholder that is not a column fails before any counting."""
        write_table(isolated_env / "answers.csv", ROWS)
        write_prompt(isolated_env / "p.toml", system="Judge.", user="{reference}: {text}")
        result = bg("count", "answers.csv", "--prompt", "p.toml")
        assert_usage_error(result, "uses {reference}, which is not a column of answers.csv")

    def test_missing_examples_file(self, bg: Bg, isolated_env: Path) -> None:
        """An examples file that does not exist is an error."""
        write_table(isolated_env / "answers.csv", ROWS)
        result = bg("count", "answers.csv", "--examples", "nope.txt")
        assert_usage_error(result, "Examples file nope.txt does not exist")

    def test_prompt_file_fallback_warns(self, bg: Bg, isolated_env: Path) -> None:
        """A prompt file lacking 'user' falls back to the preset's, with a visible warning."""
        write_table(isolated_env / "answers.csv", ROWS)
        write_prompt(isolated_env / "p.toml", system="Judge {topic} answers.")
        result = ok(bg("count", "answers.csv", "--prompt", "p.toml"))
        assert "has no 'user'; using the generic preset's" in flat(result.stderr)

    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["notes.txt"], "notes.txt: unsupported file type '.txt'"),
            (["empty-dir"], "empty-dir: the folder holds no supported file"),
            (["nope.csv"], "nope.csv: no such file or folder"),
            ([], "No FILE given and the input folder 'input' does not exist"),
            (["answers.csv", "--format", "xml"], "Unknown format 'xml'"),
        ],
    )
    def test_bad_arguments(self, bg: Bg, isolated_env: Path, args: list[str], message: str) -> None:
        """Unsupported files, empty folders and missing inputs are usage errors."""
        write_table(isolated_env / "answers.csv", ROWS)
        (isolated_env / "notes.txt").write_text("response\nx\n", encoding="utf-8")
        (isolated_env / "empty-dir").mkdir()
        (isolated_env / "empty-dir" / "readme.md").write_text("hi", encoding="utf-8")
        assert_usage_error(bg("count", *args), message)

    def test_nested_column_in_prompt(self, bg: Bg, isolated_env: Path) -> None:
        """A JSON column holding objects cannot fill a placeholder: a clear error, exit 2."""
        (isolated_env / "nested.jsonl").write_text(
            '{"response": "a", "meta": {"k": 1}}\n', encoding="utf-8"
        )
        write_prompt(isolated_env / "p.toml", system="Judge.", user="{meta}: {text}")
        result = bg("count", "nested.jsonl", "--prompt", "p.toml")
        assert_usage_error(result, "nested.jsonl", "meta")

    def test_format_override_reads_any_name(self, bg: Bg, isolated_env: Path) -> None:
        """``--format`` makes an unsupported extension readable."""
        write_table(isolated_env / "answers.txt", ROWS, "jsonl")
        report = count_json(bg, "answers.txt", "--format", "jsonl")
        assert report["files"][0]["requests"] == SENT

    def test_json_mode_error_envelope(self, bg: Bg, isolated_env: Path) -> None:
        """In --json mode an error is a JSON envelope on stdout, stderr stays empty."""
        write_table(isolated_env / "answers.csv", ROWS)
        result = bg("count", "answers.csv", "--column", "answer", "--json")
        assert result.exit_code == 2, result.output
        assert result.stderr == ""
        error = json.loads(result.stdout)["error"]
        assert error["code"] == "input"
        assert "no column 'answer'" in error["message"]


class TestTokenizerUnavailable:
    """No cached encoding and no network."""

    @pytest.fixture
    def no_tokenizer(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
        """tiktoken cannot load or download any encoding during the test."""
        empty = break_tokenizer(monkeypatch, tmp_path)
        yield empty
        tokens._encoding.cache_clear()

    def test_clear_message(self, bg: Bg, isolated_env: Path, no_tokenizer: Path) -> None:
        """The error mentions TIKTOKEN_CACHE_DIR and exits 2 without a traceback."""
        write_table(isolated_env / "answers.csv", ROWS)
        result = bg("count", "answers.csv")
        assert_usage_error(result, "'o200k_base' could not be loaded", "TIKTOKEN_CACHE_DIR")
