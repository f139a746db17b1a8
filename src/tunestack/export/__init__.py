"""Stage `export`: merge the chosen checkpoint into a standalone model folder and prove it answers the same.

Entry point: `tunestack.export.stage.run_export`.
"""
