"""``batchgrader grade --dry-run``: the exact request files, the plan, no key, no network."""

from __future__ import annotations

import json
import shlex
import shutil
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import Result

from batchgrader.prompting.options import RequestOptions
from batchgrader.prompting.prompts import load_prompt
from batchgrader.prompting.tokens import Counter
from batchgrader.providers.openai.requests import OpenAICodec
from tests.helpers import (
    FORMATS,
    chunk_files,
    is_blank,
    read_request_lines,
    read_rows,
    request_tokens,
    slow_messages,
    write_prompt,
    write_table,
)

Bg = Callable[..., Result]
REPO = Path(__file__).resolve().parents[1]
CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"

ROWS: list[dict[str, Any]] = [
    {"topic": "física", "question": "Why?", "response": 'He said "fine", then: left.'},
    {"topic": "maths", "question": "2+2?", "response": "four\nor 4\r\n\tindented"},
    {"topic": "null", "question": "Empty?", "response": None},
    {"topic": "東京", "question": "Where?", "response": "東京 🙂 {not a placeholder} \\ back"},
    {"topic": "", "question": "Blank?", "response": " \n "},
    {"topic": "ctrl", "question": "Odd bytes?", "response": "nul\x00 bell\x07 ls\u2028 end"},
]
SENT_ROWS = [0, 1, 3, 5]


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a network connection fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access during a dry run: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def ok(result: Result) -> Result:
    """Assert a zero exit, showing the output otherwise."""
    assert result.exit_code == 0, result.output
    return result


def dry_run_json(bg: Bg, *args: object) -> dict[str, Any]:
    """Run ``grade --dry-run --json``; stdout is the JSON report alone, stderr is empty."""
    result = ok(bg("grade", *args, "--dry-run", "--json"))
    assert result.stderr == "", result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def write_settings(folder: Path, text: str) -> None:
    """Write ./batchgrader.toml in the test's working folder."""
    (folder / "batchgrader.toml").write_text(text, encoding="utf-8")


def assert_batch_file_format(folder: Path, endpoint: str) -> list[dict[str, Any]]:
    """Every line of every chunk file is a valid Batch API input line; returns them parsed."""
    parsed: list[dict[str, Any]] = []
    for path in chunk_files(folder):
        data = path.read_bytes()
        assert not data.startswith(b"\xef\xbb\xbf"), f"{path} starts with a BOM"
        assert data.endswith(b"\n") and not data.endswith(b"\n\n")
        for number, line in enumerate(data.decode("utf-8").split("\n")[:-1], start=1):
            assert line.strip(), f"{path}:{number} is blank"
            obj = json.loads(line)
            assert set(obj) == {"custom_id", "method", "url", "body"}, f"{path}:{number}"
            assert obj["method"] == "POST"
            assert obj["url"] == endpoint
            assert isinstance(obj["custom_id"], str)
            parsed.append(obj)
    ids = [obj["custom_id"] for obj in parsed]
    assert len(ids) == len(set(ids)), "custom_ids are not unique"
    return parsed


def expected_lines(
    path: Path,
    *,
    endpoint: str = CHAT,
    prompt_args: tuple[str | None, Path | None] = (None, None),
    column: str = "response",
) -> list[dict[str, Any]]:
    """The request objects of a file built the slow way, row by row."""
    prompt = load_prompt(*prompt_args)
    options = RequestOptions(
        model="gpt-4.1-mini", endpoint=endpoint, max_tokens=512, temperature=None
    )
    builder = OpenAICodec(options, prompt)
    objects = []
    for index, row in enumerate(read_rows(path)):
        if is_blank(row[column]):
            continue
        (_, system), (_, user) = slow_messages(prompt, row, column)
        objects.append(
            {
                "custom_id": f"row-{index:06d}",
                "method": "POST",
                "url": endpoint,
                "body": builder.body(system, user),
            }
        )
    return objects


