"""Stage `evaluate`: task metrics, format compliance and general retention for the base model and every checkpoint.

Entry point: `tunestack.evaluate.stage.run_evaluate`. `core` is what other stages measure a model with (the suites,
one model's evaluation, the result cache); `metrics` and `registry` (the metric registry and the format check) are
pure (no torch); `generate` and `retention` need the model stack.
"""
