"""Batch evaluation of checkpoints into Parquet, and rejection sampling for distillation data.

``rewardgym eval`` / ``rewardgym sample`` (see ``cli``); from code, ``run(Settings(...), out)``
gives the rows and ``scores(rows)`` the summary. Generating needs torch; scoring a completions
file does not.
"""

from .metrics import majority_correct, pass_at_k, summarise
from .report import scores
from .runner import Settings, run
from .sample import select

__all__ = ["Settings", "majority_correct", "pass_at_k", "run", "scores", "select", "summarise"]
