"""``grade --labels COLUMN``: labels checked before anything is submitted, and the
judge's agreement with them in the run summary."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from sklearn.metrics import cohen_kappa_score
from typer.testing import Result

from tests.fakes.batch_api import FakeBatchAPI
from tests.helpers import write_table

Invoke = Callable[..., Result]
JUDGE = [3, 4, 2, 5, 1, 3, 3, 4, 5, 2]
HUMAN = [3, 5, 2, 4, 2, 3, 1, 4, 5, None]


def labelled(folder: Path, human: list[Any], name: str = "essays.csv") -> Path:
    texts = [f"Essay {i} on rivers. [[score:{s}]]" for i, s in enumerate(JUDGE)]
    frame = pl.DataFrame({"response": texts, "human": human}, strict=False)
    return write_table(folder / name, frame)


def kappa(label: list[int], judge: list[int], **kw: Any) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(cohen_kappa_score(label, judge, **kw))


def test_the_summary_shows_the_agreement(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """After the run, the summary has the agreement lines, with scikit-learn's kappas."""
    result = bg("grade", labelled(isolated_env, HUMAN), "--labels", "human")
    assert result.exit_code == 0, result.output
    pairs = [(j, h) for j, h in zip(JUDGE, HUMAN, strict=True) if h is not None]
    judge, label = [j for j, _ in pairs], [h for _, h in pairs]
    out = " ".join(result.stdout.split())
    assert "Agreement with human in essays.csv (9 rows): exact 55.6%" in out
    assert f"Cohen's kappa {kappa(label, judge):.3f}" in out
    weighted = kappa(label, judge, labels=[1, 2, 3, 4, 5], weights="quadratic")
    assert f"weighted kappa {weighted:.3f}" in out


def test_the_json_summary_carries_the_agreement(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """--json: the run summary has an ``agreement`` entry per file with the figures."""
    result = bg("grade", labelled(isolated_env, HUMAN), "--labels", "human", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["files"][0]["graded"] == len(JUDGE)
    (found,) = data["agreement"]
    assert found["problem"] is None and found["output"].endswith("essays.graded.csv")
    assert found["agreement"]["n"] == 9 and found["agreement"]["unlabelled"] == 1


def test_a_finished_job_run_again_shows_it_too(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """Re-running a finished job with --labels submits nothing and shows the agreement."""
    src = labelled(isolated_env, HUMAN)
    assert bg("grade", src).exit_code == 0
    again = bg("grade", src, "--labels", "human")
    assert again.exit_code == 0, again.output
    assert fake_api.batches_created == 1
    assert "Agreement with human" in again.stdout


@pytest.mark.parametrize("dry_run", [False, True])
def test_a_missing_labels_column_stops_before_anything_is_sent(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, dry_run: bool
) -> None:
    """No such column: exit 2 with one line, no request made, no file written."""
    args = ["--dry-run"] if dry_run else []
    result = bg("grade", labelled(isolated_env, HUMAN), "--labels", "humans", *args)
    assert result.exit_code == 2, result.output
    assert "no labels column 'humans'" in " ".join(result.stderr.split())
    assert fake_api.calls == []
    assert not (isolated_env / "output").exists()


@pytest.mark.parametrize(
    ("human", "says"),
    [([9, *HUMAN[1:]], "row 1 holds '9', outside the judge's scale 1-5"), (["x"], "not a number")],
)
def test_labels_off_the_prompt_scale_stop_before_anything_is_sent(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, human: list[Any], says: str
) -> None:
    """A label off the prompt's 1-5 scale: exit 2 naming the row, nothing submitted."""
    human = human + [None] * (len(JUDGE) - len(human))
    result = bg(
        "grade", labelled(isolated_env, [str(h) if h else "" for h in human]), "--labels", "human"
    )
    assert result.exit_code == 2, result.output
    assert says in " ".join(result.stderr.split())
    assert fake_api.calls == []


def test_a_schema_without_a_score_cannot_compare(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """--labels with an answer schema that has no score: exit 2, pointing at report."""
    schema = isolated_env / "schema.json"
    schema.write_text(json.dumps({"type": "object", "properties": {"tone": {"type": "string"}}}))
    result = bg("grade", labelled(isolated_env, HUMAN), "--schema", schema, "--labels", "human")
    assert result.exit_code == 2, result.output
    assert "has no score" in result.stderr and "--field" in result.stderr
    assert fake_api.calls == []
