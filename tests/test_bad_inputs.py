"""Broken inputs, settings and prompt files: one clear error, exit 2, nothing written or sent.

The corpus lives in ``tests/data/bad/`` (regenerate it with its ``make_corpus.py``).
Each failing case runs through ``count``, ``split --dry-run``, ``split``,
``grade --dry-run`` and ``grade`` (against the fake Batch API) and must give exactly one
``Error:`` line naming the file, row or key, exit code 2, no traceback, no file
written (no output, no parts, no job folder) and no request to the API. Inputs that
must be big, unreadable or missing are made at test time in tmp.

Decisions this file pins down:

- A UTF-8 BOM (CSV, JSON, JSONL), CRLF and mixed line ends are valid input and are
  read exactly (``good/``). So is a quote inside an unquoted CSV field (read
  literally, as Python's csv module and Excel do) and a NUL character inside a CSV
  cell (it is text; the request JSON escapes it). A raw NUL byte in JSONL is invalid
  JSON and is rejected.
- Null, empty or whitespace-only texts are skipped, never sent: a file of nothing but
  those counts 0 requests and grades to a copy with ``llm_error = "skipped: empty
  text"`` on every row, without a request. With ``--fail-on-empty`` it is an error
  naming row 1.
- A row over the model's context window (less ``max_tokens_per_response``) is counted
  (``count`` reports it under "over context") and split, but ``grade`` and
  ``grade --dry-run`` refuse the file naming the row: the provider would refuse it.
- A folder contributes its supported files only; other files in it are ignored.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
from typer.testing import Result

from batchgrader.prompting import catalogue
from tests.fakes.batch_api import FakeBatchAPI
from tests.fakes.judge import judge_score

Invoke = Callable[..., Result]
CORPUS = Path(__file__).parent / "data" / "bad"
USER = "Please evaluate the following text: "

#: The commands each failing case goes through (grade against the fake server).
COMMANDS: dict[str, tuple[str, ...]] = {
    "count": ("count",),
    "split-dry-run": ("split", "--dry-run"),
    "split": ("split",),
    "grade-dry-run": ("grade", "--dry-run"),
    "grade": ("grade",),
}
ALL = tuple(COMMANDS)
NOT_SPLIT = ("count", "grade-dry-run", "grade")  # split has no --fail-on-empty
GRADE = ("grade-dry-run", "grade")


@dataclass(frozen=True)
class Bad:
    """One broken input and the error it must produce."""

    file: str  # under tests/data/bad/inputs/, or a name made by ``make_at_test_time``
    expect: str  # a fragment of the one error message
    args: tuple[str, ...] = ()
    commands: tuple[str, ...] = ALL


INPUTS = [
    Bad("empty.csv", "the file is empty"),
    Bad("blank_lines_only.csv", "the file is empty"),
    Bad("header_only.csv", "the file has a header but no rows"),
    Bad("header_only_crlf.tsv", "the file has a header but no rows"),
    Bad("missing_column.csv", "no column 'response' (the graded column, --column)"),
    Bad("duplicate_columns.csv", "the column name 'response' appears twice in the header"),
    Bad("duplicate_columns.tsv", "the column name 'id' appears twice in the header"),
    Bad("not_a_table.txt", "unsupported file type '.txt'"),
    Bad("latin1.csv", "line 3 is not valid UTF-8 (byte 0xe9)"),
    Bad("latin1.jsonl", "line 2 is not valid UTF-8 (byte 0xe9)"),
    Bad("utf16.csv", "line 1 is not valid UTF-8 (byte 0xff)"),
    Bad("utf16le_no_bom.csv", "row 2 (ending on line 3) has 1 field, the header has 2"),
    Bad("zero_filled_tail.csv", "row 3 (ending on line 4) has 1 field, the header has 2"),
    Bad("unbalanced_quote.csv", "row 1, starting on line 2: a quoted field is never closed"),
    Bad("unclosed_quote_in_header.csv", "in the header: a quoted field is never closed"),
    Bad("text_after_closing_quote.csv", "row 1, starting on line 2: ',' expected after '\"'"),
    Bad("ragged_long_row.csv", "row 2 (ending on line 3) has 3 fields, the header has 2"),
    Bad("ragged_short_row.tsv", "row 2 (ending on line 3) has 2 fields, the header has 3"),
    Bad("embedded_nul.jsonl", "line 2 is not valid JSON"),
    Bad("object_not_array.json", "a .json input must be an array of objects"),
    Bad("array_of_strings.json", "a .json input must be an array of objects"),
    Bad("array_mixed.json", "a .json input must be an array of objects"),
    Bad("json_lines_in_json.json", "a .json input must be an array of objects"),
    Bad("truncated.json", "invalid JSON at line 2, column 1"),
    Bad("empty_array.json", "the file has no rows"),
    Bad("jsonl_broken_middle.jsonl", "line 2 is not valid JSON"),
    Bad("jsonl_scalar_line.jsonl", "line 2 is not a JSON object"),
    Bad("jsonl_array_line.jsonl", "line 2 is not a JSON object"),
    Bad("nested_text.jsonl", "the column 'response' used in the prompt holds nested values"),
    Bad("number_text.jsonl", "the graded column 'response' holds Int64, not text"),
    Bad("bool_text.json", "the graded column 'response' holds Boolean, not text"),
    Bad("int_text.parquet", "the graded column 'response' holds Int64, not text"),
    Bad("list_text.parquet", "the column 'response' used in the prompt holds nested values"),
    Bad("no_rows.parquet", "the file has no rows"),
    Bad("parquet_garbage.parquet", "cannot be read as PARQUET"),
    Bad(
        "nulls_only.jsonl",
        "row 1 has an empty or null 'response'",
        ("--fail-on-empty",),
        NOT_SPLIT,
    ),
    Bad(
        "whitespace_only.csv",
        "row 1 has an empty or null 'response'",
        ("--fail-on-empty",),
        NOT_SPLIT,
    ),
    Bad("good.csv", "no column 'nope' (the graded column, --column)", ("--column", "nope")),
    # made at test time (see make_at_test_time)
    Bad("missing.csv", "no such file or folder"),
    Bad("pipe.csv", "not a regular file"),
    Bad("folder.csv", "the folder holds no supported file"),
    Bad("unreadable.csv", "permission denied"),
    Bad("over_context.csv", "Row 1 needs", ("--model", "gpt-4"), GRADE),
]

CONFIGS = {
    "bad_toml.toml": "is not valid TOML: Expected ']' at the end of a table declaration",
    "unknown_key.toml": "Unknown setting 'request.modle'",
    "unknown_section.toml": "Unknown setting 'requests'",
    "wrong_type.toml": "Invalid setting 'chunking.split_row_limit'",
    "negative_value.toml": "Invalid setting 'chunking.split_token_limit'",
    "bad_endpoint.toml": "Invalid setting 'request.endpoint'",
    "section_is_scalar.toml": "Invalid setting 'request'",
    "latin1.toml": "is not UTF-8 text (byte 0xe9",
    "unknown_model.toml": "No price for model 'gpt-unknown-9000'",
}
#: Commands a config case fails; the price is needed by count and grade only.
CONFIG_COMMANDS = {**dict.fromkeys(CONFIGS, (*ALL, "config-show")), "unknown_model.toml": GRADE}

PROMPTS = {
    "unknown_placeholder.toml": "uses {topic}, which is not a column of good.csv",
    "bad_toml.toml": "is not valid TOML",
    "system_not_string.toml": "'system' must be a string",
    "unknown_key.toml": "unknown key 'temperature'",
    "bad_scale.toml": "scale min must be below max",
    "scale_not_int.toml": "'scale' must be { min = INT, max = INT }",
    "format_spec.toml": "placeholder {text:>20} is not a plain column name",
    "unbalanced_brace.toml": "(system): unmatched '{'",
    "reasoning_not_bool.toml": "'reasoning' must be true or false",
    "bad_schema.toml": "the answer schema must be a JSON schema of type 'object'",
    "examples_without_file.toml": "uses {dynamic_examples} but no examples file was given",
    "missing_prompt.toml": "is neither a preset nor an existing file",
}

GOOD_CSV = "id,response,answer\n1,a fine answer,x\n2,another one,y\n"


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wide console, so that one message is one line."""
    monkeypatch.setenv("COLUMNS", "1000")


def make_at_test_time(work: Path, name: str) -> Path:
    """The cases that cannot be committed: missing, a pipe, a folder, unreadable, long."""
    path = work / name
    if name == "missing.csv":
        return path
    if name == "pipe.csv":
        os.mkfifo(path)
    elif name == "folder.csv":
        path.mkdir()
    elif name == "unreadable.csv":
        path.write_text(GOOD_CSV, encoding="utf-8")
        path.chmod(0)
    elif name == "over_context.csv":  # about 9,000 tokens: over gpt-4's 8,192
        path.write_text("id,response\n1," + "word " * 9_000 + "\n2,short\n", encoding="utf-8")
    elif name == "good.csv":
        path.write_text(GOOD_CSV, encoding="utf-8")
    else:
        shutil.copyfile(CORPUS / "inputs" / name, path)
    return path


def snapshot(root: Path) -> dict[str, bytes]:
    """Every regular file under ``root`` and its bytes (pipes and unreadables by name)."""
    files: dict[str, bytes] = {}
    for path in sorted(root.rglob("*")):
        mode = path.lstat().st_mode
        if stat.S_ISREG(mode):
            try:
                files[str(path.relative_to(root))] = path.read_bytes()
            except PermissionError:
                files[str(path.relative_to(root))] = b"(unreadable)"
        elif not stat.S_ISDIR(mode):
            files[str(path.relative_to(root))] = b"(special)"
    return files


