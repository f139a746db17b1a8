"""Stage `prepare`: read and validate input rows, render them with the model's template, split them.

Entry point: `tunestack.data.prepare.run_prepare`.
"""
