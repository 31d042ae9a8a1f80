"""Can the judge be trusted? ``batchgrader report`` on a graded file.

- ``graded``: reading a graded file and finding its answer fields (score, schema fields);
- ``job``: what the ledger knows about the job that wrote it (scale, schema, cost);
- ``agreement``: the agreement metrics, from the table of (label, judge) pair counts;
- ``bootstrap``: seeded bootstrap intervals of those metrics;
- ``labels``: checking a label column and comparing the judge with it;
- ``build``: putting a ``JudgeReport`` together;
- ``run``: the agreement lines of ``grade --labels``;
- ``model``: the result models.

The core never prints: renderers in ``batchgrader.render.report`` and
``batchgrader.render.report_html`` draw the models.
"""

from __future__ import annotations

from batchgrader.report.build import build_report
from batchgrader.report.model import Agreement, JudgeReport

__all__ = ["Agreement", "JudgeReport", "build_report"]
