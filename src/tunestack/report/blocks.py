"""The HTML building blocks of the report page: escaping, percentages and intervals, tables, figures and headline
figures. Every text taken from a run passes through `esc`.
"""

from __future__ import annotations

import html


class Html(str):
    """Text that is already HTML: `table` leaves it unescaped."""


def esc(value) -> str:
    return value if isinstance(value, Html) else html.escape(str(value), quote=True)


def pct(value, digits: int = 1) -> str:
    """A share as a percentage; '-' when absent.

    >>> pct(0.6543), pct(None)
    ('65.4%', '-')
    """
    return "-" if value is None else f"{value:.{digits}%}"


def gain(value) -> str:
    """A difference of shares in points, signed; '-' when absent.

    >>> gain(-0.0133), gain(None)
    ('-1.3', '-')
    """
    return "-" if value is None else f"{100 * value:+.1f}"


def points(interval) -> str:
    """A 95% interval of a difference of shares, in points.

    >>> points([-0.031, 0.052]), points(None)
    ('-3.1 to +5.2', '-')
    """
    return f"{100 * interval[0]:+.1f} to {100 * interval[1]:+.1f}" if interval else "-"


def ci(interval) -> str:
    """A 95% interval of shares, or nothing."""
    return f" ({interval[0]:.0%}-{interval[1]:.0%})" if interval else ""


def table(header: list[str], rows: list[list], marked: list[bool] | None = None, numeric_from: int = 1) -> str:
    """An HTML table; cells are escaped unless `Html`; a marked row is highlighted (the selected model)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = []
    for i, cells in enumerate(rows):
        row_class = ' class="mark"' if marked and marked[i] else ""
        tds = "".join(f'<td{" class=num" if j >= numeric_from and numeric(c) else ""}>{esc(c)}</td>'
                      for j, c in enumerate(cells))
        body.append(f"<tr{row_class}>{tds}</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def numeric(cell) -> bool:
    """A short figure (kept on one line), not prose (which wraps)."""
    text = str(cell)
    return len(text) < 32 and (text[:1].isdigit() or text[:1] in "-+$")


def figure(svg: str, caption: str) -> str:
    return f'<figure>{svg}<figcaption>{esc(caption)}</figcaption></figure>'


def stat(label: str, value: str, note: str = "") -> str:
    """One headline figure: a label, a large value, a note under it."""
    return (f'<div class="stat"><div class="label">{esc(label)}</div><div class="value">{esc(value)}</div>'
            f'<div class="note">{esc(note)}</div></div>')
