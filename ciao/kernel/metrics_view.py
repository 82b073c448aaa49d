"""A job's metrics in the cell: the live view's part (each replica's latest values in its
row, a chart per metric under the table) and `%metrics`'s tables and columns.

Pure rendering of backend/metrics.Metrics, bounded whatever the job prints: ROW_METRICS
values in a row, CHARTS charts of CHART_REPLICAS lines, LISTED more metrics by name, and
HISTORY_ROWS rows of history in `%metrics`'s table (its columns hold every kept point).

The charts overlay the replicas that report a metric, the primary replica's line on top:
in data-parallel training each replica reports its own shard's loss, and one that drifts
from the others is what a chart should show; past a few lines a sparkline is a tangle, so
the primary replica and the next few are drawn and the view says how many more report it.
"""

from __future__ import annotations

import html
import math
from typing import Any

from ciao.backend.metrics import MAX_NAMES, Metrics, Series

#: Metrics shown in a replica's row of the live view.
ROW_METRICS = 3
#: Metrics charted under the table, and replicas drawn in each chart.
CHARTS = 4
CHART_REPLICAS = 4
CHART_WIDTH, CHART_HEIGHT = 200, 40
#: Metrics past the charted ones named (with the primary replica's latest value).
LISTED = 12
#: Rows of history `%metrics` prints (the first and the last half); its columns have all.
HISTORY_ROWS = 200
#: Rows the session's columns hold at most (the latest ones).
COLUMN_ROWS = 100_000
#: Names of counters: shown with the values, never charted (a chart of a count says nothing).
COUNTERS = frozenset(
    {"epoch", "epochs", "step", "steps", "global_step", "iteration", "iter", "batch"}
)
#: Line colours, the primary replica's first: legible on light and dark themes.
COLOURS = ("#0969da", "#bf3989", "#9a6700", "#1a7f37")
_MUTED = "color:#57606a"
_TH = "text-align:left;padding:2px 8px"
_TD = "padding:2px 8px;text-align:left;white-space:nowrap"
_NUM = "padding:2px 8px;text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums"


def number(value: float) -> str:
    """A value in a few characters: 0.42, 3, 19999, 1.235e+09, -7.53e-05, inf (a count
    stays whole up to a million; anything else has 4 significant digits)."""
    if math.isnan(value):
        return "-"
    if value.is_integer() and abs(value) < 1e7:
        return str(int(value))
    return f"{value:.4g}"


def ordered(metrics: Metrics) -> list[str]:
    """The names as shown: the job's metrics in the order first seen, counters last."""
    names = metrics.names()
    return [n for n in names if not is_counter(n)] + [n for n in names if is_counter(n)]


def is_counter(name: str) -> bool:
    return name.lower() in COUNTERS


def reporting(metrics: Metrics, name: str) -> list[tuple[str, Series]]:
    """The replicas that report `name`, the primary replica first."""
    by_replica = metrics.series.get(name, {})
    return [(r, by_replica[r]) for r in metrics.replicas() if r in by_replica]


# ---- the live view -------------------------------------------------------------------


def row_values(metrics: Metrics, replica: str) -> str:
    """`epoch=3 loss=0.42 accuracy=0.91`: the replica's latest values of the first
    ROW_METRICS metrics it reports, in the order and the form the job prints them."""
    parts = []
    for name in metrics.names():
        series = metrics.of(name, replica)
        if series is not None:
            parts.append(f"{name}={number(series.latest)}")
            if len(parts) == ROW_METRICS:
                break
    return " ".join(parts)


def _charted(metrics: Metrics) -> tuple[list[str], list[str]]:
    """The metrics charted, and the rest (counters among them)."""
    names = ordered(metrics)
    charted = [n for n in names if not is_counter(n)][:CHARTS]
    return charted, [n for n in names if n not in charted]


def _listed(metrics: Metrics, names: list[str]) -> tuple[list[tuple[str, str, str]], int]:
    """(name, primary replica, its latest value) of the first LISTED of `names`, and how
    many more there are."""
    shown = []
    for name in names[:LISTED]:
        replica, series = reporting(metrics, name)[0]
        shown.append((name, replica, number(series.latest)))
    return shown, max(0, len(names) - LISTED)


def _more(extra: int, dropped: int, job: str) -> str:
    """What the compact list leaves out, and where it is."""
    notes = [f"+{extra} more: %metrics {job} lists them"] if extra else []
    if dropped:
        notes.append(f"names past the first {MAX_NAMES} are not kept")
    return f" ({'; '.join(notes)})" if notes else ""


