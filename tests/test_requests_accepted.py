"""Every request line ``grade`` builds is one OpenAI accepts, for every priced model.

For each OpenAI model of the packaged pricing table, with the endpoint chosen for it and
with each endpoint forced, ``grade --dry-run`` writes the request files exactly as a
real run would upload them; the fake's validator (``tests/fakes/validation.py``, rules
in ``tests/fakes/models.py``, written from OpenAI's documentation independently of
batchgrader's catalogue) must pass each line. Forcing an endpoint the model is not
served on stops before anything is written (exit 2).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import Result

from batchgrader.money.pricing import PriceTable
from batchgrader.prompting.catalogue import lookup
from tests.fakes.validation import validate_request_line
from tests.helpers import read_request_lines, write_table

Bg = Callable[..., Result]
CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
ROWS = [{"response": "Paris is the capital of France."}, {"response": "It is Lyon."}]

#: (model, forced endpoint) pairs the model is not served on: refused up front.
NOT_SERVED: set[tuple[str, str]] = {
    *(
        (model, CHAT)
        for model in (
            "computer-use-preview",
            "gpt-5-pro",
            "gpt-5.2-pro",
            "gpt-5.4-pro",
            "gpt-5.5-pro",
            "o1-pro",
            "o3-pro",
        )
    ),
    ("o1-mini", RESPONSES),
}


def cases() -> list[Any]:
    """(model, endpoint or None for the default) for every priced OpenAI model."""
    return [
        pytest.param(model, endpoint, id=f"{model}-{endpoint or 'default'}")
        for model in PriceTable.load().models
        if lookup(model).provider == "openai"
        for endpoint in (None, CHAT, RESPONSES)
    ]


def dry_run(bg: Bg, folder: Path, model: str, endpoint: str | None) -> Result:
    """``grade --dry-run --json`` of a small file for ``model`` (``endpoint`` forced)."""
    path = write_table(folder / "answers.csv", ROWS)
    forced = ["--endpoint", endpoint] if endpoint else []
    return bg("grade", path, "--model", model, *forced, "--dry-run", "--json")


@pytest.mark.parametrize(("model", "endpoint"), cases())
def test_grade_requests_are_accepted(
    bg: Bg, isolated_env: Path, model: str, endpoint: str | None
) -> None:
    """No line of a dry run's request files is one OpenAI would refuse; an endpoint the
    model is not served on is refused before anything is written."""
    result = dry_run(bg, isolated_env, model, endpoint)
    if endpoint is not None and (model, endpoint) in NOT_SERVED:
        assert result.exit_code == 2, result.output
        assert "served only on" in json.loads(result.stdout)["error"]["message"]
        assert not (isolated_env / "output").exists()
        return
    assert result.exit_code == 0, result.output
    (plan,) = json.loads(result.stdout)["plans"]
    lines = [json.loads(line) for line in read_request_lines(Path(plan["folder"]))]
    assert len(lines) == len(ROWS)
    endpoint = lines[0]["url"]
    refusals = {
        line["custom_id"]: refusal
        for number, line in enumerate(lines, start=1)
        if (refusal := validate_request_line(line, endpoint, line_number=number)) is not None
    }
    assert refusals == {}
