"""A run: grade files (or resume a job) from start to graded file, in the core.

``Session`` carries what a run needs (settings, request spec, ledger, provider
transport, retry policy, clock, event sink, how to talk to the user); ``Grader`` drives
the work: find or create each file's job under its lock, check the budgets and reserve
the worst case in one step, run the executors, retry what expired, merge, summarise.
``grade`` and ``jobs resume`` share this one path; the CLI only parses flags and renders.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

from batchgrader.data.atomic import atomic_path
from batchgrader.data.formats import Format, format_of
from batchgrader.data.reading import scan_table
from batchgrader.data.writing import sink_rows
from batchgrader.errors import InputFileError, Interrupted, UsageError
from batchgrader.execution.batch import BatchExecutor
from batchgrader.execution.events import Clock, EventSink, Identity, SystemClock
from batchgrader.execution.identity import file_hash
from batchgrader.execution.jobs import identity_of, new_job
from batchgrader.execution.layout import JobFiles
from batchgrader.execution.locks import JobLock, is_running, locks_dir
from batchgrader.execution.merge import aligned_results, results_kept, write_output
from batchgrader.execution.output import (
    Target,
    check_nested,
    check_writable,
    own_output,
    resolve_target,
)
from batchgrader.execution.recovery import what_changed, write_recovered
from batchgrader.execution.resubmit import RetryScope, add_retry_chunks
from batchgrader.execution.retrying import RetryPolicy
from batchgrader.execution.reuse import remember, reused, scope_of
from batchgrader.execution.summary import RowTally, RunSummary, summarise
from batchgrader.ledger.records import ChunkMode, ChunkRow, ChunkStatus, JobRow, JobStatus
from batchgrader.ledger.store import Ledger
from batchgrader.money import budget
from batchgrader.money.costs import today_cost
from batchgrader.planning.spec import RequestSpec
from batchgrader.planning.workload import Workload
from batchgrader.providers.base import BatchTransport
from batchgrader.settings import Settings

log = logging.getLogger(__name__)

#: Row errors resubmitted automatically (up to ``run.max_retries_per_row`` times).
AUTO_RETRIED = ("batch_expired",)


class RunReport(BaseModel):
    """Every file of one ``grade`` run."""

    files: list[RunSummary]
    today_cost: str | None = None


@dataclass(frozen=True)
class GradeOptions:
    output: Path | None = None
    output_format: Format | None = None
    overwrite: bool = False
    force: bool = False
    detach: bool = False
    retry: RetryScope | None = None
    #: Wait for a job another process is running (False: stop with exit 2).
    wait: bool = True
    #: ``--yes``: submit over a budget limit, without asking.
    yes: bool = False


@dataclass
class Session:
    """What a run needs; built by ``open_session``."""

    settings: Settings
    spec: RequestSpec
    ledger: Ledger
    transport: BatchTransport
    policy: RetryPolicy
    identity: Identity
    clock: Clock
    on_event: EventSink
    #: One line for people (the CLI prints it on stderr).
    say: Callable[[str], None]
    #: Ask the user a yes/no question; None when there is no terminal to ask on.
    confirm: Callable[[str], bool] | None
    locks: list[JobLock] = field(default_factory=list)
    running: list[str] = field(default_factory=list)


@contextmanager
def open_session(
    settings: Settings,
    spec: RequestSpec,
    ledger: Ledger,
    identity: Identity,
    *,
    on_event: EventSink,
    say: Callable[[str], None],
    confirm: Callable[[str], bool] | None,
    on_first_request: Callable[[], None] = lambda: None,
    clock: Clock | None = None,
) -> Iterator[Session]:
    """A session; Ctrl-C becomes ``Interrupted`` (state saved, how to resume)."""
    clock = clock or SystemClock()
    transport = spec.provider.batch_transport()  # a missing key fails here, before any work
    policy = RetryPolicy(
        retries=settings.api.max_retries,
        max_wait=settings.api.retry_max_wait_seconds,
        sleep=clock.sleep,
        base_url=getattr(transport, "base_url", None),
        on_first_call=on_first_request,
    )
    session = Session(
        settings=settings,
        spec=spec,
        ledger=ledger,
        transport=transport,
        policy=policy,
        identity=identity,
        clock=clock,
        on_event=on_event,
        say=say,
        confirm=confirm,
    )
    try:
        yield session
    except KeyboardInterrupt:
        current = session.running[-1] if session.running else None
        hint = "Run the same command again to resume" + (
            f" (or: batchgrader jobs resume {current})." if current else "."
        )
        raise Interrupted(
            "Interrupted. Batches already submitted keep running at the provider; nothing "
            "was cancelled and nothing will be paid twice.",
            hint=hint,
        ) from None
    finally:
        budget.release_reservations(ledger, session.running)
        for lock in session.locks:
            lock.release()
        transport.close()


@dataclass
class _Prepared:
    workload: Workload
    job: JobRow
    target: Target
    created: bool
    reused_from: str | None = None


class Grader:
    """Grades files, or resumes a job, in one session."""

    def __init__(self, session: Session) -> None:
        self.s = session
        self._created: set[str] = set()  # jobs this run created (--force replaces once)

    # --- grade ------------------------------------------------------------------------

    def grade(self, paths: list[Path], options: GradeOptions) -> RunReport:
        """Validate every file, check the budget, then grade them one after the other."""
        s = self.s
        workloads = [Workload.of(path, s.spec) for path in paths]
        identities = [identity_of(w, s.spec) for w in workloads]
        # Every lock is taken before any job is created, in one order for every process
        # (the fingerprints'), each once: two runs of the same files in different orders
        # never wait for each other in a circle, and a file given twice (or a copy of
        # it) is one job.
        names = {fp: w.source.path.name for w, (_, fp) in zip(workloads, identities, strict=True)}
        for fp in sorted(names):
            self._lock(fp, f"The job of {names[fp]}", options)
        prepared: list[_Prepared] = []
        try:
            for workload, identity in zip(workloads, identities, strict=True):
                prepared.append(self._prepare(workload, identity, options))
        except BaseException:  # refused before anything was sent: leave no job behind
            self._forget_new(prepared)
            raise
        self._budget(prepared, options)
        report = RunReport(files=[])
        for item in prepared:
            summary = self._run(item, options)
            report.files.append(summary)
            if summary.status == JobStatus.FAILED and s.settings.run.halt_on_chunk_failure:
                break
        report.today_cost = today_cost(s.ledger)
        return report

    def resume(self, job: JobRow, options: GradeOptions) -> RunReport:
        """Continue a job by id with the request settings it was created with."""
        s = self.s
        source = Path(job.input_path)
        if not source.exists():
            raise InputFileError(
                f"{source} is missing: job {job.id} cannot be resumed without its input.",
                hint="Restore the original file to resume this job.",
            )
        workload = Workload.of(source, s.spec)
        self._lock(job.fingerprint, f"Job {job.id}", options)
        fresh = s.ledger.job(job.id)
        assert fresh is not None
        job = fresh
        if options.retry is not None:
            self._retry(job, workload, options.retry)
            job = s.ledger.job(job.id) or job
        target = self._target(workload, job, options)
        item = _Prepared(workload, job, target, created=False)
        self._budget([item], options)
        if job.status is not JobStatus.DONE:
            s.ledger.set_job(job.id, status=JobStatus.RUNNING)
            job.status = JobStatus.RUNNING
        report = RunReport(files=[self._run(item, options)])
        report.today_cost = today_cost(s.ledger)
        return report

    # --- preparing ----------------------------------------------------------------------

    def _lock(self, key: str, label: str, options: GradeOptions) -> None:
        s = self.s
        lock = JobLock(locks_dir(s.settings.state_dir()), key, label=label)

        def waiting(pid: int | None) -> None:
            who = f"process {pid}" if pid else "another process"
            s.say(f"{label} is being run by {who}; waiting (Ctrl-C to leave it).")

        lock.acquire(wait=options.wait, on_wait=waiting)
        s.locks.append(lock)

    def _prepare(
        self, workload: Workload, identity: tuple[str, str], options: GradeOptions
    ) -> _Prepared:
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
            scope = scope_of(s.spec.provider.name, s.identity.base_url_host)
            job = new_job(
                workload,
                s.spec,
                s.settings,
                s.ledger,
                input_hash,
                fp,
                reuse_scope=scope,
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
            self._retry(job, workload, options.retry)
            job = s.ledger.job(job.id) or job
        try:
            target = self._target(workload, job, options, reused=reused_from is not None)
        except BaseException:
            if created:
                self._forget_new([_Prepared(workload, job, Target(Path(), "csv"), created)])
            raise
        return _Prepared(workload, job, target, created, reused_from)

    def _target(
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

    def _retry(self, job: JobRow, workload: Workload, scope: RetryScope) -> None:
        s = self.s
        count = add_retry_chunks(s.settings, s.ledger, job, s.spec, scope=scope, workload=workload)
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

    def _budget(self, prepared: list[_Prepared], options: GradeOptions) -> None:
        """Check and reserve the run's worst case at once; ask before an expensive run."""
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
            )
            s.running.extend(j.id for j in jobs)
            if not options.yes and check.confirm is not None:
                if s.confirm is None:
                    raise check.not_confirmed(interactive=False)
                if not s.confirm(check.confirm + " Submit?"):
                    raise check.not_confirmed(interactive=True)
        except BaseException:
            self._forget_new(prepared)
            raise

    def _forget_new(self, prepared: list[_Prepared]) -> None:
        """A refused run leaves no job behind (nothing of it was sent)."""
        s = self.s
        budget.release_reservations(s.ledger, [p.job.id for p in prepared])
        for item in prepared:
            if item.created:
                s.ledger.remove_job(item.job.id)
                JobFiles(s.settings, item.job.id).remove()

    # --- running ------------------------------------------------------------------------

    def _run(self, item: _Prepared, options: GradeOptions) -> RunSummary:
        summary = self._drive(item, options)
        summary.input = str(item.workload.source.path.resolve())  # (a copy: not the job's)
        files = JobFiles(self.s.settings, item.job.id)
        rows, saved = reused(files, self.s.ledger.chunks(item.job.id), self.s.spec.price)
        summary.reused = rows
        summary.reused_cost = str(saved) if saved is not None else None
        return summary

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

    def _drive(self, item: _Prepared, options: GradeOptions) -> RunSummary:
        s = self.s
        job, target = item.job, item.target
        files = JobFiles(s.settings, job.id)
        chunks = s.ledger.chunks(job.id)
        notes = []
        if item.reused_from is not None:
            notes.append(f"re-used the results of job {job.id}, graded from {item.reused_from}")
        if job.status is JobStatus.DONE and not results_kept(files, chunks):
            return self._finished(item, notes)
        if job.status is JobStatus.DONE and target.own and target.path.exists():
            log.info("Job %s already finished: %s", job.id, target.path)
            with aligned_results(files, job, chunks) as results:
                tally = RowTally.of(results)
            return summarise(
                job, chunks, tally, s.ledger, str(target.path), job.status, notes=notes
            )
        s.running.append(job.id)
        executor = BatchExecutor(
            s.transport,
            s.ledger,
            s.settings,
            s.spec,
            s.identity,
            on_event=s.on_event,
            clock=s.clock,
            policy=s.policy,
        )
        chunks = executor.run(job, detach=options.detach)
        for _ in range(0 if options.detach else s.settings.run.max_retries_per_row):
            if not all(c.status.finished for c in chunks):
                break
            resent = add_retry_chunks(
                s.settings, s.ledger, job, s.spec, only=AUTO_RETRIED, workload=item.workload
            )
            if not resent:
                break
            log.warning("Resubmitting %d row(s) an expired batch did not run.", resent)
            chunks = executor.run(job)
        if not all(c.status.finished for c in chunks):
            return summarise(job, chunks, None, s.ledger, None, "submitted", notes=notes)
        return self._write(item, chunks, notes)

    def _write(self, item: _Prepared, chunks: list[ChunkRow], notes: list[str]) -> RunSummary:
        s = self.s
        job, target, workload = item.job, item.target, item.workload
        files = JobFiles(s.settings, job.id)
        remember(s.ledger, files, job, chunks)  # its answers, for any later job to reuse
        source = workload.source.path
        if not source.exists() or file_hash(source) != job.input_hash:
            # The input changed while the batches ran: never merge by position.
            what = what_changed(source, workload.source.format, job)
            path, tally = write_recovered(files, job, s.spec, chunks, target)
            notes.append(
                f"{source} changed while job {job.id} ran ({what}): nothing paid is lost, "
                f"the results were written against the job's own copy of the rows it sent "
                f"(row number, graded text, result) to {path}; {target.path} was not written"
            )
            s.ledger.set_job(job.id, status=JobStatus.FAILED, output_path=str(path))
            summary = summarise(job, chunks, tally, s.ledger, str(path), "failed", notes=notes)
            summary.errors.append(notes[-1])
            return summary
        with aligned_results(files, job, chunks) as results:
            replaced = write_output(
                workload.source,
                s.spec.text_column,
                s.spec.prompt,
                chunks,
                results,
                target.path,
                target.format,
            )
            tally = RowTally.of(results)
        if replaced:
            log.warning(
                "%s already has %s: the output has this run's instead.",
                workload.source.path,
                ", ".join(replaced),
            )
        failed = any(c.status in (ChunkStatus.FAILED, ChunkStatus.HALTED) for c in chunks)
        status = JobStatus.FAILED if failed else JobStatus.DONE
        s.ledger.set_job(job.id, status=status, output_path=str(target.path))
        summary = summarise(job, chunks, tally, s.ledger, str(target.path), status, notes=notes)
        errors_log = target.path.with_name(target.path.name + ".errors.log")
        if summary.errors:
            errors_log.write_text("\n".join(summary.errors) + "\n", encoding="utf-8")
        else:
            errors_log.unlink(missing_ok=True)
            if not (failed or summary.failed):
                files.remove_temporary()
        return summary

    def _finished(self, item: _Prepared, notes: list[str]) -> RunSummary:
        """A finished job whose stored results were cleaned: summarise from its graded file,
        and copy that file where this run writes (the same rows and answers)."""
        s = self.s
        job, target = item.job, item.target
        chunks = s.ledger.chunks(job.id)
        written = Path(job.output_path) if job.output_path else None
        if written is None or not written.exists():
            raise UsageError(
                f"Job {job.id} is finished, and both its stored results and its graded file "
                f"({written}) are gone.",
                hint="Pass --force to grade the file again.",
            )
        if target.path != written:
            target.path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(target.path) as tmp:
                if format_of(written) == target.format:  # the same bytes
                    shutil.copyfile(written, tmp)
                else:
                    sink_rows(scan_table(written, format_of(written)), tmp, target.format)
        tally = RowTally.of_graded_file(written, None, job.id)
        return summarise(job, chunks, tally, s.ledger, str(target.path), job.status, notes=notes)


def _job_running(ledger: Ledger, state_dir: Path, job_id: str) -> bool:
    job = ledger.job(job_id)
    return job is not None and is_running(state_dir, job.fingerprint)
