"""A job's identity: what decides the answers, never how the work is cut or scheduled.

The fingerprint hashes the input's bytes and the requests' settings as the job stores
them (model, endpoint, prompt, answer format, request parameters), so re-running an
interrupted job after tuning the chunk size or the enqueued-token cap re-attaches to
it instead of paying again.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from batchgrader.planning.spec import StoredRequest


def file_hash(path: Path) -> str:
    """SHA-256 of a file's bytes, read a megabyte at a time."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(input_hash: str, request: StoredRequest) -> str:
    """The job identity of an input (by its hash) graded with ``request``."""
    shaping = request.model_dump(mode="json")
    blob = json.dumps({"input": input_hash, "requests": shaping}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()
