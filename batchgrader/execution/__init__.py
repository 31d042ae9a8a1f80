"""Execution and jobs: a run from planned job to graded file.

The run (``run.Grader``, ``session.Session``) prepares jobs (``prepare``, ``jobs``,
``reuse``), hands their chunks to the executors through ``dispatch`` (the seam is
``executor``; ``batch*`` submit and collect Batch API chunks, ``direct*`` answer rows
with synchronous calls, ``pilot`` and ``deadline`` mix the two), stores row results
(``results``, ``answers``) and writes the graded file (``merge``, ``finish``).
"""
