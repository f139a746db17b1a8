"""Stage `holdout`: final validation of the chosen checkpoint on the sealed holdout, read once.

Entry point: `tunestack.holdout.stage.run_holdout`.
"""
