"""`export:` the chosen checkpoint merged into a standalone model folder."""

from __future__ import annotations

from tunestack.config.base import Section


class ExportSection(Section):
    enabled: bool = True
    """Merge the chosen checkpoint into a standalone model folder."""
    verify: bool = True
    """Check that the merged model's greedy outputs on the eval set equal the adapter's."""
