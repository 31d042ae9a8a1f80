"""The FLOOR baseline of ``grade --mode direct``: the same calls with plain asyncio + httpx.

It sends the requests of a job's request files (``grade --dry-run`` writes them), one
call per line, at most ``--concurrency`` at a time, and does only the unavoidable work:

1. every line of every ``*.jsonl`` file of FOLDER (in name order) parsed with
   ``json.loads``;
2. one ``POST {OPENAI_BASE_URL}/chat/completions`` per line with its ``body`` as JSON,
   through one ``httpx2.AsyncClient`` (the HTTP client the SDKs use) whose pool keeps
   ``--concurrency`` connections alive, every call behind one ``asyncio.Semaphore``;
3. each answer read whole and parsed with ``json.loads``, its judge's score kept in
   memory by ``custom_id``.

No SDK, no durability (nothing written), no ledger, no retries, no pacing, no budget;
a failed call is counted, not retried. The API key comes from ``OPENAI_API_KEY``.

    python benchmarks/floor_direct.py FOLDER [--concurrency 64]

Prints one JSON object: ``{"requests", "answered", "failed", "send_s",
"rows_per_s", "scores_sha256"}`` (``send_s`` from the first call to the last answer;
``scores_sha256``: sha256 of the scores in ``custom_id`` order, joined by commas).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx2


def read_requests(folder: Path) -> list[tuple[str, dict[str, Any]]]:
    """(custom_id, body) of every request line, in file and line order."""
    requests = []
    for path in sorted(folder.glob("*.jsonl")):
        with path.open("rb") as handle:
            for raw in handle:
                line = json.loads(raw)
                requests.append((line["custom_id"], line["body"]))
    return requests


async def send_all(
    requests: list[tuple[str, dict[str, Any]]], concurrency: int
) -> tuple[dict[str, int], int, float]:
    """(score by custom_id, failed calls, seconds from the first call to the last answer)."""
    base_url = os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1").rstrip("/")
    headers = {"Authorization": f"Bearer {os.environ['OPENAI_API_KEY']}"}
    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    slots = asyncio.Semaphore(concurrency)
    scores: dict[str, int] = {}
    failed = 0

    async with httpx2.AsyncClient(
        base_url=base_url, headers=headers, limits=limits, timeout=600.0
    ) as client:

        async def one(custom_id: str, body: dict[str, Any]) -> None:
            nonlocal failed
            async with slots:
                try:
                    response = await client.post("/chat/completions", json=body)
                except httpx2.HTTPError:
                    failed += 1
                    return
            if response.status_code != 200:
                failed += 1
                return
            content = response.json()["choices"][0]["message"]["content"]
            scores[custom_id] = json.loads(content)["score"]

        started = time.perf_counter()
        await asyncio.gather(*(one(cid, body) for cid, body in requests))
        return scores, failed, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="a job's request files (*.jsonl)")
    parser.add_argument("--concurrency", type=int, default=64, help="calls in flight at most")
    args = parser.parse_args()
    requests = read_requests(args.folder)
    scores, failed, seconds = asyncio.run(send_all(requests, args.concurrency))
    ordered = ",".join(str(scores[cid]) for cid in sorted(scores))
    print(
        json.dumps(
            {
                "requests": len(requests),
                "answered": len(scores),
                "failed": failed,
                "send_s": seconds,
                "rows_per_s": len(scores) / seconds if seconds else 0.0,
                "scores_sha256": hashlib.sha256(ordered.encode()).hexdigest(),
            }
        )
    )


if __name__ == "__main__":
    main()