class TestRequestFiles:
    """The request JSONL is exactly what the Batch API accepts, row for row."""

    @pytest.mark.parametrize("fmt", FORMATS)
    @pytest.mark.parametrize("endpoint", [CHAT, RESPONSES])
    def test_lines_match_the_slow_way(
        self, bg: Bg, isolated_env: Path, fmt: str, endpoint: str
    ) -> None:
        """Every line is valid and equals the object built from the codec's body()."""
        path = write_table(isolated_env / f"answers.{fmt}", ROWS)
        report = dry_run_json(bg, path, "--endpoint", endpoint)
        (plan,) = report["plans"]
        folder = Path(plan["folder"])
        parsed = assert_batch_file_format(folder, endpoint)
        assert parsed == expected_lines(path, endpoint=endpoint)
        assert [obj["custom_id"] for obj in parsed] == [f"row-{i:06d}" for i in SENT_ROWS]
        assert (plan["rows"], plan["requests"], plan["skipped"]) == (6, 4, 2)

    def test_multi_column_prompt(self, bg: Bg, isolated_env: Path) -> None:
        """A prompt file with several columns, a per-row system and examples renders per row."""
        path = write_table(isolated_env / "answers.csv", ROWS)
        examples = isolated_env / "examples.txt"
        examples.write_text("Good: 'Paris'.\nBad: 'big city'.", encoding="utf-8")
        prompt_file = write_prompt(
            isolated_env / "grade.toml",
            system="Grade answers about {topic}.\n{dynamic_examples}",
            user='Q: {question}\nA: {text}\nAnswer {{"score": n}}.',
            reasoning=True,
        )
        report = dry_run_json(bg, path, "--prompt", prompt_file, "--examples", examples)
        parsed = read_request_lines(Path(report["plans"][0]["folder"]))
        want = expected_lines(path, prompt_args=(str(prompt_file), examples))
        assert [json.loads(line) for line in parsed] == want
        first = want[0]["body"]["messages"]
        assert first[0]["content"].startswith("Grade answers about física.\nGood: 'Paris'.")
        assert first[1]["content"].endswith('Answer {"score": n}.')

    def test_deterministic(self, bg: Bg, isolated_env: Path) -> None:
        """Two dry runs of the same input write byte-identical request files."""
        path = write_table(isolated_env / "answers.jsonl", ROWS)
        first = dry_run_json(bg, path, "--prompt", "generic")["plans"][0]["folder"]
        first_bytes = [p.read_bytes() for p in chunk_files(Path(first))]
        shutil.move(first, isolated_env / "first")
        second = dry_run_json(bg, path, "--prompt", "generic")["plans"][0]["folder"]
        assert [p.read_bytes() for p in chunk_files(Path(second))] == first_bytes

    def test_custom_ids_widen_for_big_files(self, bg: Bg, isolated_env: Path) -> None:
        """custom_ids are zero-padded to six digits and stay sortable by row."""
        rows = [{"response": f"answer {i}"} for i in range(12)]
        path = write_table(isolated_env / "answers.parquet", rows)
        folder = Path(dry_run_json(bg, path)["plans"][0]["folder"])
        ids = [json.loads(line)["custom_id"] for line in read_request_lines(folder)]
        assert ids == [f"row-{i:06d}" for i in range(12)] == sorted(ids)

    def test_temperature_from_settings(self, bg: Bg, isolated_env: Path) -> None:
        """A configured temperature is sent, except to reasoning models."""
        path = write_table(isolated_env / "answers.csv", ROWS)
        write_settings(isolated_env, "[request]\ntemperature = 0.2\n")
        folder = Path(dry_run_json(bg, path)["plans"][0]["folder"])
        bodies = [json.loads(line)["body"] for line in read_request_lines(folder)]
        assert {b["temperature"] for b in bodies} == {0.2}
        shutil.rmtree(folder)
        folder = Path(dry_run_json(bg, path, "--model", "o4-mini")["plans"][0]["folder"])
        bodies = [json.loads(line)["body"] for line in read_request_lines(folder)]
        assert all("temperature" not in b for b in bodies)
        # A reasoning model gets room for its reasoning (default effort low: 4,096).
        assert {b["max_completion_tokens"] for b in bodies} == {4096}
        assert {b["reasoning_effort"] for b in bodies} == {"low"}

    def test_schema_file(self, bg: Bg, isolated_env: Path) -> None:
        """``--schema FILE`` is the strict answer format of every request."""
        path = write_table(isolated_env / "answers.csv", ROWS)
        schema = {
            "type": "object",
            "properties": {"label": {"type": "string", "enum": ["good", "bad"]}},
        }
        (isolated_env / "schema.json").write_text(json.dumps(schema), encoding="utf-8")
        folder = Path(dry_run_json(bg, path, "--schema", "schema.json")["plans"][0]["folder"])
        body = json.loads(read_request_lines(folder)[0])["body"]
        assert body["response_format"]["json_schema"] == {
            "name": "grade",
            "schema": {**schema, "required": ["label"], "additionalProperties": False},
            "strict": True,
        }

    def test_no_api_key_needed(self, bg: Bg, isolated_env: Path) -> None:
        """A dry run works with no OPENAI_API_KEY anywhere (isolated_env removed it)."""
        path = write_table(isolated_env / "answers.csv", ROWS)
        result = ok(bg("grade", path, "--dry-run"))
        assert "nothing is submitted" in result.stderr
        assert "Request files in:\n  output/dry-run-answers-" in result.stdout

    def test_inputs_are_never_modified(self, bg: Bg, isolated_env: Path) -> None:
        """A dry run leaves every input byte for byte unchanged."""
        paths = [write_table(isolated_env / f"in.{fmt}", ROWS) for fmt in FORMATS]
        before = {p: p.read_bytes() for p in paths}
        dry_run_json(bg, *paths)
        assert {p: p.read_bytes() for p in paths} == before


