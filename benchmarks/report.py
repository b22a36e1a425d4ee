"""Numbers measured by the benchmarks and the summary table ``scripts/bench`` ends with.

A benchmark records each measured figure with its target; the table marks the line
PASS when the target is met and MISS when it is not. A MISS is information, not a
failure: a benchmark only fails when something it drives breaks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Row:
    """One line of the summary table."""

    benchmark: str
    measure: str
    value: str
    target: str
    verdict: str
    """``PASS``, ``MISS`` or ``info`` (a figure without a target)."""


ROWS: list[Row] = []
"""Every row recorded in this run, in order."""


def record(
    benchmark: str,
    measure: str,
    value: float,
    unit: str = "",
    *,
    target: float | None = None,
    better: Callable[[float, float], bool] | None = None,
    target_text: str | None = None,
    fmt: str = ".2f",
) -> Row:
    """Record ``value`` (printed with ``fmt`` and ``unit``) against an optional target.

    ``better(value, target)`` tells whether the target is met; it defaults to
    ``value <= target``. Without a target the row is informational.
    """
    text = f"{value:{fmt}}{(' ' + unit) if unit else ''}"
    if target is None:
        row = Row(benchmark, measure, text, target_text or "-", "info")
    else:
        met = (better or (lambda v, t: v <= t))(value, target)
        shown = target_text or f"<= {target:{fmt}}{(' ' + unit) if unit else ''}"
        row = Row(benchmark, measure, text, shown, "PASS" if met else "MISS")
    ROWS.append(row)
    return row


def table(rows: list[Row]) -> str:
    """Return ``rows`` as an aligned plain-text table."""
    header = Row("benchmark", "measure", "value", "target", "result")
    cells = [header, *rows]
    widths = [
        max(len(getattr(row, name)) for row in cells)
        for name in ("benchmark", "measure", "value", "target", "verdict")
    ]

    def line(row: Row) -> str:
        values = (row.benchmark, row.measure, row.value, row.target, row.verdict)
        return "  ".join(
            value.ljust(width) for value, width in zip(values, widths, strict=True)
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows)])
