"""A job's folder in the state dir: request files, row results, raw downloads, lock."""

from __future__ import annotations

import copy
import re
import shutil
from pathlib import Path

from batchgrader import paths
from batchgrader.providers.base import RequestCodec, row_of
from batchgrader.settings import Settings

_LEADING_ID = re.compile(r'\{"custom_id":"(row-\d+)"')


class JobFiles:
    """Where one job's files live."""

    def __init__(self, settings: Settings, job_id: str) -> None:
        self.job_id = job_id
        self.folder = paths.jobs_dir(settings.state_dir()) / job_id

    def sibling(self, job_id: str) -> JobFiles:
        """The files of another job of the same state folder."""
        other = copy.copy(self)
        other.job_id = job_id
        other.folder = self.folder.parent / job_id
        return other

    @property
    def requests(self) -> Path:
        return self.folder / "requests"

    @property
    def results(self) -> Path:
        return self.folder / "results"

    def request_file(self, name: str) -> Path:
        return self.requests / name

    @staticmethod
    def result_stem(request_file: str) -> str:
        """The name (without extension) of a chunk's result files: its request file's, so
        every chunk's are unique (``chunk-0001``, ``retry-0005``, ``pilot``)."""
        return Path(request_file).stem

    def request_rows(self, name: str, codec: RequestCodec) -> set[int]:
        """The input rows a chunk's request file holds (read back from its custom_ids)."""
        rows: set[int] = set()
        with self.request_file(name).open(encoding="utf-8") as handle:
            for line in handle:  # most lines start with their custom_id: no need to parse
                match = _LEADING_ID.match(line)
                row = row_of(match.group(1) if match else codec.split_line(line)[0])
                if row is not None:
                    rows.add(row)
        return rows

    def remove_temporary(self) -> None:
        """Drop a finished job's request files and raw downloads; keep its row results."""
        shutil.rmtree(self.requests, ignore_errors=True)
        for raw in self.results.glob("*.jsonl"):
            raw.unlink(missing_ok=True)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
