"""``memory``: a provider that lives in this process, shaped unlike OpenAI and Anthropic.

It is registered for a test by name (``providers.names.PROVIDERS["memory"]``), exactly as
a real provider package would be, and nothing in ``batchgrader/`` knows it. Its shape:

- requests go inline in the create call (no upload), as lines
  ``{"key": custom_id, "ask": {"system", "user", "limit", "reply_as"}}``;
- at most ``LIMITS.max_requests`` (3) requests per batch, so a small file is several chunks;
- a batch is found again by its tag (exact), finishes after ``polls`` retrieves, and its
  results are lines ``{"key", "outcome": "answered", "text", "tokens": {"in", "out"}}`` or
  ``{"key", "outcome": "refused", "why"}``;
- tokens are words (an exact counter of its own, no tiktoken);
- direct calls answer ``{"text", "tokens"}`` with HTTP 200, or 422 for a refused ask.

The judge is deterministic: ``score_of(user)`` (1-5 from the text's bytes); a user text
holding ``[[refuse]]`` is refused. ``SERVICE`` holds the batches and records every call.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchgrader.errors import ProviderError
from batchgrader.money.pricing import Usage
from batchgrader.prompting.options import RequestOptions
from batchgrader.prompting.prompts import Prompt
from batchgrader.prompting.rules import ModelRules
from batchgrader.providers.base import (
    Account,
    Answer,
    BatchInfo,
    BatchLimits,
    BatchState,
    BatchTag,
    LineResult,
    Provider,
    Reply,
    RowError,
)
from batchgrader.settings import Settings

NAME = "memory"
WHERE = "tests.seams.memory_provider:from_settings"
REFUSE = "[[refuse]]"
ENDPOINT = "/judge"
LIMITS = BatchLimits(max_requests=3, max_bytes=1 << 20, custom_id=re.compile(r"^row-\d{6}$"))


def score_of(user: str) -> int:
    return 1 + sum(user.encode("utf-8")) % 5


def words(text: str) -> int:
    return len(text.split())


def reply_to(ask: dict[str, Any]) -> tuple[str | None, str | None, Usage]:
    """(text, refusal, usage) of one ask: what the judge of this provider answers."""
    user, system = ask["user"], ask["system"]
    if REFUSE in user:
        return None, "the ask breaks the house rules", Usage()
    score = score_of(user)
    text = json.dumps({"score": score}) if ask["reply_as"] == "json" else str(score)
    usage = Usage(input_tokens=words(system) + words(user) + 2, output_tokens=words(text) + 1)
    return text, None, usage


# --- the service ---------------------------------------------------------------------


@dataclass
class Batch:
    id: str
    tag: BatchTag
    asks: list[tuple[str, dict[str, Any]]]
    created_at: int
    polls_left: int
    state: BatchState = BatchState.RUNNING


@dataclass
class Service:
    """The provider's side: its batches, and every call made to it."""

    #: Retrieves before a batch is done.
    polls: int = 1
    batches: dict[str, Batch] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    #: The body of every direct call, in order.
    direct_calls: list[dict[str, Any]] = field(default_factory=list)

    def reset(self) -> None:
        self.polls = 1
        self.batches.clear()
        self.deleted.clear()
        self.direct_calls.clear()

    def asked(self) -> list[str]:
        """custom_ids of every request sent in a batch, in order."""
        return [cid for batch in self.batches.values() for cid, _ in batch.asks]

    def direct_users(self) -> list[str]:
        """The user text of every direct call, in order."""
        return [body["user"] for body in self.direct_calls]

    def billed_input(self) -> int:
        """Input tokens of every request answered, batched or direct."""
        asks = [ask for batch in self.batches.values() for _, ask in batch.asks]
        return sum(reply_to(ask)[2].input_tokens for ask in [*asks, *self.direct_calls])


SERVICE = Service()


def _info(batch: Batch) -> BatchInfo:
    done = batch.state is BatchState.COMPLETED
    refused = sum(REFUSE in ask["user"] for _, ask in batch.asks) if done else 0
    return BatchInfo(
        id=batch.id,
        status=batch.state.value,
        state=batch.state,
        created_at=batch.created_at,
        total=len(batch.asks),
        completed=len(batch.asks) - refused if done else 0,
        failed=refused,
        results=(batch.id,) if batch.state.terminal else (),
        tag={"job": batch.tag.job_id, "chunk": str(batch.tag.chunk)},
    )


