"""Stage `select`: choose the checkpoint on a weighted score with floors, never on training loss.

Pure: no torch, no disk. Entry point: `tunestack.select.choose.choose`.
"""
