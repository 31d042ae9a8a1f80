"""Preparing a run before anything is sent: locks, jobs, targets, the budget.

Every file's job lock is taken first (in one order for every process), then each job
is found (by its identity: the same rows and request) or created, rows to retry are
added when asked, and the graded file's target is checked. The run's worst case is
then checked against the budgets and reserved in one ledger transaction, asking first
when it is expensive. A run refused at any of these steps leaves no new job behind.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from batchgrader.execution.jobs import identity_of, new_job
from batchgrader.execution.layout import JobFiles
from batchgrader.execution.locks import JobLock, is_running, locks_dir
from batchgrader.execution.output import (
    Target,
    check_nested,
    check_writable,
    own_output,
    resolve_target,
)
from batchgrader.execution.resubmit import RetryScope, add_retry_chunks, retry_mode
from batchgrader.execution.reuse import reused, scope_of
from batchgrader.execution.session import GradeOptions, Session
from batchgrader.ledger.records import ChunkMode, ChunkRow, JobRow, JobStatus
from batchgrader.ledger.store import Ledger
from batchgrader.money import budget
from batchgrader.planning.workload import Workload


@dataclass
class Prepared:
    """A file's job, ready to run: its rows, its job, where its graded file goes."""

    workload: Workload
    job: JobRow
    target: Target
    created: bool
    reused_from: str | None = None


