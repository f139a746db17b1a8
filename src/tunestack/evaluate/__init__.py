"""Stage `evaluate`: task accuracy, format compliance and general retention for the base model and every checkpoint.

Entry point: `tunestack.evaluate.stage.run_evaluate`. `metrics` is pure (no torch); `generate` and `retention`
need the model stack.
"""
