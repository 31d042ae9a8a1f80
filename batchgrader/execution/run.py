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
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from batchgrader.data.atomic import atomic_path
from batchgrader.data.formats import format_of
from batchgrader.data.reading import scan_table
from batchgrader.data.writing import sink_rows
from batchgrader.errors import (
    InputFileError,
    PilotFailed,
    UsageError,
)
from batchgrader.execution.dispatch import Dispatch
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
from batchgrader.execution.pilot import PilotReport, add_pilot_chunk, pilot_report
from batchgrader.execution.recovery import what_changed, write_recovered
from batchgrader.execution.resubmit import RetryScope, add_retry_chunks
from batchgrader.execution.reuse import remember, reused, scope_of
from batchgrader.execution.session import GradeOptions, RunReport, Session
from batchgrader.execution.summary import RowTally, RunSummary, summarise
from batchgrader.ledger.records import ChunkMode, ChunkRow, ChunkStatus, JobRow, JobStatus
from batchgrader.ledger.store import Ledger
from batchgrader.money import budget
from batchgrader.money.costs import today_cost
from batchgrader.planning.workload import Workload

log = logging.getLogger(__name__)

#: Jobs of more rows than this suggest a pilot (``--pilot``) before the batches.
SUGGEST_PILOT_ABOVE = 1_000
#: Row errors resubmitted automatically (up to ``run.max_retries_per_row`` times).
AUTO_RETRIED = ("batch_expired",)


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
        self.dispatch = Dispatch(session)
        self._created: set[str] = set()  # jobs this run created (--force replaces once)

    # --- grade ------------------------------------------------------------------------

    def grade(self, paths: list[Path], options: GradeOptions) -> RunReport:
        """Validate every file, check the budget, then grade them one after the other."""
        s = self.s
        workloads = [Workload.of(path, s.spec) for path in paths]
        prepared = self._prepare_all(workloads, options)
        if s.settings.run.pilot_rows:
            self._pilot(prepared, options)
        else:
            new = sum(p.workload.source.rows for p in prepared if p.created)
            if new > SUGGEST_PILOT_ABOVE:
                s.say(
                    f"Tip: {new:,} rows to grade. --pilot 50 checks the prompt on 50 of them "
                    "first, in a minute, and re-estimates the cost from their answers."
                )
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

    def _prepare_all(self, workloads: list[Workload], options: GradeOptions) -> list[_Prepared]:
        """Lock every file's job, then find or create each (none is left if one is refused)."""
        s = self.s
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
        return prepared

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

    def _retry_mode(self, job: JobRow) -> ChunkMode:
        """How resent rows run: as ``run.mode`` says; with ``auto``, as the job last ran
        (a job that went direct because its server has no Batch API stays direct)."""
        mode = self.s.settings.run.mode
        if mode != "auto":
            return ChunkMode(mode)
        chunks = self.s.ledger.chunks(job.id)
        return chunks[-1].mode if chunks else ChunkMode.BATCH

    def _retry(self, job: JobRow, workload: Workload, scope: RetryScope) -> None:
        s = self.s
        count = add_retry_chunks(
            s.settings,
            s.ledger,
            job,
            s.spec,
            scope=scope,
            workload=workload,
            mode=self._retry_mode(job),
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

    def _budget(
        self,
        prepared: list[_Prepared],
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
                self._forget_new(prepared)
            else:
                budget.release_reservations(s.ledger, [j.id for j in jobs])
            raise
        return check

    # --- the pilot ----------------------------------------------------------------------

    def pilot_only(self, paths: list[Path], options: GradeOptions) -> list[PilotReport]:
        """Run only the pilots of the files' jobs (``count`` / ``grade --dry-run`` with
        ``--pilot``): their answers are the jobs', and a later ``grade`` reuses them."""
        workloads = [Workload.of(path, self.s.spec) for path in paths]
        return self._run_pilots(self._prepare_all(workloads, options), options)

    def _run_pilots(self, prepared: list[_Prepared], options: GradeOptions) -> list[PilotReport]:
        s = self.s
        rows = s.settings.run.pilot_rows
        pilots: list[tuple[_Prepared, ChunkRow]] = []
        for item in prepared:
            chunk = add_pilot_chunk(
                JobFiles(s.settings, item.job.id), s.ledger, item.job, rows, s.spec.codec
            )
            if chunk is not None:
                pilots.append((item, chunk))
        todo = [c for _, c in pilots if not c.status.finished]
        self._budget(prepared, options, chunks=todo)
        return [self._run_pilot(item, chunk) for item, chunk in pilots]

    def _pilot(self, prepared: list[_Prepared], options: GradeOptions) -> None:
        """Send the pilot rows directly, show what they found, then reserve the rest at
        the measured output size (or stop, exit 2, when too few answers parsed)."""
        s = self.s
        reports = self._run_pilots(prepared, options)
        failed = [r for r in reports if not r.passed]
        if failed:
            worst = min(failed, key=lambda r: r.parse_rate)
            limit = s.settings.run.pilot_min_parse_rate
            raise PilotFailed(
                f"The pilot's answers parsed {worst.parse_rate:.0%} of the time "
                f"({worst.rows} rows; run.pilot_min_parse_rate is {limit:.0%}): nothing "
                "else was submitted.",
                hint="Read the failed answers above; fix the prompt, --schema or --max-tokens "
                "and grade again (or lower run.pilot_min_parse_rate).",
            )
        if not reports:
            self._budget(prepared, options)
            return
        mean = max(r.output_tokens.mean for r in reports)
        high = max(r.output_tokens.p95 for r in reports)
        measured = budget.Measured(expected=round(mean), worst=max(high, round(mean)))
        rest = sum(
            c.requests for p in prepared for c in s.ledger.chunks(p.job.id) if c.status.queued
        )
        expected = [r.estimate.expected_usd for r in reports if r.estimate.expected_usd]
        high_usd = [r.estimate.high_usd for r in reports if r.estimate.high_usd]
        question = (
            f"Pilot done. Submit the other {rest:,} rows"
            + (
                f" (expected ${sum(expected, Decimal(0)):.4f}, up to "
                f"${sum(high_usd, Decimal(0)):.4f})"
                if expected
                else ""
            )
            + "?"
        )
        self._budget(
            prepared, options, measured=measured, question=question, forget_on_refusal=False
        )

    def _run_pilot(self, item: _Prepared, chunk: ChunkRow) -> PilotReport:
        s = self.s
        job = item.job
        files = JobFiles(s.settings, job.id)
        if job.pilot and chunk.status.finished:
            return PilotReport.model_validate_json(job.pilot)
        s.running.append(job.id)
        started = s.clock.now()
        self.dispatch.direct(job, only={chunk.idx})
        seconds = max(s.clock.now() - started, 1e-3)
        done = s.ledger.chunk(job.id, chunk.idx)
        others = [c for c in s.ledger.chunks(job.id) if not c.status.finished]
        report = pilot_report(
            files, done, others, s.spec, seconds, s.settings.run.pilot_min_parse_rate
        )
        s.ledger.set_job(job.id, pilot=report.model_dump_json(), direct_rate=report.rows_per_second)
        job.pilot, job.direct_rate = report.model_dump_json(), report.rows_per_second
        s.on_pilot(report)
        return report

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
        summary.reused_cost = saved
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
        notes = self.dispatch.notes.setdefault(job.id, [])
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
        chunks = self.dispatch.execute(job, options)
        for _ in range(0 if options.detach else s.settings.run.max_retries_per_row):
            if not all(c.status.finished for c in chunks):
                break
            resent = add_retry_chunks(
                s.settings,
                s.ledger,
                job,
                s.spec,
                only=AUTO_RETRIED,
                workload=item.workload,
                mode=self._retry_mode(job),
            )
            if not resent:
                break
            log.warning("Resubmitting %d row(s) an expired batch did not run.", resent)
            chunks = self.dispatch.execute(job, options)
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
        lines = [line for line in summary.errors if line.strip()]
        if lines:  # one line per chunk error (docs/commands.md, "The error log")
            errors_log.write_text("\n".join(lines) + "\n", encoding="utf-8")
            summary.error_log = str(errors_log)
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