def assert_rejected(
    result: Result, expect: str, names: str, work: Path, before: dict[str, bytes], home: Path
) -> None:
    """Exit 2 with one ``Error:`` line naming ``names`` and saying ``expect``; nothing new."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert names in errors[0], errors[0]
    assert expect in errors[0], errors[0]
    assert snapshot(work) == before, "a file was written (or an input changed)"
    jobs = home / "data" / "jobs"
    assert not jobs.exists() or not any(jobs.iterdir()), list(jobs.iterdir())


def run(bg: Invoke, command: str, *args: str, config: Path | None = None) -> Result:
    """Run one of ``COMMANDS`` (or ``config-show``) with the given arguments."""
    head = ("--config", str(config)) if config is not None else ()
    if command == "config-show":
        return bg(*head, "config", "show")
    return bg(*head, *COMMANDS[command], *args)


CASES = [
    pytest.param(case, command, id=f"{case.file}-{command}")
    for case in INPUTS
    for command in case.commands
]


@pytest.mark.parametrize(("case", "command"), CASES)
def test_bad_input_is_rejected_cleanly(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, home: Path, case: Bad, command: str
) -> None:
    """A broken input gives one error naming it, exit 2, no file written, no request."""
    if case.file == "unreadable.csv" and os.geteuid() == 0:
        pytest.skip("running as root: chmod 000 does not stop root from reading")
    path = make_at_test_time(isolated_env, case.file)
    before = snapshot(isolated_env)
    result = run(bg, command, path.name, *case.args)
    assert_rejected(result, case.expect, path.name, isolated_env, before, home)
    assert fake_api.calls == []


@pytest.mark.parametrize(
    "case", [pytest.param(c, id=c.file) for c in INPUTS if "count" in c.commands]
)
def test_bad_input_json_envelope(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, case: Bad
) -> None:
    """In --json mode the same error is one JSON envelope on stdout, code and message."""
    if case.file == "unreadable.csv" and os.geteuid() == 0:
        pytest.skip("running as root: chmod 000 does not stop root from reading")
    path = make_at_test_time(isolated_env, case.file)
    result = bg("count", path.name, *case.args, "--json")
    assert result.exit_code == 2, result.output
    error = json.loads(result.stdout)["error"]
    assert error["code"] in ("input", "usage", "prompt"), error
    assert path.name in error["message"] and case.expect in error["message"], error
    assert "Traceback" not in result.stderr
    assert fake_api.calls == []


@pytest.mark.parametrize(
    ("name", "command"),
    [
        pytest.param(name, command, id=f"{name}-{command}")
        for name in CONFIGS
        for command in CONFIG_COMMANDS[name]
    ],
)
def test_bad_settings_file_is_rejected_cleanly(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, home: Path, name: str, command: str
) -> None:
    """A broken ./batchgrader.toml names the file and the key; nothing runs."""
    (isolated_env / "good.csv").write_text(GOOD_CSV, encoding="utf-8")
    shutil.copyfile(CORPUS / "config" / name, isolated_env / "batchgrader.toml")
    before = snapshot(isolated_env)
    result = run(bg, command, "good.csv")
    names = "batchgrader.toml" if name != "unknown_model.toml" else "gpt-unknown-9000"
    assert_rejected(result, CONFIGS[name], names, isolated_env, before, home)
    assert fake_api.calls == []


@pytest.mark.parametrize("name", [n for n in CONFIGS if n != "unknown_model.toml"])
def test_bad_config_flag_file_is_named(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, home: Path, name: str
) -> None:
    """A broken file given with --config is named in the error too."""
    config = isolated_env / f"settings-{name}"
    shutil.copyfile(CORPUS / "config" / name, config)
    (isolated_env / "good.csv").write_text(GOOD_CSV, encoding="utf-8")
    before = snapshot(isolated_env)
    result = run(bg, "grade", "good.csv", config=config)
    assert_rejected(result, CONFIGS[name], config.name, isolated_env, before, home)
    assert fake_api.calls == []


@pytest.mark.parametrize(
    ("name", "command"),
    [pytest.param(n, c, id=f"{n}-{c}") for n in PROMPTS for c in ALL],
)
def test_bad_prompt_file_is_rejected_cleanly(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, home: Path, name: str, command: str
) -> None:
    """A broken prompt file names itself (or the placeholder's column); nothing runs."""
    (isolated_env / "good.csv").write_text(GOOD_CSV, encoding="utf-8")
    prompt = isolated_env / name
    if name != "missing_prompt.toml":
        shutil.copyfile(CORPUS / "prompts" / name, prompt)
    before = snapshot(isolated_env)
    result = run(bg, command, "good.csv", "--prompt", prompt.name)
    names = "unknown_placeholder" if name == "unknown_placeholder.toml" else prompt.stem
    assert_rejected(result, PROMPTS[name], names, isolated_env, before, home)
    assert fake_api.calls == []


def test_bad_environment_variable_is_named(
    bg: Invoke,
    fake_api: FakeBatchAPI,
    isolated_env: Path,
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An invalid BATCHGRADER_* variable is named, like a file's key."""
    (isolated_env / "good.csv").write_text(GOOD_CSV, encoding="utf-8")
    monkeypatch.setenv("BATCHGRADER_CHUNKING__SPLIT_ROW_LIMIT", "many")
    before = snapshot(isolated_env)
    result = bg("grade", "good.csv")
    expect = "Invalid setting 'chunking.split_row_limit'"
    assert_rejected(
        result, expect, "BATCHGRADER_CHUNKING__SPLIT_ROW_LIMIT", isolated_env, before, home
    )
    assert fake_api.calls == []


# --- valid inputs that look odd: read exactly, graded ----------------------------------


def graded(path: Path) -> list[dict[str, object]]:
    """The rows of a graded output file (CSV/TSV as text)."""
    if path.suffix in (".csv", ".tsv"):
        sep = "\t" if path.suffix == ".tsv" else ","
        return pl.read_csv(path, separator=sep, infer_schema=False).to_dicts()
    if path.suffix == ".jsonl":
        return pl.read_ndjson(path).to_dicts()
    return pl.read_json(path).to_dicts()


GOOD = {
    "bom.csv": ["café", "plain"],
    "bom.json": ["a", "b"],
    "bom.jsonl": ["a", "b"],
    "crlf.csv": ["two\r\nlines", "b"],
    "mixed_line_ends.tsv": ["a", "b", "c"],
    "quote_in_unquoted_field.csv": ['he said "hi" twice', "b"],
    "embedded_nul.csv": ["fine", "nul\x00inside"],
}


@pytest.mark.parametrize("name", GOOD)
def test_odd_but_valid_input_is_read_exactly(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, name: str
) -> None:
    """BOMs, CRLF, mixed line ends, a literal quote and a NUL character are valid input."""
    src = isolated_env / name
    shutil.copyfile(CORPUS / "good" / name, src)
    texts = GOOD[name]
    counted = bg("count", name, "--json")
    assert counted.exit_code == 0, counted.output
    assert json.loads(counted.stdout)["files"][0]["requests"] == len(texts)
    result = bg("grade", name)
    assert result.exit_code == 0, result.output
    out = graded(isolated_env / "output" / f"{src.stem}.graded{src.suffix}")
    assert [row["response"] for row in out] == texts
    assert "\ufeffid" not in out[0] and "\ufeffresponse" not in out[0]
    assert [int(str(row["llm_score"])) for row in out] == [judge_score(USER + t) for t in texts]
    assert src.read_bytes() == (CORPUS / "good" / name).read_bytes()


def test_folder_reads_supported_files_only(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """A folder of mixed files: the .csv and .jsonl are graded, the others ignored."""
    folder = isolated_env / "mixed"
    shutil.copytree(CORPUS / "good" / "mixed", folder)
    counted = bg("count", "mixed", "--json")
    assert counted.exit_code == 0, counted.output
    assert [Path(f["path"]).name for f in json.loads(counted.stdout)["files"]] == [
        "a.csv",
        "b.jsonl",
    ]
    result = bg("grade", "mixed")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (isolated_env / "output").iterdir()) == [
        "a.graded.csv",
        "b.graded.jsonl",
    ]
    assert fake_api.batches_created == 2


@pytest.mark.parametrize("name", ["nulls_only.jsonl", "whitespace_only.csv"])
def test_nothing_to_grade_is_skipped_without_a_request(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, name: str
) -> None:
    """Only null or blank texts: 0 requests counted, every row skipped, no API call."""
    src = isolated_env / name
    shutil.copyfile(CORPUS / "inputs" / name, src)
    counted = json.loads(bg("count", name, "--json").stdout)["files"][0]
    assert (counted["requests"], counted["skipped"]) == (0, counted["rows"])
    result = bg("grade", name)
    assert result.exit_code == 0, result.output
    out = graded(isolated_env / "output" / f"{src.stem}.graded{src.suffix}")
    assert [row["llm_error"] for row in out] == ["skipped: empty text"] * counted["rows"]
    assert fake_api.calls == []


def test_row_over_context_is_counted_and_split(bg: Invoke, isolated_env: Path) -> None:
    """count reports a row over the context window (exit 0); split cuts the file."""
    make_at_test_time(isolated_env, "over_context.csv")
    counted = bg("count", "over_context.csv", "--model", "gpt-4", "--json")
    assert counted.exit_code == 0, counted.output
    report = json.loads(counted.stdout)["files"][0]
    assert (report["over_context"], report["max_row"]) == (1, 1)
    split = bg("split", "over_context.csv", "--model", "gpt-4", "--rows", "1", "--json")
    assert split.exit_code == 0, split.output
    assert len(json.loads(split.stdout)["files"][0]["parts"]) == 2


def test_ten_megabyte_cell(bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path) -> None:
    """A 10 MB cell (over Python's csv field limit, ~2.2M tokens: over every catalogue
    model's context window) is a valid row: counted, reported over context; grade refuses it."""
    words = ("the quick brown fox jumps over a lazy dog near blue water " * 1000).encode()
    path = isolated_env / "huge.csv"
    with path.open("wb") as handle:
        handle.write(b'id,response\n1,"')
        for _ in range(10 * 1024 * 1024 // len(words)):
            handle.write(words)
        handle.write(b'"\n2,short\n')
    counted = bg("count", "huge.csv", "--json")
    assert counted.exit_code == 0, counted.output
    report = json.loads(counted.stdout)["files"][0]
    assert (report["rows"], report["over_context"], report["max_row"]) == (2, 1, 1)
    windows = [catalogue.lookup(m).context_window or 0 for m in catalogue.models()]
    assert report["max_tokens"] > max(windows)
    before = snapshot(isolated_env)
    result = bg("grade", "huge.csv")
    assert result.exit_code == 2, result.output
    assert "huge.csv: Row 1 needs" in result.stderr and "context window" in result.stderr
    assert snapshot(isolated_env) == before
    assert fake_api.calls == []


def test_corpus_matches_its_generator(tmp_path: Path) -> None:
    """The committed corpus is what make_corpus.py writes (Parquet compared by content)."""
    spec = importlib.util.spec_from_file_location("make_corpus", CORPUS / "make_corpus.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for built in module.build(tmp_path):
        committed = CORPUS / built.relative_to(tmp_path)
        if built.suffix == ".parquet" and built.name != "parquet_garbage.parquet":
            assert pl.read_parquet(committed).equals(pl.read_parquet(built)), committed
        else:
            assert committed.read_bytes() == built.read_bytes(), committed
    failing_inputs = {c.file for c in INPUTS} & {p.name for p in (CORPUS / "inputs").iterdir()}
    assert len(failing_inputs) + len(CONFIGS) + len(PROMPTS) >= 25