class TestPlanOutput:
    """The plan: where the files went, chunk by chunk."""

    def test_folder_under_output_dir(self, bg: Bg, isolated_env: Path) -> None:
        """The request files go in a folder under paths.output_dir that the output names."""
        path = write_table(isolated_env / "answers.csv", ROWS)
        write_settings(isolated_env, '[paths]\noutput_dir = "results"\n')
        report = dry_run_json(bg, path)
        folder = Path(report["plans"][0]["folder"])
        assert folder.parent == Path("results")
        assert folder.name.startswith("dry-run-answers-")
        assert [p.name for p in folder.iterdir()] == ["chunk-0001.jsonl"]
        text = ok(bg("grade", path, "--dry-run"))
        assert "Request files in:\n  results/dry-run-answers-" in text.stdout
        assert "Estimated cost" in text.stdout

    def test_plan_json(self, bg: Bg, isolated_env: Path) -> None:
        """The JSON plan lists each chunk's rows, requests, tokens, bytes and file."""
        path = write_table(isolated_env / "answers.csv", ROWS)
        report = dry_run_json(bg, path)
        assert set(report) == {
            "model",
            "endpoint",
            "plans",
            "estimate",
            "expected_output_tokens",
            "input_tokens_label",
            "mode",
            "service_tier",
        }
        assert report["input_tokens_label"] == "exact"
        assert (report["mode"], report["service_tier"]) == ("auto", None)
        (plan,) = report["plans"]
        assert set(plan) == {
            "input",
            "rows",
            "requests",
            "skipped",
            "tokens",
            "folder",
            "chunks",
        }
        (chunk,) = plan["chunks"]
        file = Path(plan["folder"]) / chunk["file"]
        assert (chunk["chunk"], chunk["first_row"], chunk["last_row"]) == (1, 1, 6)  # from 1
        assert chunk["requests"] == 4
        assert chunk["bytes"] == file.stat().st_size
        assert chunk["tokens"] == plan["tokens"]
        prompt = load_prompt("generic", None)
        counter = Counter.for_model("gpt-4.1-mini")
        assert plan["tokens"] == sum(
            request_tokens(counter, slow_messages(prompt, row, "response"))
            for row in read_rows(path)
            if not is_blank(row["response"])
        )

    def test_inputs_with_the_same_stem_get_their_own_folders(
        self, bg: Bg, isolated_env: Path
    ) -> None:
        """a/x.csv, b/x.csv and x.jsonl in one run do not overwrite each other's files."""
        paths = [
            write_table(isolated_env / "a" / "x.csv", ROWS[:2]),
            write_table(isolated_env / "b" / "x.csv", ROWS[3:]),
            write_table(isolated_env / "x.jsonl", ROWS),
        ]
        plans = dry_run_json(bg, *paths)["plans"]
        folders = [Path(p["folder"]) for p in plans]
        assert len(set(folders)) == 3
        for plan, path in zip(plans, paths, strict=True):
            lines = read_request_lines(Path(plan["folder"]))
            assert [json.loads(line) for line in lines] == expected_lines(path)

    def test_fail_on_empty_writes_nothing(self, bg: Bg, isolated_env: Path) -> None:
        """With --fail-on-empty a blank row stops the dry run and no request file is left."""
        write_table(isolated_env / "answers.csv", ROWS)
        result = bg("grade", "answers.csv", "--dry-run", "--fail-on-empty")
        assert result.exit_code == 2, result.output
        assert "answers.csv: row 3 has an empty or null 'response'" in result.stderr
        assert not list((isolated_env / "output").rglob("*.jsonl"))


MANY_ROWS = [{"response": f"answer number {i}: " + "word " * (i % 9)} for i in range(40)]


