"""``grade`` outcomes against the fake Batch API: failures, partial results, output naming."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from openai import OpenAI
from typer.testing import Result

from batchgrader.execution.output import resolve_target
from batchgrader.settings import Settings
from tests.conftest import FAKE_KEY
from tests.fakes.batch_api import FakeBatchAPI
from tests.fakes.judge import judge_score, schema_answer
from tests.helpers import write_table

Invoke = Callable[..., Result]
USER = "Please evaluate the following text: "
ESCAPE = re.compile(r"\x1b\[")


def _texts(n: int) -> list[str]:
    return [f"Essay {i}: rivers carve valleys over {i + 3} thousand years." for i in range(n)]


def _csv(folder: Path, texts: list[str], name: str = "d.csv") -> Path:
    frame = pl.DataFrame({"id": list(range(len(texts))), "response": texts})
    return write_table(folder / name, frame)


def _out(folder: Path, name: str = "d.graded.csv") -> pl.DataFrame:
    return pl.read_csv(folder / "output" / name, infer_schema_length=None)


def _scores(texts: list[str]) -> list[int]:
    return [judge_score(USER + t) for t in texts]


def _chunks(folder: Path, rows: int, simultaneous: int = 2) -> None:
    (folder / "batchgrader.toml").write_text(
        f"[chunking]\nsplit_row_limit = {rows}\n[run]\nmax_simultaneous_batches = {simultaneous}\n"
    )


def _summary(result: Result) -> dict[str, object]:
    # Exit 1 in --json mode appends an error envelope: read the first document.
    report, _ = json.JSONDecoder().raw_decode(result.stdout)
    files = report["files"]
    assert len(files) == 1
    summary: dict[str, object] = files[0]
    return summary


# --- per-row outcomes -------------------------------------------------------------------


def test_request_failures_marked_rest_scored(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """Per-request HTTP failures get ``CODE: message``; the other rows keep their scores."""
    texts = _texts(6)
    texts[1] = "This one breaks [[fail:context_length_exceeded]]"
    src = _csv(isolated_env, texts)
    fake_api.fail_requests["row-000004"] = (500, "server_error", "The server had an error.")
    result = bg("grade", src, "--json")
    assert result.exit_code == 1, result.output
    out = _out(isolated_env)
    errors = out["llm_error"].to_list()
    assert errors[1] == "context_length_exceeded: Simulated failure: context_length_exceeded"
    assert errors[4] == "server_error: The server had an error."
    scores = out["llm_score"].to_list()
    for i in (0, 2, 3, 5):
        assert errors[i] is None
        assert scores[i] == judge_score(USER + texts[i])
    assert scores[1] is None and scores[4] is None
    summary = _summary(result)
    # context_length_exceeded is permanent (resending cannot fix it): counted apart.
    assert (summary["graded"], summary["failed"], summary["invalid_answers"]) == (4, 1, 1)
    assert fake_api.batches_created == 1


def test_unparseable_answers_are_never_scores(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """A judge answer that is not a score leaves llm_score null and says unparseable."""
    texts = _texts(5)
    texts[0] = "Confusing text [[garbage]]"
    texts[3] = "Also confusing [[garbage]]"
    src = _csv(isolated_env, texts)
    result = bg("grade", src, "--json")
    assert result.exit_code == 1, result.output
    out = _out(isolated_env)
    for i in (0, 3):
        assert out["llm_score"][i] is None
        assert out["llm_error"][i].startswith("unparseable"), out["llm_error"][i]
        assert out["llm_response"][i] == "I cannot decide"
    assert out["llm_score"].to_list()[1:3] == _scores(texts[1:3])
    summary = _summary(result)
    assert summary["invalid_answers"] == 2
    assert summary["graded"] == 3


def test_unparseable_count_in_table(bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path) -> None:
    """The human summary table shows the invalid-answer count."""
    texts = _texts(3)
    texts[2] = "[[garbage]]"
    src = _csv(isolated_env, texts)
    result = bg("grade", src)
    assert result.exit_code == 1, result.output
    header = next(line for line in result.stdout.splitlines() if "invalid" in line)
    row = next(line for line in result.stdout.splitlines() if "d.csv" in line)
    cells = re.split(r"\s{2,}", row.strip())  # plain lines: stdout is not a terminal
    names = re.split(r"\s{2,}", header.strip())
    assert cells[names.index("invalid")] == "1", result.stdout


# --- chunk failures ---------------------------------------------------------------------


def test_validation_failure_halts_later_chunks(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """A chunk failing validation stops the job: later chunks are never submitted."""
    texts = _texts(10)
    src = _csv(isolated_env, texts)
    _chunks(isolated_env, rows=4, simultaneous=1)  # chunks of 4, 4, 2 rows
    fake_api.max_requests_per_batch = 3  # the first chunk fails with too_many_tasks
    result = bg("grade", src, "--json")
    assert result.exit_code == 1, result.output
    assert fake_api.batches_created == 1
    summary = _summary(result)
    assert summary["status"] == "failed"
    assert summary["chunks_failed"] == 1
    assert (summary["graded"], summary["failed"]) == (0, 10)
    out_path = isolated_env / "output" / "d.graded.csv"
    out = _out(isolated_env)
    assert out["id"].to_list() == list(range(10))
    assert out["llm_score"].null_count() == 10
    errors = out["llm_error"].to_list()
    assert all(e.startswith("batch failed validation: too_many_tasks") for e in errors[:4]), errors
    assert all(e.startswith("not_run") for e in errors[4:]), errors
    log = (out_path.parent / (out_path.name + ".errors.log")).read_text()
    assert "too_many_tasks" in log
    assert "chunk 2" in log and "not submitted" in log


def test_continue_on_failure_runs_every_chunk(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """--continue-on-failure submits every chunk even after one failed validation."""
    texts = _texts(10)
    src = _csv(isolated_env, texts)
    _chunks(isolated_env, rows=4, simultaneous=1)
    fake_api.max_requests_per_batch = 3  # chunks 1 and 2 fail, chunk 3 (2 rows) runs
    result = bg("grade", src, "--continue-on-failure", "--json")
    assert result.exit_code == 1, result.output
    assert fake_api.batches_created == 3
    summary = _summary(result)
    assert (summary["chunks_failed"], summary["graded"], summary["failed"]) == (2, 2, 8)
    out = _out(isolated_env)
    assert out["llm_score"].to_list()[8:] == _scores(texts[8:])
    assert out["llm_score"].null_count() == 8


def test_expired_batch_keeps_partial_results(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An expired batch (no automatic retry): rows that ran keep scores, the rest expire."""
    monkeypatch.setenv("BATCHGRADER_RUN__MAX_RETRIES_PER_ROW", "0")
    texts = _texts(8)
    src = _csv(isolated_env, texts)
    fake_api.expire_after = 3
    result = bg("grade", src, "--json")
    assert result.exit_code == 1, result.output
    out = _out(isolated_env)
    expected = _scores(texts)
    scored = [i for i, e in enumerate(out["llm_error"].to_list()) if e is None]
    assert len(scored) == 3
    assert all(out["llm_score"][i] == expected[i] for i in scored)
    expired = [e for e in out["llm_error"].to_list() if e is not None]
    assert len(expired) == 5
    assert all(e.startswith("batch_expired") for e in expired), expired
    summary = _summary(result)
    assert (summary["graded"], summary["failed"]) == (3, 5)
    assert fake_api.batches_created == 1


