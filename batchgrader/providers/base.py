"""What batchgrader knows of a provider batch, independent of any SDK.

The runner works against the ``BatchAPI`` protocol; ``openai_batch.BatchClient`` is
its implementation over the official SDK (imported only when a run needs it: the SDK
takes about a second to import, which ``count``, ``split`` and ``costs`` never need).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
_LIMIT_RE = re.compile(r"Limit:\s*([\d,]+)\s*enqueued tokens", re.IGNORECASE)
_ENQUEUED_RE = re.compile(r"enqueued token|token_limit_exceeded", re.IGNORECASE)


def parse_enqueued_limit(message: str) -> int | None:
    """The limit stated in an enqueued-token message ("Limit: 2,000,000 enqueued tokens")."""
    match = _LIMIT_RE.search(message)
    return int(match.group(1).replace(",", "")) if match else None


def is_enqueued_limit(code: str | None, message: str) -> bool:
    return code == "token_limit_exceeded" or bool(_ENQUEUED_RE.search(message or ""))


@dataclass(frozen=True)
class BatchError:
    code: str
    message: str
    line: int | None = None


@dataclass(frozen=True)
class BatchInfo:
    """The parts of a provider batch object batchgrader uses."""

    id: str
    status: str
    created_at: int
    input_file_id: str | None
    output_file_id: str | None
    error_file_id: str | None
    total: int
    completed: int
    failed: int
    errors: tuple[BatchError, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL


class BatchAPI(Protocol):
    """The provider calls the runner makes."""

    def upload(self, path: Path) -> str: ...
    def create(self, file_id: str, endpoint: str, metadata: Mapping[str, str]) -> BatchInfo: ...
    def retrieve(self, batch_id: str) -> BatchInfo: ...
    def find(self, metadata: Mapping[str, str], since: int) -> BatchInfo | None: ...
    def cancel(self, batch_id: str) -> BatchInfo: ...
    def download(self, file_id: str, dest: Path) -> None: ...
    def close(self) -> None: ...
