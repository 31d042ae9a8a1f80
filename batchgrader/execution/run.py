"""A run: grade files (or resume a job) from start to graded file, in the core.

``Session`` carries what a run needs (settings, request spec, ledger, provider
transport, retry policy, clock, event sink, how to talk to the user); ``Grader`` drives
the work: prepare each file's job (``execution/prepare.py``: its lock, the job found or
created, the budgets checked and the worst case reserved in one step), run the pilot
and the executors, retry what expired, then write the graded file and summarise
(``execution/finish.py``). ``grade`` and ``jobs resume`` share this one path; the CLI
only parses flags and renders.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from pathlib import Path

from batchgrader.errors import InputFileError, PilotFailed
from batchgrader.execution.dispatch import Dispatch
from batchgrader.execution.finish import copy_finished, write_graded
from batchgrader.execution.layout import JobFiles
from batchgrader.execution.merge import aligned_results, results_kept
from batchgrader.execution.pilot import PilotReport, add_pilot_chunk, pilot_report
from batchgrader.execution.prepare import Prepared, Preparer
from batchgrader.execution.resubmit import add_retry_chunks, retry_mode
from batchgrader.execution.reuse import reused
from batchgrader.execution.session import GradeOptions, RunReport, Session
from batchgrader.execution.summary import RowTally, RunSummary, summarise
from batchgrader.ledger.records import ChunkRow, JobRow, JobStatus
from batchgrader.money import budget
from batchgrader.money.costs import today_cost
from batchgrader.planning.workload import Workload

log = logging.getLogger(__name__)

#: Jobs of more rows than this suggest a pilot (``--pilot``) before the batches.
SUGGEST_PILOT_ABOVE = 1_000
#: Row errors resubmitted automatically (up to ``run.max_retries_per_row`` times).
AUTO_RETRIED = ("batch_expired",)


class Grader:
    """Grades files, or resumes a job, in one session."""

    def __init__(self, session: Session) -> None:
        self.s = session
        self.dispatch = Dispatch(session)
        self.preparer = Preparer(session)

    # --- grade ------------------------------------------------------------------------

    def grade(self, paths: list[Path], options: GradeOptions) -> RunReport:
        """Validate every file, check the budget, then grade them one after the other."""
        s = self.s
        workloads = [Workload.of(path, s.spec) for path in paths]
        prepared = self.preparer.prepare_all(workloads, options)
        if s.settings.run.pilot_rows:
            self._pilot(prepared, options)
        else:
            new = sum(p.workload.source.rows for p in prepared if p.created)
            if new > SUGGEST_PILOT_ABOVE:
                s.say(
                    f"Tip: {new:,} rows to grade. --pilot 50 checks the prompt on 50 of them "
                    "first, in a minute, and re-estimates the cost from their answers."
                )
            self.preparer.reserve(prepared, options)
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
        self.preparer.lock(job.fingerprint, f"Job {job.id}", options)
        fresh = s.ledger.job(job.id)
        assert fresh is not None
        job = fresh
        if options.retry is not None:
            self.preparer.retry(job, workload, options.retry)
            job = s.ledger.job(job.id) or job
        target = self.preparer.target(workload, job, options)
        item = Prepared(workload, job, target, created=False)
        self.preparer.reserve([item], options)
        if job.status is not JobStatus.DONE:
            s.ledger.set_job(job.id, status=JobStatus.RUNNING)
            job.status = JobStatus.RUNNING
        report = RunReport(files=[self._run(item, options)])
        report.today_cost = today_cost(s.ledger)
        return report

    # --- the pilot ----------------------------------------------------------------------

    def pilot_only(self, paths: list[Path], options: GradeOptions) -> list[PilotReport]:
        """Run only the pilots of the files' jobs (``count`` / ``grade --dry-run`` with
        ``--pilot``): their answers are the jobs', and a later ``grade`` reuses them."""
        workloads = [Workload.of(path, self.s.spec) for path in paths]
        return self._run_pilots(self.preparer.prepare_all(workloads, options), options)

    def _run_pilots(self, prepared: list[Prepared], options: GradeOptions) -> list[PilotReport]:
        s = self.s
        rows = s.settings.run.pilot_rows
        pilots: list[tuple[Prepared, ChunkRow]] = []
        for item in prepared:
            chunk = add_pilot_chunk(
                JobFiles(s.settings, item.job.id), s.ledger, item.job, rows, s.spec.codec
            )
            if chunk is not None:
                pilots.append((item, chunk))
        todo = [c for _, c in pilots if not c.status.finished]
        self.preparer.reserve(prepared, options, chunks=todo)
        return [self._run_pilot(item, chunk) for item, chunk in pilots]

    def _pilot(self, prepared: list[Prepared], options: GradeOptions) -> None:
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
            self.preparer.reserve(prepared, options)
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
        self.preparer.reserve(
            prepared, options, measured=measured, question=question, forget_on_refusal=False
        )

    def _run_pilot(self, item: Prepared, chunk: ChunkRow) -> PilotReport:
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

    # --- running ------------------------------------------------------------------------

    def _run(self, item: Prepared, options: GradeOptions) -> RunSummary:
        summary = self._drive(item, options)
        summary.input = str(item.workload.source.path.resolve())  # (a copy: not the job's)
        files = JobFiles(self.s.settings, item.job.id)
        rows, saved = reused(files, self.s.ledger.chunks(item.job.id), self.s.spec.price)
        summary.reused = rows
        summary.reused_cost = saved
        return summary

    def _drive(self, item: Prepared, options: GradeOptions) -> RunSummary:
        s = self.s
        job, target = item.job, item.target
        files = JobFiles(s.settings, job.id)
        chunks = s.ledger.chunks(job.id)
        notes = self.dispatch.notes.setdefault(job.id, [])
        if item.reused_from is not None:
            notes.append(f"re-used the results of job {job.id}, graded from {item.reused_from}")
        if job.status is JobStatus.DONE and not results_kept(files, chunks):
            return copy_finished(s, item, notes)
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
                mode=retry_mode(s.settings, s.ledger, job),
            )
            if not resent:
                break
            log.warning("Resubmitting %d row(s) an expired batch did not run.", resent)
            chunks = self.dispatch.execute(job, options)
        if not all(c.status.finished for c in chunks):
            return summarise(job, chunks, None, s.ledger, None, "submitted", notes=notes)
        return write_graded(s, item, chunks, notes)
