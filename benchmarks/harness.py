"""What every benchmark here shares: machine load, priority, /proc sampling, the docs.

- ``cpu_jiffies`` / ``wait_for_quiet``: how busy the machine is, and waiting for it to
  be idle before a timed run;
- ``set_priority``: run the harness and its children at a nice value, in their own
  scheduling group;
- ``ProcPeak``: the peak of one ``/proc/PID/status`` field of a running child
  (``RssAnon``: private memory; ``VmHWM``: peak RSS of the child's own address space);
- ``write_section``: replace a script's generated section of a Markdown page.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from pathlib import Path


def cpu_jiffies() -> tuple[int, int] | None:
    """(busy, total) jiffies of the whole machine, or None off Linux."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    values = [int(v) for v in fields[:8]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


def wait_for_quiet(max_wait: float, threshold: float = 0.25) -> float:
    """Wait until other processes use under ``threshold`` of a core; the load seen last."""
    deadline = time.monotonic() + max_wait
    while True:
        before = cpu_jiffies()
        time.sleep(1.0)
        after = cpu_jiffies()
        if before is None or after is None:
            return 0.0
        busy, total = after[0] - before[0], after[1] - before[1]
        load = (os.cpu_count() or 1) * busy / total if total else 0.0
        if load < threshold or time.monotonic() >= deadline:
            return load


def set_priority(nice: int) -> None:
    """Run this process and its children at ``nice``.

    With autogroup scheduling (most Linux desktops and VMs) nice values only rank the
    processes of one session against each other, so the harness also moves into a
    session of its own and sets that session's group nice.
    """
    os.setpriority(os.PRIO_PROCESS, 0, nice)  # inherited by every child
    autogroup = Path("/proc/self/autogroup")
    if autogroup.exists():
        with contextlib.suppress(OSError):
            os.setsid()
        with contextlib.suppress(OSError):
            autogroup.write_text(str(nice))


class ProcPeak(threading.Thread):
    """Samples one ``/proc/PID/status`` field (in kB) of a child until it exits.

    ``RssAnon`` is the private memory a process really holds: peak RSS also counts
    file-backed pages (a memory-mapped input) the kernel can drop at any time.
    ``VmHWM`` is the child's own peak RSS; ``ru_maxrss`` from ``os.wait4`` cannot stand
    in for it when the harness is large, because Linux carries a forked child's
    pre-``exec`` peak over into it.
    """

    def __init__(self, pid: int, field: str, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.status = Path(f"/proc/{pid}/status")
        self.pattern = re.compile(rf"^{field}:\s*(\d+) kB", re.MULTILINE)
        self.interval = interval
        self.peak_kb: int | None = None
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                text = self.status.read_text()
            except OSError:
                return
            if m := self.pattern.search(text):
                self.peak_kb = max(self.peak_kb or 0, int(m.group(1)))
            self.done.wait(self.interval)

    def stop(self) -> float | None:
        """Stop sampling; the peak in MB (None when nothing could be read)."""
        self.done.set()
        self.join()
        return None if self.peak_kb is None else self.peak_kb / 1024


def write_section(path: Path, begin: str, end: str, body: str) -> None:
    """Put ``body`` between the ``begin`` and ``end`` markers of ``path``.

    The section is appended at the end of the page (created if missing) the first time.
    """
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < start:
        text = text.rstrip("\n") + f"\n\n{begin}\n{end}\n"
        start, stop = text.find(begin), text.find(end)
    text = text[: start + len(begin)] + "\n" + body.strip() + "\n" + text[stop:]
    path.write_text(text, encoding="utf-8")