def test_expired_rows_are_resubmitted_once(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """By default the rows an expired batch did not run are resubmitted once, alone."""
    texts = _texts(8)
    src = _csv(isolated_env, texts)
    fake_api.next_batch(expire_after=3)
    result = bg("grade", src, "--json")
    assert result.exit_code == 0, result.output
    out = _out(isolated_env)
    assert out["llm_score"].to_list() == _scores(texts)
    assert out["llm_error"].null_count() == 8
    assert fake_api.batches_created == 2
    retry_batch = list(fake_api.batches.values())[-1]
    assert retry_batch["request_counts"]["total"] == 5


@pytest.mark.parametrize("error_lines", [False, True])
def test_cancelled_batch_marks_unrun_rows(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, error_lines: bool
) -> None:
    """A batch cancelled at the provider: rows that ran are kept, the others marked."""
    texts = _texts(6)
    src = _csv(isolated_env, texts)
    fake_api.requests_per_step = 2
    fake_api.cancelled_error_lines = error_lines  # unrun rows in the error file, or in neither
    submitted = bg("grade", src, "--detach", "--json")
    assert submitted.exit_code == 0, submitted.output
    (batch_id,) = fake_api.batches
    counts = fake_api.batches[batch_id]["request_counts"]
    while counts["completed"] < 2:  # two requests per step
        fake_api.advance(batch_id)
    ran = counts["completed"]
    assert fake_api.batches[batch_id]["status"] == "in_progress"
    client = OpenAI(api_key=FAKE_KEY, base_url=fake_api.base_url)
    assert client.batches.cancel(batch_id).status == "cancelling"
    result = bg("grade", src, "--json")
    assert result.exit_code == 1, result.output
    assert fake_api.batches[batch_id]["status"] == "cancelled"
    out = _out(isolated_env)
    errors = out["llm_error"].to_list()
    assert errors[:ran] == [None] * ran
    assert out["llm_score"].to_list()[:ran] == _scores(texts[:ran])
    assert all(e is not None and e.startswith("batch_cancelled") for e in errors[ran:]), errors
    assert fake_api.batches_created == 1


def test_all_requests_failed_reports_common_code(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """A completed batch without one success is a failed chunk naming the commonest error."""
    texts = [f"Text {i} [[fail:{'rate_weird' if i == 0 else 'invalid_prompt'}]]" for i in range(4)]
    src = _csv(isolated_env, texts)
    result = bg("grade", src, "--json")
    assert result.exit_code == 1, result.output
    summary = _summary(result)
    assert summary["status"] == "failed"
    assert summary["chunks_failed"] == 1
    errors = summary["errors"]
    assert isinstance(errors, list) and len(errors) == 1
    assert "invalid_prompt" in errors[0] and "3 of 4" in errors[0], errors
    out = _out(isolated_env)
    assert out["llm_error"].to_list()[1].startswith("invalid_prompt: ")


def test_malformed_and_idless_lines_mark_only_their_rows(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """Output lines that are broken or lack a custom_id mark their rows; the rest are kept."""
    texts = _texts(9)
    src = _csv(isolated_env, texts)
    fake_api.malformed_output_lines = 2
    fake_api.drop_custom_id_lines = 1
    result = bg("grade", src, "--json")
    assert result.exit_code == 1, result.output
    out = _out(isolated_env)
    expected = _scores(texts)
    errors = out["llm_error"].to_list()
    lost = [i for i, e in enumerate(errors) if e is not None]
    assert len(lost) == 3
    assert all(errors[i].startswith("not_run") for i in lost), errors
    kept = [i for i in range(9) if i not in lost]
    assert [out["llm_score"][i] for i in kept] == [expected[i] for i in kept]


def test_shuffled_output_joined_by_custom_id(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The provider's output order differs from the input; scores still land on their rows."""
    monkeypatch.setenv("BATCHGRADER_RUN__DELETE_REMOTE_FILES", "false")  # to read them here
    forced = [5, 1, 4, 2, 3, 1, 5, 2]
    texts = [f"Row {i} [[score:{s}]]" for i, s in enumerate(forced)]
    src = _csv(isolated_env, texts)
    result = bg("grade", src)
    assert result.exit_code == 0, result.output
    (batch,) = fake_api.batches.values()
    lines = fake_api.files[batch["output_file_id"]][1].decode().splitlines()
    order = [json.loads(line)["custom_id"] for line in lines]
    assert order != sorted(order)
    assert _out(isolated_env)["llm_score"].to_list() == forced


def test_empty_string_file_id_means_no_file(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """``error_file_id: ""`` is no file: nothing is fetched from ``/files//content``."""
    texts = _texts(3)
    src = _csv(isolated_env, texts)
    fake_api.empty_error_file_id_as_empty_string = True
    result = bg("grade", src)
    assert result.exit_code == 0, result.output
    assert _out(isolated_env)["llm_score"].to_list() == _scores(texts)
    assert fake_api.request_count("file_content") == 1
    assert not [c for c in fake_api.calls if "//" in c.path]


# --- request shapes ---------------------------------------------------------------------


def test_schema_fields_become_columns(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """--schema: every answer property besides score becomes an llm_<name> column."""
    schema = {
        "type": "object",
        "properties": {
            "score": {"type": "integer", "minimum": 1, "maximum": 5},
            "label": {"type": "string", "enum": ["good", "bad"]},
        },
    }
    schema_file = isolated_env / "schema.json"
    schema_file.write_text(json.dumps(schema))
    texts = _texts(6)
    src = _csv(isolated_env, texts)
    result = bg("grade", src, "--schema", schema_file)
    assert result.exit_code == 0, result.output
    out = _out(isolated_env)
    answers = [schema_answer(schema, USER + t) for t in texts]
    assert out["llm_score"].to_list() == [a["score"] for a in answers]
    assert out["llm_label"].to_list() == [a["label"] for a in answers]
    assert set(out["llm_label"].to_list()) <= {"good", "bad"}


def test_responses_endpoint(bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path) -> None:
    """--endpoint /v1/responses: batches target it and its answers are scored."""
    texts = _texts(5)
    src = _csv(isolated_env, texts)
    result = bg("grade", src, "--endpoint", "/v1/responses")
    assert result.exit_code == 0, result.output
    (batch,) = fake_api.batches.values()
    assert batch["endpoint"] == "/v1/responses"
    assert _out(isolated_env)["llm_score"].to_list() == _scores(texts)


# --- output files -----------------------------------------------------------------------


def test_existing_output_gets_timestamped_sibling(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """A new job never overwrites a graded file: it writes a sibling; --overwrite replaces."""
    texts = _texts(4)
    src = _csv(isolated_env, texts)
    assert bg("grade", src).exit_code == 0
    first = isolated_env / "output" / "d.graded.csv"
    first.write_text(first.read_text() + "# marker\n")
    before = first.read_bytes()
    for _ in range(2):
        again = bg("grade", src, "--force")
        assert again.exit_code == 0, again.output
    assert first.read_bytes() == before
    siblings = sorted((isolated_env / "output").glob("d.graded-*.csv"))
    assert len(siblings) == 2, siblings
    for sibling in siblings:
        assert re.fullmatch(r"d\.graded-\d{8}T\d{6}Z(-\d+)?\.csv", sibling.name), sibling.name
        assert pl.read_csv(sibling)["llm_score"].to_list() == _scores(texts)
    replaced = bg("grade", src, "--force", "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert "# marker" not in first.read_text()
    assert len(list((isolated_env / "output").glob("d.graded*.csv"))) == 3
    assert fake_api.batches_created == 4


def test_sibling_names_never_collide(isolated_env: Path) -> None:
    """Two graded files in the same second get distinct sibling names."""
    settings = Settings()
    src = isolated_env / "d.csv"
    made = []
    for _ in range(4):
        target = resolve_target(src, settings, explicit=None, fmt=None, overwrite=False).path
        assert target not in made
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("x\n")
        made.append(target)
    assert made[0].name == "d.graded.csv"
    assert len({p.name for p in made}) == 4


def test_explicit_output_exists_is_usage_error(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """--output naming an existing file without --overwrite: exit 2, nothing submitted."""
    src = _csv(isolated_env, _texts(3))
    target = isolated_env / "graded.csv"
    target.write_text("keep me\n")
    result = bg("grade", src, "--output", target)
    assert result.exit_code == 2, result.output
    assert "exists" in result.output
    assert target.read_text() == "keep me\n"
    assert fake_api.batches_created == 0
    assert fake_api.request_count("upload") == 0


def test_explicit_output_overwrite(bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path) -> None:
    """--output with --overwrite replaces the named file."""
    texts = _texts(3)
    src = _csv(isolated_env, texts)
    target = isolated_env / "graded.csv"
    target.write_text("old\n")
    result = bg("grade", src, "--output", target, "--overwrite")
    assert result.exit_code == 0, result.output
    assert pl.read_csv(target)["llm_score"].to_list() == _scores(texts)


# --- what the user sees -----------------------------------------------------------------


def test_non_tty_progress_is_plain_lines(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """Without a terminal: one plain line per chunk state change on stderr, no live table."""
    src = _csv(isolated_env, _texts(6))
    _chunks(isolated_env, rows=3)
    result = bg("grade", src)
    assert result.exit_code == 0, result.output
    assert not ESCAPE.search(result.stderr), repr(result.stderr)
    assert not ESCAPE.search(result.stdout), repr(result.stdout)
    lines = [line for line in result.stderr.splitlines() if " chunk " in line]
    for chunk in (1, 2):
        states = [
            line.split(" | ")[1] for line in lines if line.startswith(f"d.csv chunk {chunk}/2")
        ]
        assert states[0] == "validating", lines
        assert states[-1] == "completed", lines
        assert len(states) == len(set(states)), lines  # a line per change, not per poll
    assert "Batches" not in result.stderr


def test_json_summary_alone_on_stdout(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """--json prints one JSON document on stdout and nothing else."""
    texts = _texts(4)
    src = _csv(isolated_env, texts)
    result = bg("grade", src, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    (summary,) = report["files"]
    assert summary["status"] == "done"
    assert summary["graded"] == 4
    assert summary["output"].endswith("d.graded.csv")
    counts: dict[str, int] = {}
    for score in _scores(texts):
        counts[str(score)] = counts.get(str(score), 0) + 1
    assert summary["score_counts"] == counts
    assert "{" not in result.stderr


def test_json_stdout_is_one_document_when_rows_fail(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """--json with failed rows still prints exactly one JSON document on stdout."""
    src = _csv(isolated_env, ["fine text", "broken [[fail:bad_request]]"])
    result = bg("grade", src, "--json")
    assert result.exit_code == 1, result.output
    json.loads(result.stdout)
