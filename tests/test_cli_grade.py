"""``grade`` end to end against the fake Batch API over real HTTP."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from typer.testing import Result

from tests.fakes.batch_api import FakeBatchAPI
from tests.fakes.judge import judge_score

Invoke = Callable[..., Result]
USER = "Please evaluate the following text: "


def _texts(n: int) -> list[str]:
    return [
        f"Answer number {i}: the sky is blue because of scattering, {i * 7}." for i in n_range(n)
    ]


def n_range(n: int) -> range:
    return range(n)


def _write(path: Path, texts: list[str | None]) -> Path:
    df = pl.DataFrame({"id": list(range(len(texts))), "response": texts})
    fmt = path.suffix
    if fmt == ".csv":
        df.write_csv(path)
    elif fmt == ".tsv":
        df.write_csv(path, separator="\t")
    elif fmt == ".jsonl":
        df.write_ndjson(path)
    elif fmt == ".json":
        df.write_json(path)
    else:
        df.write_parquet(path)
    return path


def _read(path: Path) -> pl.DataFrame:
    fmt = path.suffix
    if fmt == ".csv":
        return pl.read_csv(path)
    if fmt == ".tsv":
        return pl.read_csv(path, separator="\t")
    if fmt == ".jsonl":
        return pl.read_ndjson(path)
    if fmt == ".json":
        return pl.read_json(path)
    return pl.read_parquet(path)


@pytest.mark.parametrize("ext", [".csv", ".tsv", ".json", ".jsonl", ".parquet"])
def test_happy_path_exact_scores(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, ext: str
) -> None:
    """Every format: the graded file has the input rows in order with the judge's scores."""
    texts = _texts(12)
    src = _write(isolated_env / f"data{ext}", list(texts))
    result = bg("grade", src)
    assert result.exit_code == 0, result.output
    out = _read(isolated_env / "output" / f"data.graded{ext}")
    assert out["id"].to_list() == list(range(12))
    assert out["llm_score"].to_list() == [judge_score(USER + t) for t in texts]
    assert out["llm_error"].null_count() == 12
    assert fake_api.batches_created == 1


def test_multi_chunk_concurrency(bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path) -> None:
    """Small row limits make several chunks; never more than N batches in flight."""
    texts = _texts(30)
    src = _write(isolated_env / "d.csv", list(texts))
    (isolated_env / "batchgrader.toml").write_text(
        "[chunking]\nsplit_row_limit = 4\n[run]\nmax_simultaneous_batches = 3\n"
    )
    result = bg("grade", src)
    assert result.exit_code == 0, result.output
    out = pl.read_csv(isolated_env / "output" / "d.graded.csv")
    assert out["llm_score"].to_list() == [judge_score(USER + t) for t in texts]
    assert fake_api.batches_created == 8
    assert fake_api.max_in_flight <= 3


def test_rerun_reattaches_without_paying_twice(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """Running the same command twice creates no new batch."""
    src = _write(isolated_env / "d.csv", list(_texts(5)))
    assert bg("grade", src).exit_code == 0
    again = bg("grade", src, "--json")
    assert again.exit_code == 0, again.output
    assert fake_api.batches_created == 1
    summary = json.loads(again.stdout)["files"][0]
    assert summary["status"] == "done"
    assert summary["graded"] == 5


def test_temporary_files_removed_when_done(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, home: Path
) -> None:
    """A job that finished cleanly keeps only its row results, not its request files."""
    src = _write(isolated_env / "d.csv", list(_texts(4)))
    assert bg("grade", src).exit_code == 0
    (job,) = (home / "data" / "jobs").iterdir()
    assert not (job / "requests").exists()
    assert [p.suffix for p in (job / "results").iterdir()] == [".parquet"]
    assert not list(isolated_env.glob("*.jsonl"))


def test_finished_job_written_to_another_output(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """--output on a finished job writes a copy (from stored results, or from its graded
    file after jobs clean), paying nothing."""
    texts = _texts(4)
    src = _write(isolated_env / "d.csv", list(texts))
    assert bg("grade", src).exit_code == 0
    copy = isolated_env / "copy.csv"
    result = bg("grade", src, "--output", copy)
    assert result.exit_code == 0, result.output
    assert pl.read_csv(copy)["llm_score"].to_list() == [judge_score(USER + t) for t in texts]
    assert fake_api.batches_created == 1
    assert bg("jobs", "clean").exit_code == 0
    third = bg("grade", src, "--output", isolated_env / "third.csv")
    assert third.exit_code == 0, third.output
    assert pl.read_csv(isolated_env / "third.csv").equals(pl.read_csv(copy))
    assert fake_api.batches_created == 1
