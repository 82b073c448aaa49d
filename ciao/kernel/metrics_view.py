"""A job's metrics in the live view: each replica's latest values in its row, a chart per
metric under the table (`%metrics`' tables are metrics_table.py's).

Pure rendering of backend/metrics.Metrics, bounded whatever the job prints: ROW_METRICS
values in a row, CHARTS charts of CHART_REPLICAS lines, LISTED more metrics by name.

The charts overlay the replicas that report a metric, the primary replica's line on top:
in data-parallel training each replica reports its own shard's loss, and one that drifts
from the others is what a chart should show; past a few lines a sparkline is a tangle, so
the primary replica and the next few are drawn and the view says how many more report it.
"""

from __future__ import annotations

import html
import math

from ciao.backend.metrics import MAX_NAMES, Metrics, Series

#: Metrics shown in a replica's row of the live view.
ROW_METRICS = 3
#: Metrics charted under the table, and replicas drawn in each chart.
CHARTS = 4
CHART_REPLICAS = 4
CHART_WIDTH, CHART_HEIGHT = 200, 40
#: Metrics past the charted ones named (with the primary replica's latest value).
LISTED = 12
#: Names of counters: shown with the values, never charted (a chart of a count says nothing).
COUNTERS = frozenset(
    {"epoch", "epochs", "step", "steps", "global_step", "iteration", "iter", "batch"}
)
#: Line colours, the primary replica's first: legible on light and dark themes.
COLOURS = ("#0969da", "#bf3989", "#9a6700", "#1a7f37")
MUTED = "color:#57606a"


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
            f"{count(series.count, 'value')} of {primary})"
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
                legend += f" <span style='{MUTED}'>+{len(replicas) - len(drawn)}</span>"
            legend = f"<div style='font-size:85%'>{legend}</div>"
        cards.append(
            "<div style='min-width:200px'>"
            f"<div style='white-space:nowrap'><b>{e(name)}</b> "
            f"<span style='color:{COLOURS[0]}'>{e(number(series.latest))}</span> "
            f"<span style='{MUTED};font-size:85%'>min {e(number(series.min))} · "
            f"max {e(number(series.max))} · {e(count(series.count, 'value'))}</span></div>"
            f"{svg(lines, width=CHART_WIDTH, height=CHART_HEIGHT, label=label)}{legend}</div>"
        )
    listed, extra = _listed(metrics, rest)
    more = ""
    if listed or metrics.dropped:
        values = " · ".join(f"{e(name)} <b>{e(value)}</b>" for name, _, value in listed)
        values += e(_more(extra, metrics.dropped, job))
        more = f"<div style='{MUTED};font-size:85%;margin:0 8px'>{values}</div>"
    flex = "display:flex;flex-wrap:wrap;gap:4px 20px;margin:6px 8px 2px"
    return (f"<div style='{flex}'>{''.join(cards)}</div>" if cards else "") + more


def count(n: int, noun: str) -> str:
    """`1 value`, `3 values`."""
    return f"{n:,} {noun}" + ("" if n == 1 else "s")