def text_section(metrics: Metrics, job: str) -> list[str]:
    """Lines under the table: a metric a line (its primary replica's history as blocks,
    latest, min, max, how many values; the other replicas' latest), then the others."""
    from ciao.kernel.sparkline import blocks

    charted, rest = _charted(metrics)
    width = max((len(n) for n in charted), default=0)
    lines = []
    for name in charted:
        (primary, series), *others = reporting(metrics, name)
        line = (
            f"{name.ljust(width)}  {blocks(series.points)}  {number(series.latest)}  "
            f"(min {number(series.min)}, max {number(series.max)}; "
            f"{_count(series.count, 'value')} of {primary})"
        )
        shown = others[: CHART_REPLICAS - 1]
        if shown:
            line += "  " + ", ".join(f"{r} {number(s.latest)}" for r, s in shown)
        if len(others) > len(shown):
            line += f" (+{len(others) - len(shown)} replicas)"
        lines.append(line)
    listed, extra = _listed(metrics, rest)
    if listed or metrics.dropped:
        values = " ".join(f"{name}={value}" for name, _, value in listed)
        lines.append(f"+ {values}{_more(extra, metrics.dropped, job)}".rstrip())
    return lines


def html_section(metrics: Metrics, job: str) -> str:
    """Under the table: a card per charted metric (its name, the primary replica's latest
    value and range, the chart, and which line is which replica when several report
    it), then the others' latest values in a line."""
    from ciao.kernel.sparkline import svg

    e = html.escape
    charted, rest = _charted(metrics)
    cards = []
    for name in charted:
        replicas = reporting(metrics, name)
        drawn = replicas[:CHART_REPLICAS]
        primary, series = replicas[0]
        lines = [(list(s.history()), COLOURS[i]) for i, (_, s) in enumerate(drawn)]
        label = f"{name} of {primary}: {series.count} values, latest {number(series.latest)}"
        legend = ""
        if len(replicas) > 1:
            legend = " ".join(
                f"<span style='color:{COLOURS[i]};white-space:nowrap'>■ {e(r)} "
                f"{e(number(s.latest))}</span>"
                for i, (r, s) in enumerate(drawn)
            )
            if len(replicas) > len(drawn):
                legend += f" <span style='{_MUTED}'>+{len(replicas) - len(drawn)}</span>"
            legend = f"<div style='font-size:85%'>{legend}</div>"
        cards.append(
            "<div style='min-width:200px'>"
            f"<div style='white-space:nowrap'><b>{e(name)}</b> "
            f"<span style='color:{COLOURS[0]}'>{e(number(series.latest))}</span> "
            f"<span style='{_MUTED};font-size:85%'>min {e(number(series.min))} · "
            f"max {e(number(series.max))} · {e(_count(series.count, 'value'))}</span></div>"
            f"{svg(lines, width=CHART_WIDTH, height=CHART_HEIGHT, label=label)}{legend}</div>"
        )
    listed, extra = _listed(metrics, rest)
    more = ""
    if listed or metrics.dropped:
        values = " · ".join(f"{e(name)} <b>{e(value)}</b>" for name, _, value in listed)
        values += e(_more(extra, metrics.dropped, job))
        more = f"<div style='{_MUTED};font-size:85%;margin:0 8px'>{values}</div>"
    flex = "display:flex;flex-wrap:wrap;gap:4px 20px;margin:6px 8px 2px"
    return (f"<div style='{flex}'>{''.join(cards)}</div>" if cards else "") + more


# ---- %metrics ------------------------------------------------------------------------


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
    what = f"metric {name}" if name is not None else _count(len(names), "metric")
    head = (
        f"{job}: {what} of {_count(len({r[0] for r in summary}), 'replica')}; "
        f"history of {_count(total, 'row')} (step n: a replica's n-th value of the metric)"
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
        + "".join(f"<div style='{_MUTED}'>{e(n)}</div>" for n in notes)
    )
    return {"text/plain": text, "text/html": f"<div class='ciao-metrics'>{body}</div>"}


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" + ("" if n == 1 else "s")


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
        body.insert(gap, f"<tr><td colspan='{len(header)}' style='{_TD};{_MUTED}'>…</td></tr>")
    return (
        "<table style='border-collapse:collapse;font-size:90%;margin:4px 0 8px'>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )
