"""`%metrics NAME [metric]`: a job's metrics as tables (a summary per replica and metric,
then the history, bounded), and its history as columns for the session (`pd.DataFrame`).
Pure rendering of backend/metrics.Metrics."""

from __future__ import annotations

import html
import math
from typing import Any

from ciao.backend.metrics import MAX_NAMES, Metrics
from ciao.kernel.metrics_view import MUTED, count, number

#: Rows of history `%metrics` prints (the first and the last half); its columns have all.
HISTORY_ROWS = 200
#: Rows the session's columns hold at most (the latest ones).
COLUMN_ROWS = 100_000
_TH = "text-align:left;padding:2px 8px"
_TD = "padding:2px 8px;text-align:left;white-space:nowrap"
_NUM = "padding:2px 8px;text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums"


def summary_rows(metrics: Metrics, name: str | None = None) -> list[list[str]]:
    """Per replica (the primary first) and metric (as first seen): count, min, max,
    latest."""
    names = [name] if name is not None else metrics.names()
    return [
        [replica, metric, f"{series.count:,}", number(series.min), number(series.max)]
        + [number(series.latest)]
        for replica in metrics.replicas()
        for metric in names
        if (series := metrics.of(metric, replica)) is not None
    ]


def columns(metrics: Metrics, name: str | None = None) -> tuple[dict[str, list[Any]], int]:
    """The history as columns (replica, step, name, value: what `pd.DataFrame` takes),
    the latest COLUMN_ROWS rows; and how many rows were left out."""
    rows = metrics.rows(name)
    cut = max(0, len(rows) - COLUMN_ROWS)
    rows = rows[cut:]
    return {
        "replica": [replica for _, replica, _, _ in rows],
        "step": [step for step, _, _, _ in rows],
        "name": [metric for _, _, metric, _ in rows],
        "value": [value for _, _, _, value in rows],
    }, cut


def session_code(job: str, data: dict[str, list[Any]]) -> str:
    """Python that evaluates to `data` (its floats exactly, inf included), headed by the
    command it came from: what the session runs so `_` and Out[n] hold the columns."""

    def literal(value: Any) -> str:
        if isinstance(value, float) and not math.isfinite(value):
            return f"float({str(value)!r})"
        return repr(value)

    body = ",\n ".join(
        f"{key!r}: [{', '.join(map(literal, values))}]" for key, values in data.items()
    )
    return f"# %metrics {job}: its metrics as columns (pd.DataFrame(_))\n{{{body}}}"


def metrics_table(
    job: str, metrics: Metrics, name: str | None = None, in_session: bool = False
) -> dict[str, str]:
    """`%metrics`: a summary row per replica and metric, then the history (step, replica,
    metric, value; the first and last HISTORY_ROWS / 2 rows), as text and HTML."""
    summary = summary_rows(metrics, name)
    history = [
        [f"{step:,}", replica, metric, number(value)]
        for step, replica, metric, value in metrics.rows(name)
    ]
    total = len(history)
    gap = None
    if total > HISTORY_ROWS:
        half = HISTORY_ROWS // 2
        gap = half
        history = history[:half] + history[-half:]
    names = [name] if name is not None else metrics.names()
    what = f"metric {name}" if name is not None else count(len(names), "metric")
    head = (
        f"{job}: {what} of {count(len({r[0] for r in summary}), 'replica')}; "
        f"history of {count(total, 'row')} (step n: a replica's n-th value of the metric)"
    )
    if in_session:
        note = "In the session, _ (and Out[n]) holds the history as columns: pd.DataFrame(_)"
    else:
        note = "With the session on, %metrics leaves the history as columns in _ (pd.DataFrame(_))"
    notes = []
    if gap is not None:
        notes.append(f"{total - HISTORY_ROWS:,} rows of history not shown here")
    if metrics.dropped:
        notes.append(f"{metrics.dropped:,} values of metrics past the first {MAX_NAMES} not kept")
    notes.append(note)
    summary_head = ["REPLICA", "METRIC", "COUNT", "MIN", "MAX", "LATEST"]
    history_head = ["STEP", "REPLICA", "METRIC", "VALUE"]
    text = "\n".join(
        [
            head,
            "",
            *_text_table(summary_head, summary, numeric=(2, 3, 4, 5)),
            "",
            *_text_table(history_head, history, numeric=(0, 3), gap=gap),
            "",
            *(f"({n})" for n in notes),
        ]
    )
    e = html.escape
    body = (
        f"<div><b>{e(job)}</b>: {e(head.split(': ', 1)[1])}</div>"
        + _html_table(summary_head, summary, numeric=(2, 3, 4, 5))
        + _html_table(history_head, history, numeric=(0, 3), gap=gap)
        + "".join(f"<div style='{MUTED}'>{e(n)}</div>" for n in notes)
    )
    return {"text/plain": text, "text/html": f"<div class='ciao-metrics'>{body}</div>"}


def _text_table(
    header: list[str], rows: list[list[str]], numeric: tuple[int, ...], gap: int | None = None
) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = [
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(padded).rstrip()

    lines = [line(header)] + [line(r) for r in rows]
    if gap is not None:
        lines.insert(gap + 1, "…")
    return lines


def _html_table(
    header: list[str], rows: list[list[str]], numeric: tuple[int, ...], gap: int | None = None
) -> str:
    e = html.escape
    head = "".join(
        f"<th style='{_TH};text-align:{'right' if i in numeric else 'left'}'>{h.lower()}</th>"
        for i, h in enumerate(header)
    )
    body = [
        "<tr>"
        + "".join(
            f"<td style='{_NUM if i in numeric else _TD}'>{e(c)}</td>" for i, c in enumerate(r)
        )
        + "</tr>"
        for r in rows
    ]
    if gap is not None:
        body.insert(gap, f"<tr><td colspan='{len(header)}' style='{_TD};{MUTED}'>…</td></tr>")
    return (
        "<table style='border-collapse:collapse;font-size:90%;margin:4px 0 8px'>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )
