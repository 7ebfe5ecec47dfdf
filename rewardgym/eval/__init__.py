"""Batch evaluation of checkpoints into Parquet, and rejection sampling for distillation data.

``rewardgym eval`` / ``rewardgym sample`` (``cli``). From code: ``runner.run(Settings(...), out)``
gives the rows, ``report.scores(rows)`` the summary, ``sample.select(rows)`` the SFT pairs, and
``metrics`` the estimators. Nothing is imported here, so the CLI's parser stays light; generating
needs torch, scoring a completions file does not.
"""
