"""The live job view: one table per job, a row per replica, updated in place.

Pure rendering: `JobView.apply(event)` folds the backend's events into rows, and
`bundle()` renders them as `text/plain` (nbconvert, papermill, terminals) and
`text/html` (JupyterLab, Notebook). The kernel publishes the bundle as `display_data`
with a `display_id` and re-publishes it with `update_display_data`.

Lines in Katib's metric format (`epoch=3 loss=0.42`) are metrics: once a job prints one,
each row shows its replica's latest values and a chart per metric follows the table
(metrics_view.py).
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, field
from typing import cast

from ciao.backend.metrics import Metrics
from ciao.backend.types import (
    Diagnosis,
    Event,
    Job,
    JobDone,
    JobInfo,
    LogLine,
    LogLines,
    Progress,
    ReplicaState,
)
from ciao.interpreter.types import Framework
from ciao.kernel.lastline import PERCENT, fit, is_progress, progress_parts
from ciao.kernel.metrics_view import html_section, row_values, text_section
from ciao.names import label_value

#: Longest last-log-line shown in a row of text/plain (the full line is in the stream
#: below); the HTML view gives it what the other columns leave, up to HTML_LINE_WIDTH.
LAST_LINE_WIDTH = 60
HTML_LINE_WIDTH = 300
#: The widest the metrics column of the HTML table gets (its values are clipped there,
#: and all in its tooltip; the charts below have them too).
METRICS_WIDTH = "18em"
#: Cells of the HTML table other than the last line: one line each, never wrapped (a long
#: last line made JupyterLab wrap them: "master-/0", "pid/6050").
_TD = "padding:2px 8px;text-align:left;white-space:nowrap"
#: The last line's cell takes the rest of the width (max-width:0 lets it shrink to it).
_LAST_TD = "padding:2px 8px;text-align:left;width:100%;max-width:0;font-family:monospace"
_CLIP = "overflow:hidden;text-overflow:ellipsis;white-space:pre;min-width:0"
_STATE_COLOURS = {
    "Running": "#1a7f37",
    "Succeeded": "#1a7f37",
    "Pending": "#9a6700",
    "Suspended": "#9a6700",
    "Failed": "#cf222e",
    "Cancelled": "#cf222e",
    "Lost": "#cf222e",
    "Stopped": "#57606a",
    "Deleted": "#57606a",
}


@dataclass
class Row:
    replica: str
    phase: str = "Pending"
    reason: str = ""
    restarts: int = 0
    where: str = ""
    started: float | None = None
    last_line: str = ""
    #: The percentage of the replica's open progress line, when it shows one.
    percent: int | None = None
    #: The last line is an open progress line (rewritten with `\r`).
    progress: bool = False


@dataclass
class JobView:
    """What the table shows of one job; `apply` returns whether anything visible changed."""

    job: Job
    submitted: float = field(default_factory=time.monotonic)
    rows: dict[str, Row] = field(default_factory=dict)
    diagnoses: dict[tuple[str, str], str] = field(default_factory=dict)
    state: str = "Submitted"
    message: str = ""
    ended: float | None = None
    #: The metrics of the lines it saw (final lines: a progress line's rewrites are not).
    metrics: Metrics = field(default_factory=Metrics)

    @property
    def kind(self) -> str:
        return {"pytorch": "PyTorch job", "tensorflow": "TensorFlow job"}.get(
            self.job.framework, "job"
        )

    @property
    def location(self) -> str:
        return self.job.location or self.job.backend

    def __post_init__(self) -> None:
        for role, count in self.job.replicas.items():
            for index in range(count):
                name = f"{role}-{index}"
                self.rows[name] = Row(name)

    def apply(self, event: Event, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        if isinstance(event, Progress):
            row = self._row(event.replica)
            row.last_line, row.progress = event.text, True
            found = PERCENT.findall(event.text)
            row.percent = min(100, int(found[-1])) if found else None
            return True
        if isinstance(event, LogLine | LogLines):
            row = self._row(event.replica)
            if isinstance(event, LogLines):
                last = event.lines[-1]
                self.metrics.add_lines(event.replica, event.lines)
            else:
                last = event.text
                self.metrics.add_line(event.replica, event.text)
            row.last_line, row.percent, row.progress = last, None, False
            return True
        if isinstance(event, ReplicaState):
            row = self._row(event.replica)
            if event.phase == "Running" and row.started is None:
                row.started = now
            row.phase, row.reason, row.restarts = event.phase, event.reason, event.restarts
            row.where = event.where or row.where
            if self.state == "Submitted" and event.phase == "Running":
                self.state = "Running"
            return True
        if isinstance(event, Diagnosis):
            if event.resolved:
                self.diagnoses.pop((event.replica, event.reason), None)
            else:
                self.diagnoses[(event.replica, event.reason)] = event.hint
            return True
        if isinstance(event, JobDone):
            self.state = event.state
            self.message = event.message
            self.ended = now
            return True
        return False

    def _row(self, replica: str) -> Row:
        if replica not in self.rows:
            self.rows[replica] = Row(replica)
        return self.rows[replica]

    # ---- rendering -------------------------------------------------------------------

    def bundle(self, now: float | None = None) -> dict[str, str]:
        now = time.monotonic() if now is None else now
        return {"text/plain": self.text(now), "text/html": self.html(now)}

    def _cells(self, row: Row, now: float, width: int = LAST_LINE_WIDTH) -> list[str]:
        """The row's cells; a metrics column before the last line once there are any."""
        age = _duration((self.ended or now) - row.started) if row.started is not None else "-"
        last = fit(row.last_line, width, row.progress)
        cells = [row.replica, row.phase, row.reason, str(row.restarts), row.where, age]
        if self.metrics.series:
            cells.append(row_values(self.metrics, row.replica))
        return [*cells, last]

    def _header(self) -> list[str]:
        header = ["REPLICA", "PHASE", "REASON", "RESTARTS", "WHERE", "AGE"]
        return header + (["METRICS"] if self.metrics.series else []) + ["LAST LINE"]

    def headline(self, now: float) -> str:
        elapsed = _duration((self.ended or now) - self.submitted)
        where = f" on {self.location}" if self.location else ""
        line = f"{self.job.name}  {self.kind}{where}  {self.state}  {elapsed}"
        return f"{line}  {self.message}" if self.message and self.state != "Running" else line

    def text(self, now: float) -> str:
        header = self._header()
        rows = [header] + [self._cells(row, now) for row in self.rows.values()]
        widths = [max(len(r[i]) for r in rows) for i in range(len(header) - 1)]
        lines = [self.headline(now)]
        for cells in rows:
            padded = [c.ljust(w) for c, w in zip(cells[:-1], widths, strict=True)] + [cells[-1]]
            lines.append("  ".join(padded).rstrip())
        if self.metrics.series:
            lines += text_section(self.metrics, self.job.name)
        for (replica, reason), hint in self.diagnoses.items():
            lines.append(f"! {replica} {reason}: {hint}")
        return "\n".join(lines)

    def html(self, now: float) -> str:
        colour = _STATE_COLOURS.get(self.state, "inherit")
        e = html.escape
        head = "".join(f"<th style='{_TD}'>{h.lower()}</th>" for h in self._header()[:-1])
        head += f"<th style='{_LAST_TD}'>last line</th>"
        body = []
        for row in self.rows.values():
            cells = self._cells(row, now, HTML_LINE_WIDTH)
            phase_colour = _STATE_COLOURS.get(row.phase, "inherit")
            tds = [
                f"<td style='{_TD};color:{phase_colour}'>{e(c)}</td>"
                if i == 1
                else f"<td style='{_TD}'>{e(c)}</td>"
                for i, c in enumerate(cells[:-1])
            ]
            if self.metrics.series:  # clipped: the last line keeps its room
                values = e(cells[-2])
                tds[-1] = (
                    f"<td style='{_TD}' title='{values}'><div style='{_CLIP};"
                    f"max-width:{METRICS_WIDTH}'>{values}</div></td>"
                )
            tds.append(_last_line_td(cells[-1], row))
            body.append("<tr>" + "".join(tds) + "</tr>")
        notes = "".join(
            f"<li><b>{e(replica)}</b> {e(reason)}: {e(hint)}</li>"
            for (replica, reason), hint in self.diagnoses.items()
        )
        elapsed = _duration((self.ended or now) - self.submitted)
        where = f" on {e(self.location)}" if self.location else ""
        message = f" — {e(self.message)}" if self.message and self.state != "Running" else ""
        return (
            "<div class='ciao-job'>"
            f"<div><b>{e(self.job.name)}</b> {e(self.kind)}{where} · "
            f"<b style='color:{colour}'>{e(self.state)}</b> · {elapsed}{message}</div>"
            "<table style='border-collapse:collapse;font-size:90%;width:100%;table-layout:auto'>"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
            + (html_section(self.metrics, self.job.name) if self.metrics.series else "")
            + (f"<ul style='color:#cf222e;margin:4px 0'>{notes}</ul>" if notes else "")
            + "</div>"
        )


