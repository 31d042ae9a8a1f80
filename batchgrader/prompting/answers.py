"""The judge's answers as result columns, and the merge back into the input.

Output and error lines are joined by ``custom_id``, never by position. A line is a
success only when its ``error`` is null and ``response.status_code`` is 2xx. An answer
that cannot be parsed never becomes a silent score: ``llm_score`` is null and
``llm_error`` says ``unparseable: ...``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from batchgrader.money.pricing import Usage
from batchgrader.prompting.prompts import Prompt
from batchgrader.providers.openai.requests import row_of

_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)?")
_DENOMINATOR = re.compile(r"(?:/|\bout of|\bof)\s*$", re.IGNORECASE)
RESULT_SCHEMA = {
    "row": pl.Int64,
    "llm_score": pl.Int64,
    "llm_response": pl.String,
    "llm_error": pl.String,
    "llm_fields": pl.String,
}


@dataclass
class ChunkResults:
    """Per-row results of one chunk, plus its usage and error tally."""

    rows: list[int] = field(default_factory=list)
    scores: list[int | None] = field(default_factory=list)
    responses: list[str | None] = field(default_factory=list)
    errors: list[str | None] = field(default_factory=list)
    fields: list[str | None] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    error_codes: Counter[str] = field(default_factory=Counter)
    malformed_lines: int = 0

    def add(
        self,
        row: int,
        score: int | None,
        response: str | None,
        error: str | None,
        fields_json: str | None = None,
    ) -> None:
        self.rows.append(row)
        self.scores.append(score)
        self.responses.append(response)
        self.errors.append(error)
        self.fields.append(fields_json)

    @property
    def succeeded(self) -> int:
        return sum(1 for e in self.errors if e is None)

    def frame(self) -> pl.DataFrame:
        return pl.DataFrame(
            {
                "row": self.rows,
                "llm_score": self.scores,
                "llm_response": self.responses,
                "llm_error": self.errors,
                "llm_fields": self.fields,
            },
            schema=RESULT_SCHEMA,
        )


def parse_answer(
    text: str | None, prompt: Prompt, structured: bool
) -> tuple[int | None, str | None, dict[str, Any] | None]:
    """(score, error, fields) of one answer."""
    if text is None or not text.strip():
        return None, "unparseable: empty answer", None
    scale = prompt.scale
    if structured:
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return None, f"unparseable: not JSON: {text[:80]!r}", None
        if not isinstance(data, dict):
            return None, f"unparseable: not a JSON object: {text[:80]!r}", None
        if prompt.schema is not None and "score" not in prompt.schema["properties"]:
            return None, None, data
        value = data.get("score")
        if isinstance(value, bool) or not isinstance(value, int):
            return None, f"unparseable: score is {value!r}", data
        if not scale.min <= value <= scale.max:
            return None, f"unparseable: score {value} outside {scale.min}-{scale.max}", data
        return value, None, data
    value, problem = _plain_score(text)
    if problem is not None:
        return None, f"unparseable: {problem}", None
    assert value is not None
    if not scale.min <= value <= scale.max:
        return None, f"unparseable: score {value} outside {scale.min}-{scale.max}", None
    return value, None, None


def _plain_score(text: str) -> tuple[int | None, str | None]:
    """The one whole number a plain answer gives; ambiguity is never guessed.

    "4", "Score: 4 (good)" and "4 out of 5" give 4; "3.5" and "on a scale of 1 to 5: 4"
    are unparseable rather than silently wrong.
    """
    candidates: list[int] = []
    for match in _NUMBER.finditer(text):
        number = match.group()
        if "." in number or "," in number:
            return None, f"not a whole number in {text[:80]!r}"
        if _DENOMINATOR.search(text[: match.start()]) and candidates:
            continue  # "4 out of 5", "4/5": the 5 is the scale, not the score
        candidates.append(int(number))
    if not candidates:
        return None, f"no number in {text[:80]!r}"
    if len(set(candidates)) > 1:
        return None, f"several numbers in {text[:80]!r}"
    return candidates[0], None


def _answer_text(body: dict[str, Any]) -> str | None:
    """The assistant's text in a chat.completion or a response object."""
    if body.get("object") == "response" or "output" in body:
        texts = [
            part.get("text", "")
            for item in body.get("output") or []
            if item.get("type") == "message"
            for part in item.get("content") or []
            if part.get("type") == "output_text"
        ]
        return "".join(texts) if texts else None
    choices = body.get("choices") or []
    if not choices:
        return None
    message = choices[0].get("message") or {}
    content = message.get("content")
    if content is None and message.get("refusal"):
        return None
    return content if isinstance(content, str) else None


