"""The judge's answer read as a score (or answer fields), never guessed.

An answer that cannot be read never becomes a silent score: the row's score stays
null and its error is ``unparseable`` with what was wrong.
"""

from __future__ import annotations

import json
import re
from typing import Any

from batchgrader.prompting.options import AnswerMode
from batchgrader.prompting.prompts import Prompt

_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)?")
_DENOMINATOR = re.compile(r"(?:/|\bout of|\bof)\s*$", re.IGNORECASE)
_FENCE = re.compile(r"```(?:json)?\s*(\{.*\})\s*```", re.DOTALL)


def parse_answer(
    text: str | None, prompt: Prompt, mode: AnswerMode
) -> tuple[int | None, str | None, dict[str, Any] | None]:
    """(score, problem, fields) of one answer; ``problem`` is None when it was read."""
    if text is None or not text.strip():
        return None, "empty answer", None
    scale = prompt.scale
    if mode.json:
        data = _json_object(text, lenient=mode is AnswerMode.JSON_TEXT)
        if isinstance(data, str):
            return None, data, None
        if prompt.schema is not None and "score" not in prompt.schema["properties"]:
            return None, None, data
        value = data.get("score")
        if isinstance(value, bool) or not isinstance(value, int):
            return None, f"score is {value!r}", data
        if not scale.min <= value <= scale.max:
            return None, f"score {value} outside {scale.min}-{scale.max}", data
        return value, None, data
    value, problem = _plain_score(text)
    if problem is not None:
        return None, problem, None
    assert value is not None
    if not scale.min <= value <= scale.max:
        return None, f"score {value} outside {scale.min}-{scale.max}", None
    return value, None, None


def _json_object(text: str, *, lenient: bool) -> dict[str, Any] | str:
    """The answer's JSON object, or what is wrong with it.

    ``lenient`` (a JSON answer asked for in the prompt, not enforced by the provider)
    also reads an object in a fenced code block or surrounded by prose, as long as
    there is exactly one.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
        if lenient:
            fenced = _FENCE.search(text)
            candidate = fenced.group(1) if fenced else _braced(text)
            if candidate is not None:
                try:
                    data = json.loads(candidate)
                except json.JSONDecodeError:
                    data = None
        if data is None:
            return f"not JSON: {text[:80]!r}"
    if not isinstance(data, dict):
        return f"not a JSON object: {text[:80]!r}"
    return data


def _braced(text: str) -> str | None:
    """The text from the first ``{`` to the last ``}``, if any."""
    start, end = text.find("{"), text.rfind("}")
    return text[start : end + 1] if 0 <= start < end else None


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


def answer_instruction(prompt: Prompt, mode: AnswerMode) -> str | None:
    """What the prompt must add when the provider cannot enforce the answer's shape."""
    if mode is not AnswerMode.JSON_TEXT:
        return None
    schema = json.dumps(prompt.answer_schema(), ensure_ascii=False)
    return "Answer with one JSON object and nothing else, following this JSON schema: " + schema
