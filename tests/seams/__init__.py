"""A second provider and a second executor, for the suite only: they prove the two seams
(``providers/base.py`` and ``execution/executor.py``) take a newcomer without a change
in the core (tests/test_seams.py)."""