def _usage(body: dict[str, Any]) -> Usage:
    u = body.get("usage") or {}
    if "prompt_tokens" in u:
        details = u.get("prompt_tokens_details") or {}
        out_details = u.get("completion_tokens_details") or {}
        return Usage(
            int(u.get("prompt_tokens") or 0),
            int(details.get("cached_tokens") or 0),
            int(u.get("completion_tokens") or 0),
            int(out_details.get("reasoning_tokens") or 0),
        )
    details = u.get("input_tokens_details") or {}
    out_details = u.get("output_tokens_details") or {}
    return Usage(
        int(u.get("input_tokens") or 0),
        int(details.get("cached_tokens") or 0),
        int(u.get("output_tokens") or 0),
        int(out_details.get("reasoning_tokens") or 0),
    )


def parse_result_files(
    files: Iterable[Path],
    expected_rows: set[int],
    prompt: Prompt,
    structured: bool,
    not_run_error: str,
) -> ChunkResults:
    """Parse output and error files of a batch; rows in neither are ``not_run_error``."""
    results = ChunkResults()
    seen: set[int] = set()
    for path in files:
        with path.open(encoding="utf-8") as handle:
            for raw in handle:
                if not raw.strip():
                    continue
                _parse_line(raw, results, seen, expected_rows, prompt, structured)
    for row in sorted(expected_rows - seen):
        results.add(row, None, None, not_run_error)
        results.error_codes[not_run_error.split(":", 1)[0]] += 1
    return results


def _parse_line(
    raw: str,
    results: ChunkResults,
    seen: set[int],
    expected_rows: set[int],
    prompt: Prompt,
    structured: bool,
) -> None:
    try:
        line = json.loads(raw)
        cid = line["custom_id"]
    except (json.JSONDecodeError, KeyError, TypeError):
        results.malformed_lines += 1
        return
    row = row_of(cid) if isinstance(cid, str) else None
    if row is None or row not in expected_rows or row in seen:
        results.malformed_lines += 1
        return
    seen.add(row)
    error = line.get("error")
    response = line.get("response") or {}
    status = response.get("status_code") if isinstance(response, dict) else None
    body = response.get("body") if isinstance(response, dict) else None
    if error is None and isinstance(status, int) and 200 <= status < 300 and isinstance(body, dict):
        results.usage = results.usage + _usage(body)
        text = _answer_text(body)
        score, problem, data = parse_answer(text, prompt, structured)
        if problem is not None:
            results.error_codes["unparseable"] += 1
        fields_json = json.dumps(data, ensure_ascii=False) if data is not None else None
        results.add(row, score, text, problem, fields_json)
        return
    code, message = "error", ""
    if isinstance(error, dict):
        code, message = str(error.get("code") or "error"), str(error.get("message") or "")
    elif isinstance(body, dict) and isinstance(body.get("error"), dict):
        inner = body["error"]
        code = str(inner.get("code") or inner.get("type") or f"http_{status}")
        message = str(inner.get("message") or "")
    elif status is not None:
        code = f"http_{status}"
    results.error_codes[code] += 1
    results.add(row, None, None, f"{code}: {message}" if message else code)


def field_columns(prompt: Prompt) -> list[str]:
    """The answer fields that become their own columns (all but score)."""
    if prompt.schema is None and not prompt.reasoning:
        return []
    return [name for name in prompt.answer_schema()["properties"] if name != "score"]


def expand_fields(results: pl.LazyFrame, prompt: Prompt) -> pl.LazyFrame:
    """Turn the JSON ``llm_fields`` into one ``llm_<field>`` column per answer field."""
    names = field_columns(prompt)
    exprs = [
        pl.col("llm_fields").str.json_path_match(f"$.{name}").alias(f"llm_{name}") for name in names
    ]
    return results.with_columns(exprs).drop("llm_fields")
