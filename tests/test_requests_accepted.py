"""Every request line ``grade`` builds is one OpenAI accepts, for every priced model.

For each model of the packaged pricing table and both endpoints, ``grade --dry-run``
writes the request files exactly as a real run would upload them; the fake's validator
(``tests/fakes/validation.py``, rules in ``tests/fakes/models.py``) must pass each line.
Cases OpenAI refuses today are strict xfails naming issue 12: each mark must go when
the fix lands (a strict xfail that passes fails the suite).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from batchgrader.pricing import PriceTable
from typer.testing import Result

from tests.fakes.validation import validate_request_line
from tests.helpers import read_request_lines, write_table

Bg = Callable[..., Result]
CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
ROWS = [{"response": "Paris is the capital of France."}, {"response": "It is Lyon."}]

RESPONSES_ONLY = "responses-only model sent to /v1/chat/completions (404)"
NO_STRUCTURED_OUTPUTS = "json_schema sent to a model without structured outputs (400)"
# (model, endpoint) → why OpenAI refuses the lines batchgrader builds today.
REFUSED_TODAY: dict[tuple[str, str], str] = {
    **{
        (model, CHAT): RESPONSES_ONLY
        for model in (
            "computer-use-preview",
            "gpt-5-pro",
            "gpt-5.2-pro",
            "gpt-5.4-pro",
            "gpt-5.5-pro",
            "o1-pro",
            "o3-pro",
        )
    },
    **{
        (model, endpoint): NO_STRUCTURED_OUTPUTS
        for model in ("gpt-3.5-turbo", "gpt-4", "gpt-4-turbo")
        for endpoint in (CHAT, RESPONSES)
    },
    ("computer-use-preview", RESPONSES): NO_STRUCTURED_OUTPUTS,
    ("o1-mini", CHAT): "system message sent to o1-mini (400); it has no structured outputs either",
    ("o1-mini", RESPONSES): "o1-mini is not served by /v1/responses (404)",
}


def cases() -> list[Any]:
    """(model, endpoint) for every priced model, refused ones marked strict xfail."""
    params = []
    for model in PriceTable.load().models:
        for endpoint in (CHAT, RESPONSES):
            reason = REFUSED_TODAY.get((model, endpoint))
            marks = [pytest.mark.xfail(strict=True, reason=f"issue 12: {reason}")] if reason else []
            params.append(pytest.param(model, endpoint, marks=marks, id=f"{model}-{endpoint}"))
    return params


def dry_run_lines(bg: Bg, folder: Path, model: str, endpoint: str) -> list[dict[str, Any]]:
    """The request lines ``grade --dry-run`` writes for ``model`` and ``endpoint``."""
    path = write_table(folder / "answers.csv", ROWS)
    result = bg("grade", path, "--model", model, "--endpoint", endpoint, "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    (plan,) = json.loads(result.stdout)["plans"]
    return [json.loads(line) for line in read_request_lines(Path(plan["folder"]))]


@pytest.mark.parametrize(("model", "endpoint"), cases())
def test_grade_requests_are_accepted(bg: Bg, isolated_env: Path, model: str, endpoint: str) -> None:
    """No line of a dry run's request files is one OpenAI would refuse."""
    lines = dry_run_lines(bg, isolated_env, model, endpoint)
    assert len(lines) == len(ROWS)
    refusals = {
        line["custom_id"]: refusal
        for number, line in enumerate(lines, start=1)
        if (refusal := validate_request_line(line, endpoint, line_number=number)) is not None
    }
    assert refusals == {}