class MemoryBatches:
    """The batch transport: inline creates, found again by tag, results as lines."""

    exact_find = True

    def prepare(self, request_file: Path) -> str | None:
        return None  # nothing to upload: the requests go in the create call

    def create(
        self, request_file: Path, prepared: str | None, endpoint: str, tag: BatchTag
    ) -> BatchInfo:
        if endpoint != ENDPOINT:
            raise ProviderError(f"memory: no endpoint {endpoint}")
        asks = [MemoryCodec.split(line) for line in request_file.read_text().splitlines()]
        if not asks or len(asks) > LIMITS.max_requests:
            raise ProviderError(f"memory: a batch holds 1 to 3 requests, not {len(asks)}")
        batch = Batch(f"mem_{len(SERVICE.batches) + 1}", tag, asks, int(time.time()), SERVICE.polls)
        SERVICE.batches[batch.id] = batch
        return _info(batch)

    def candidates(self, tag: BatchTag, known: frozenset[str]) -> list[BatchInfo]:
        found = [b for b in SERVICE.batches.values() if b.tag == tag and b.id not in known]
        return [_info(b) for b in reversed(found)]

    def retrieve(self, batch_id: str) -> BatchInfo:
        batch = SERVICE.batches[batch_id]
        if batch.state is BatchState.RUNNING:
            batch.polls_left -= 1
            if batch.polls_left <= 0:
                batch.state = BatchState.COMPLETED
        return _info(batch)

    def cancel(self, batch_id: str) -> BatchInfo:
        batch = SERVICE.batches[batch_id]
        if not batch.state.terminal:
            batch.state = BatchState.CANCELLED
        return _info(batch)

    def download(self, info: BatchInfo, folder: Path, stem: str) -> list[Path]:
        batch = SERVICE.batches[info.id]
        done = batch.state is BatchState.COMPLETED
        lines: list[dict[str, Any]] = []
        for cid, ask in batch.asks:
            text, refusal, usage = reply_to(ask)
            if not done:
                lines.append({"key": cid, "outcome": "dropped"})
            elif refusal is not None:
                lines.append({"key": cid, "outcome": "refused", "why": refusal})
            else:
                tokens = {"in": usage.input_tokens, "out": usage.output_tokens}
                lines.append({"key": cid, "outcome": "answered", "text": text, "tokens": tokens})
        path = folder / f"{stem}.memory.jsonl"
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
        return [path]

    def delete(self, info: BatchInfo | None, prepared: str | None) -> bool:
        if info is not None:
            SERVICE.deleted.append(info.id)
        return True

    def close(self) -> None:
        pass


class MemoryDirect:
    """The synchronous endpoint: one ask, one reply."""

    base_url = "memory://judge"

    async def send(self, endpoint: str, body: dict[str, Any]) -> Reply:
        await asyncio.sleep(0)
        if endpoint != ENDPOINT:
            return Reply(404, {"why": f"no endpoint {endpoint}"})
        SERVICE.direct_calls.append(body)
        text, refusal, usage = reply_to(body)
        if refusal is not None:
            return Reply(422, {"why": refusal})
        return Reply(200, {"text": text, "tokens": [usage.input_tokens, usage.output_tokens]})

    async def aclose(self) -> None:
        pass


# --- requests, results and tokens ----------------------------------------------------


class MemoryCodec:
    def __init__(self, options: RequestOptions, prompt: Prompt) -> None:
        self.limit = options.max_tokens
        self.reply_as = "json" if options.answer_mode.json else "text"

    @staticmethod
    def split(line: str) -> tuple[str, dict[str, Any]]:
        record = json.loads(line)
        return record["key"], record["ask"]

    def body(self, system: str, user: str) -> dict[str, Any]:
        return {"system": system, "user": user, "limit": self.limit, "reply_as": self.reply_as}

    def lines(self, ids: Sequence[str], systems: Sequence[str], users: Sequence[str]) -> list[str]:
        return [
            json.dumps({"key": cid, "ask": self.body(system, user)})
            for cid, system, user in zip(ids, systems, users, strict=True)
        ]

    def constant_system_lines(
        self, ids: Sequence[str], system: str, users: Sequence[str]
    ) -> list[str]:
        return self.lines(ids, [system] * len(ids), users)

    def split_line(self, line: str) -> tuple[str, dict[str, Any]]:
        return self.split(line)

    def parse_line(self, raw: bytes) -> LineResult:
        try:
            record = json.loads(raw)
            cid = record["key"]
        except (ValueError, KeyError, TypeError):
            return LineResult(None, None)
        outcome = record.get("outcome")
        if outcome == "answered":
            tokens = record["tokens"]
            usage = Usage(input_tokens=tokens["in"], output_tokens=tokens["out"])
            return LineResult(cid, Answer(record["text"], usage=usage))
        if outcome == "refused":
            return LineResult(cid, Answer(None, RowError("refused", record.get("why", ""))))
        return LineResult(cid, None)  # not run (a cancelled batch): the row stays unanswered

    def parse_reply(self, status: int, body: Any) -> Answer:
        if status == 200 and isinstance(body, dict):
            tokens_in, tokens_out = body["tokens"]
            return Answer(
                body["text"], usage=Usage(input_tokens=tokens_in, output_tokens=tokens_out)
            )
        why = body.get("why", "") if isinstance(body, dict) else ""
        return Answer(None, RowError("refused" if status == 422 else f"http_{status}", why))


class WordCounter:
    """Tokens are words, and this counter is exact for this provider."""

    kind = "exact"
    error_band = 0.0
    name = "words"

    def count(self, text: str) -> int:
        return words(text)

    def count_many(self, texts: Sequence[str]) -> list[int]:
        return [words(text) for text in texts]

    def message_overhead(self, roles: Sequence[str]) -> int:
        return 2


class MemoryProvider:
    name = NAME
    limits = LIMITS
    sampling = False

    def endpoint(self, name: str, model: ModelRules, asked: str | None) -> tuple[str, str | None]:
        return ENDPOINT, f"{name} is judged in memory: the requests go to {ENDPOINT}."

    def notes(self) -> list[str]:
        return ["Tokens are words, counted exactly."]

    def account(self) -> Account:
        return Account("mem-key-0001", "memory://judge")

    def codec(
        self, options: RequestOptions, prompt: Prompt, *, max_usage: int | None = None
    ) -> MemoryCodec:
        return MemoryCodec(options, prompt)

    def counter(self, options: RequestOptions, prompt: Prompt) -> WordCounter:
        return WordCounter()

    def request_counter(self, model: str) -> None:
        return None

    def batch_transport(self) -> MemoryBatches:
        return MemoryBatches()

    def direct_transport(self, *, timeout: float) -> MemoryDirect:
        return MemoryDirect()


def from_settings(settings: Settings) -> Provider:
    return MemoryProvider()
