"""The run's report: `results.json` and `report.md` (`results`, `markdown`), the HTML page (`html`, `sections`,
`plots`) and the `report`, `runs` and `compare` commands (`command`).

The names below are the ones users import from `tunestack.report`; each lives in its own module.
"""

from __future__ import annotations

from tunestack.report.markdown import holdout_line, reference_lines, render_markdown
from tunestack.report.results import build_results, results_schema, write_report
from tunestack.tables import metric_title, model_rows, table_lines

__all__ = ["build_results", "holdout_line", "metric_title", "model_rows", "reference_lines", "render_markdown",
           "results_schema", "table_lines", "write_report"]