class Preparer:
    """Prepares a session's jobs: locked, found or created, targeted, budgeted."""

    def __init__(self, session: Session) -> None:
        self.s = session
        self._created: set[str] = set()  # jobs this run created (--force replaces once)

    def lock(self, key: str, label: str, options: GradeOptions) -> None:
        s = self.s
        lock = JobLock(locks_dir(s.settings.state_dir()), key, label=label)

        def waiting(pid: int | None) -> None:
            who = f"process {pid}" if pid else "another process"
            s.say(f"{label} is being run by {who}; waiting (Ctrl-C to leave it).")

        lock.acquire(wait=options.wait, on_wait=waiting)
        s.locks.append(lock)

    def prepare_all(self, workloads: list[Workload], options: GradeOptions) -> list[Prepared]:
        """Lock every file's job, then find or create each (none is left if one is refused)."""
        s = self.s
        identities = [identity_of(w, s.spec) for w in workloads]
        # Every lock is taken before any job is created, in one order for every process
        # (the fingerprints'), each once: two runs of the same files in different orders
        # never wait for each other in a circle, and a file given twice (or a copy of
        # it) is one job.
        names = {fp: w.source.path.name for w, (_, fp) in zip(workloads, identities, strict=True)}
        for fp in sorted(names):
            self.lock(fp, f"The job of {names[fp]}", options)
        prepared: list[Prepared] = []
        try:
            for workload, identity in zip(workloads, identities, strict=True):
                prepared.append(self._prepare(workload, identity, options))
        except BaseException:  # refused before anything was sent: leave no job behind
            self.forget_new(prepared)
            raise
        return prepared

    def _prepare(
        self, workload: Workload, identity: tuple[str, str], options: GradeOptions
    ) -> Prepared:
        """Find or create the job of ``workload`` (whose lock this process holds)."""
        s = self.s
        input_hash, fp = identity
        job = s.ledger.job_by_fingerprint(fp)
        if job is not None and options.force and job.id not in self._created:
            s.ledger.set_job(job.id, status=JobStatus.SUPERSEDED)
            job = None
        created = job is None
        reused_from = None
        if job is None:
            job = new_job(
                workload,
                s.spec,
                s.settings,
                s.ledger,
                input_hash,
                fp,
                mode=ChunkMode.DIRECT if s.settings.run.mode == "direct" else ChunkMode.BATCH,
                reuse_scope=scope_of(s.spec.provider.name, s.identity.base_url_host),
                lookup=not options.force,
            )
            self._created.add(job.id)
            self._say_reused(job)
        elif Path(job.input_path) != workload.source.path.resolve():
            reused_from = job.input_path
            s.say(
                f"These rows were graded before by job {job.id} from {job.input_path} "
                f"on {job.created_at[:10]}: re-using its results (paid once); "
                "--force grades them again."
            )
        if options.retry is not None and job.status.finished:
            self.retry(job, workload, options.retry)
            job = s.ledger.job(job.id) or job
        try:
            target = self.target(workload, job, options, reused=reused_from is not None)
        except BaseException:
            if created:
                self.forget_new([Prepared(workload, job, Target(Path(), "csv"), created)])
            raise
        return Prepared(workload, job, target, created, reused_from)

    def target(
        self, workload: Workload, job: JobRow, options: GradeOptions, *, reused: bool = False
    ) -> Target:
        """The graded file's target, checked now (before anything is paid for)."""
        s = self.s
        own = None if reused else own_output(s.ledger, job)
        intended = None
        if options.output is None and job.output_path and not reused:
            intended = Path(job.output_path)  # where this job writes, wherever it runs from
            if own is None and (not intended.exists() or options.overwrite):
                own = intended
        target = resolve_target(
            workload.source.path,
            s.settings,
            explicit=options.output,
            fmt=options.output_format,
            overwrite=options.overwrite,
            own=own,
        )
        check_writable(target, workload.source.path.stat().st_size)
        check_nested(workload.source.scan().collect_schema(), target)
        if job.output_path is None and not job.status.finished:
            s.ledger.set_job(job.id, output_path=str(target.path))
        return target

    def retry(self, job: JobRow, workload: Workload, scope: RetryScope) -> None:
        s = self.s
        count = add_retry_chunks(
            s.settings,
            s.ledger,
            job,
            s.spec,
            scope=scope,
            workload=workload,
            mode=retry_mode(s.settings, s.ledger, job),
        )
        s.say(
            f"Retrying {count:,} failed row(s) of job {job.id}."
            if count
            else f"Job {job.id} has no failed rows to retry"
            + (
                "."
                if scope is RetryScope.ALL
                else " (--retry-failed=all also resends rows whose error is permanent)."
            )
        )

    def reserve(
        self,
        prepared: list[Prepared],
        options: GradeOptions,
        *,
        chunks: list[ChunkRow] | None = None,
        measured: budget.Measured | None = None,
        question: str | None = None,
        forget_on_refusal: bool = True,
    ) -> budget.BudgetCheck:
        """Check and reserve the run's worst case at once; ask before an expensive run.

        ``question`` is asked on a terminal whatever the cost (after a pilot); without a
        terminal the run goes on when it is within the budgets.
        """
        s = self.s
        jobs = list({p.job.id: p.job for p in prepared}.values())  # a file given twice
        state = s.settings.state_dir()
        try:
            check = budget.reserve_run(
                s.ledger,
                jobs,
                s.spec,
                s.settings,
                now=datetime.now(UTC),
                enforce=not options.yes,
                stale=lambda job_id: not _job_running(s.ledger, state, job_id),
                chunks=chunks,
                measured=measured,
            )
            s.running.extend(j.id for j in jobs if j.id not in s.running)
            if not options.yes and question is not None:
                if s.confirm is not None and not s.confirm(question):
                    raise check.not_confirmed(interactive=True)
            elif not options.yes and check.confirm is not None:
                if s.confirm is None:
                    raise check.not_confirmed(interactive=False)
                if not s.confirm(check.confirm + " Submit?"):
                    raise check.not_confirmed(interactive=True)
        except BaseException:
            if forget_on_refusal:
                self.forget_new(prepared)
            else:
                budget.release_reservations(s.ledger, [j.id for j in jobs])
            raise
        return check

    def forget_new(self, prepared: list[Prepared]) -> None:
        """A refused run leaves no job behind (nothing of it was sent)."""
        s = self.s
        budget.release_reservations(s.ledger, [p.job.id for p in prepared])
        for item in prepared:
            if item.created:
                s.ledger.remove_job(item.job.id)
                JobFiles(s.settings, item.job.id).remove()

    def _say_reused(self, job: JobRow) -> None:
        s = self.s
        rows, saved = reused(JobFiles(s.settings, job.id), s.ledger.chunks(job.id), s.spec.price)
        if rows:
            worth = f" (they cost ${saved:,.6f} when paid)" if saved is not None else ""
            chunks = s.ledger.chunks(job.id)
            sent = sum(c.requests for c in chunks if c.mode is not ChunkMode.REUSED)
            s.say(
                f"{rows:,} row(s) of {Path(job.input_path).name} were answered before with the "
                f"same request: their paid answers are reused{worth}; {sent:,} row(s) to send."
            )


def _job_running(ledger: Ledger, state_dir: Path, job_id: str) -> bool:
    job = ledger.job(job_id)
    return job is not None and is_running(state_dir, job.fingerprint)