class TestChunkFiles:
    """``write_plan`` through the CLI: small limits give several chunk files."""

    def one_big_plan(self, bg: Bg, path: Path) -> list[str]:
        """The request lines of the file planned in a single chunk."""
        report = dry_run_json(bg, path)
        (plan,) = report["plans"]
        assert len(plan["chunks"]) == 1
        lines = read_request_lines(Path(plan["folder"]))
        shutil.rmtree(plan["folder"])
        return lines

    def test_token_limit_splits_into_files(self, bg: Bg, isolated_env: Path) -> None:
        """A small split_token_limit writes several files whose lines equal one big plan."""
        path = write_table(isolated_env / "answers.csv", MANY_ROWS)
        whole = self.one_big_plan(bg, path)
        write_settings(isolated_env, "[chunking]\nsplit_token_limit = 500\n")
        (plan,) = dry_run_json(bg, path)["plans"]
        folder = Path(plan["folder"])
        files = chunk_files(folder)
        assert len(files) == len(plan["chunks"]) >= 3
        assert read_request_lines(folder) == whole
        previous_last = 0  # rows are numbered from 1
        for chunk, file in zip(plan["chunks"], files, strict=True):
            assert file.name == chunk["file"]
            assert chunk["first_row"] == previous_last + 1
            previous_last = chunk["last_row"]
            lines = file.read_bytes().decode("utf-8").split("\n")[:-1]
            assert len(lines) == chunk["requests"]
            assert chunk["tokens"] <= 500
            assert chunk["bytes"] == file.stat().st_size
            ids = [json.loads(line)["custom_id"] for line in lines]
            assert ids == [f"row-{r:06d}" for r in range(chunk["first_row"] - 1, chunk["last_row"])]
        assert previous_last == len(MANY_ROWS)
        assert sum(c["tokens"] for c in plan["chunks"]) == plan["tokens"]

    @pytest.mark.parametrize(
        ("settings", "sizes"),
        [
            ("[chunking]\nsplit_row_limit = 15\n", [15, 15, 10]),
            ("[chunking]\nforce_chunk_count = 4\n", [10, 10, 10, 10]),
        ],
    )
    def test_row_limit_and_forced_count(
        self, bg: Bg, isolated_env: Path, settings: str, sizes: list[int]
    ) -> None:
        """split_row_limit and force_chunk_count shape the files; the lines never change."""
        path = write_table(isolated_env / "answers.jsonl", MANY_ROWS)
        whole = self.one_big_plan(bg, path)
        write_settings(isolated_env, settings)
        (plan,) = dry_run_json(bg, path)["plans"]
        assert [c["requests"] for c in plan["chunks"]] == sizes
        assert read_request_lines(Path(plan["folder"])) == whole

    def test_row_over_enqueued_limit_is_an_error(self, bg: Bg, isolated_env: Path) -> None:
        """A row bigger than the model's enqueued-token limit fails the plan, leaving nothing."""
        path = write_table(isolated_env / "answers.csv", MANY_ROWS)
        write_settings(isolated_env, '[run.max_enqueued_tokens]\n"gpt-4.1-mini" = 60\n')
        result = bg("grade", path, "--dry-run")
        assert result.exit_code == 2, result.output
        assert "over the model's enqueued-token limit of 60" in " ".join(result.stderr.split())
        assert not list((isolated_env / "output").rglob("*.jsonl"))


class TestShippedExample:
    """The example in the README runs as written."""

    def test_readme_command(self, bg: Bg, isolated_env: Path) -> None:
        """The README's ``grade examples/answers.csv ... --dry-run`` command succeeds."""
        readme = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
        (command,) = [line for line in readme if "batchgrader grade examples/" in line]
        args = shlex.split(command)
        assert args == [
            *("uv", "run", "batchgrader", "grade", "examples/answers.csv"),
            *("--column", "answer", "--prompt", "examples/grade_answers.toml", "--dry-run"),
        ]
        shutil.copytree(REPO / "examples", isolated_env / "examples")
        before = (isolated_env / "examples" / "answers.csv").read_bytes()
        result = bg(*args[3:])
        assert result.exit_code == 0, result.output
        assert "examples/answers.csv: 40 rows, 40 requests, 0 skipped" in result.stdout
        (folder,) = (isolated_env / "output").iterdir()
        parsed = assert_batch_file_format(folder, CHAT)
        assert len(parsed) == 40
        user = parsed[0]["body"]["messages"][1]["content"]
        assert user.startswith("Question: What causes the seasons on Earth?")
        assert "Reference answer: The tilt of Earth's rotation axis" in user
        schema = parsed[0]["body"]["response_format"]["json_schema"]["schema"]
        assert schema["required"] == ["reasoning", "score"]
        assert (isolated_env / "examples" / "answers.csv").read_bytes() == before

    def test_example_data_is_varied(self) -> None:
        """The example has ~40 answers to 5-6 questions, some with commas, quotes, newlines."""
        rows = read_rows(REPO / "examples" / "answers.csv")
        assert 35 <= len(rows) <= 45
        assert list(rows[0]) == ["id", "question", "reference", "answer"]
        assert 5 <= len({r["question"] for r in rows}) <= 6
        answers = [r["answer"] for r in rows]
        assert any("\n" in a for a in answers)
        assert any('"' in a for a in answers)
        assert any("," in a for a in answers)