def _last_line_td(text: str, row: Row) -> str:
    """The last line's cell: cut to the width JupyterLab leaves it, at its end, or for a
    progress line (open, or with a drawn bar) before its counts, rate and ETA, which stay;
    an open line with a percentage gets a real bar instead of its drawn one."""
    e = html.escape
    title = f" title='{e(text)}'" if text else ""
    if not row.progress and not is_progress(text):
        return f"<td style='{_LAST_TD}'{title}><div style='{_CLIP}'>{e(text)}</div></td>"
    parts = progress_parts(text)
    if row.percent is not None:  # an open progress line: a real bar, not the drawn one
        bar = f"<progress max='100' value='{row.percent}' style='flex:none'></progress> "
        head, drawn, tail = parts.head.strip() + " ", "", parts.tail.lstrip()
    else:
        bar, head, drawn, tail = "", parts.head, parts.bar, parts.tail
    # the drawn bar gives way first, then the head down to its percentage, then the tail;
    # head and tail lose their start, not their end
    spans = (
        bar
        + _keep_end(head, "flex:0 20 auto;min-width:7ch")
        + (f"<span style='{_CLIP};flex:0 1000 auto'>{e(drawn)}</span>" if drawn else "")
        + _keep_end(tail, "flex:0 1 auto")
    )
    flex = "display:flex;align-items:center;overflow:hidden"
    return f"<td style='{_LAST_TD}'{title}><div style='{flex}'>{spans}</div></td>"


def _keep_end(text: str, style: str) -> str:
    """Text cut at its start when it does not fit (right-to-left overflow, left-to-right
    text): `…1: 45%`, `…100 [00:01<00:02, 30.0it/s]`."""
    return (
        f"<span style='{_CLIP};{style};direction:rtl'>"
        f"<span dir='ltr'>{html.escape(text)}</span></span>"
    )


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def is_mine(job: JobInfo, owner: dict[str, str]) -> bool:
    """Whether `job` is this notebook's: run from it (any of its kernels, when the frontend
    names it), or from this very kernel."""
    notebook = owner.get("notebook-id")
    if notebook and job.owner.get("notebook-id") in (notebook, label_value(notebook)):
        return True
    kernel = owner.get("kernel-id")
    # a cluster's job carries its owner as label values (a kernel id ending in `_` loses it)
    return bool(kernel) and job.owner.get("kernel-id") in (kernel, label_value(kernel or ""))


def _notebook_of(job: JobInfo, owner: dict[str, str]) -> str:
    """The column that says whose a job is: its notebook, else its kernel."""
    mine = " (this)" if is_mine(job, owner) else ""
    if job.owner.get("notebook"):
        return job.owner["notebook"] + mine
    kernel = job.owner.get("kernel-id", "")
    return f"kernel {kernel[:8]}{mine}" if kernel else "-"


def jobs_table(
    jobs: list[JobInfo], owner: dict[str, str], everyone: bool = False, limit: int = 20
) -> dict[str, str]:
    """`%jobs`: the newest `limit` of this notebook's jobs (everyone's with `everyone`), a
    row a job, as text and HTML, and a line saying what else there is."""
    now = time.time()
    chosen = jobs if everyone else [job for job in jobs if is_mine(job, owner)]
    shown = chosen[:limit]
    header = ["NAME", "STATE", "KIND", "REPLICAS", "WHERE", "AGE", "NOTEBOOK"]
    rows = []
    for job in shown:
        replicas = " ".join(f"{role}={n}" for role, n in job.replicas.items())
        kind = {"pytorch": "PyTorch", "tensorflow": "TensorFlow", "study": "Study"}.get(
            job.framework, ""
        )
        age = _duration(now - job.created) if job.created else "-"
        rows.append(
            [job.name, job.state, kind, replicas, job.location, age, _notebook_of(job, owner)]
        )
    whose = "" if everyone else " from this notebook"
    more = []
    if len(chosen) > len(shown):
        more.append(f"{len(shown)} of {len(chosen)} jobs{whose}; %jobs --limit N shows more")
    others = len(jobs) - len(chosen)
    if others:
        more.append(f"{others} job(s) of other notebooks: %jobs --all")
    footer = "; ".join(more)
    if not rows:
        empty = f"No Ciao jobs{whose} yet." + (f" {footer}." if footer else "")
        return {"text/plain": empty, "text/html": f"<p>{html.escape(empty)}</p>"}
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    text = "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [header, *rows]
    )
    e = html.escape
    head = "".join(f"<th style='text-align:left;padding:2px 8px'>{h.lower()}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td style='padding:2px 8px;color:{_STATE_COLOURS.get(c, 'inherit')}'>{e(c)}</td>"
            if i == 1
            else f"<td style='padding:2px 8px'>{e(c)}</td>"
            for i, c in enumerate(r)
        )
        + "</tr>"
        for r in rows
    )
    table = f"<table style='border-collapse:collapse;font-size:90%'><thead><tr>{head}</tr>"
    note = f"<p style='color:#57606a'>{e(footer)}</p>" if footer else ""
    return {
        "text/plain": text + (f"\n({footer})" if footer else ""),
        "text/html": f"{table}</thead><tbody>{body}</tbody></table>{note}",
    }


def status_view(info: JobInfo, events: list[Event]) -> dict[str, str]:
    """`%status NAME`: the job's view, folded from what the backend knows now.

    Its events carry no times, so folding them now started every replica's clock now (a
    finished job showed 0:00 under its 0:13): a replica's age runs from when the job's
    replicas started, where the backend knows it ("-" where not), to the job's end."""
    framework = cast(Framework, info.framework)
    job = Job(framework, info.name, dict(info.replicas), info.backend, None, info.location)
    wall, now = time.time(), time.monotonic()

    def monotonic(epoch: float) -> float:
        return now - max(0.0, wall - epoch)

    view = JobView(job, submitted=monotonic(info.created))
    view.state = info.state
    for event in events:
        view.apply(event, now)
    started = monotonic(info.started) if info.started is not None else None
    for row in view.rows.values():
        row.started = started if row.phase not in ("Pending", "Suspended") else None
    if info.ended is not None:
        view.ended = monotonic(info.ended)
    if info.message and not view.message:
        view.message = info.message
    return view.bundle(now)
