"""A study's live view: a row per trial (parameters, state, objective, the best marked,
its replicas, why it failed), updated in place as render.py's job view is.

Pure rendering over ciao/tune/state.py's fold: `StudyView.apply(event)` folds the study's
events, `bundle()` renders `text/plain` and `text/html`; `%study NAME` renders the same
view of the record, every row.
"""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, field
from typing import Any

from ciao.backend.types import Event, Job, JobDone
from ciao.tune.state import StudyState, TrialRow, number_text, params_text

#: Rows the live view shows at most: the running trials, the best, then the latest ended
#: (`%study NAME` shows every one).
LIVE_ROWS = 30
#: Longest parameters and message of a row in text/plain.
PARAMS_WIDTH = 48
MESSAGE_WIDTH = 60
_TD = "padding:2px 8px;text-align:left;white-space:nowrap"
_MESSAGE_TD = "padding:2px 8px;text-align:left;width:100%;max-width:0"
_CLIP = "overflow:hidden;text-overflow:ellipsis;white-space:nowrap"
_COLOURS = {
    "Running": "#1a7f37",
    "Succeeded": "#1a7f37",
    "Completed": "#1a7f37",
    "Pending": "#9a6700",
    "Pruned": "#57606a",
    "Failed": "#cf222e",
    "Cancelled": "#cf222e",
    "Lost": "#cf222e",
}


@dataclass
class StudyView:
    """What the table shows of one study; `apply` returns whether anything changed."""

    job: Job[Any]
    state: StudyState
    study: dict[str, Any] = field(default_factory=dict)
    submitted: float = field(default_factory=time.monotonic)
    ended: float | None = None
    #: Rows shown at most (None: every one).
    limit: int | None = LIVE_ROWS

    def apply(self, event: Event, now: float | None = None) -> bool:
        changed = self.state.apply(event)
        if isinstance(event, JobDone):
            self.ended = time.monotonic() if now is None else now
        return changed

    def bundle(self, now: float | None = None) -> dict[str, str]:
        now = time.monotonic() if now is None else now
        return {"text/plain": self.text(now), "text/html": self.html(now)}

    # ---- what is shown ------------------------------------------------------------------

    def headline(self, now: float) -> str:
        state = self.state
        elapsed = _duration((self.ended or now) - self.submitted)
        what = f"study of {state.trials} trials, {self.study.get('algorithm', '')}, "
        what += f"{state.direction} {state.metric}"
        line = f"{self.job.name}  {what}  {state.state}  {elapsed}  {state.summary()}"
        if state.done is not None and not state.done.succeeded:
            line += f"  {state.done.message}" if state.done.message != state.summary() else ""
        return line

    def shown_rows(self) -> tuple[list[TrialRow], int]:
        """The rows to show (in trial order) and how many are left out."""
        rows = sorted(self.state.rows.values(), key=lambda row: row.number)
        if self.limit is None or len(rows) <= self.limit:
            return rows, 0
        best = self.state.best()
        keep = {row.number for row in rows if not row.finished}
        if best is not None:
            keep.add(best.number)
        for row in reversed(rows):
            if len(keep) >= self.limit:
                break
            keep.add(row.number)
        chosen = [row for row in rows if row.number in keep]
        return chosen, len(rows) - len(chosen)

    def _cells(self, row: TrialRow, best: TrialRow | None) -> list[str]:
        mark = "*" if best is not None and row.number == best.number else ""
        return [
            f"#{row.number}",
            mark,
            row.state,
            number_text(row.value) if row.value is not None else "-",
            params_text(row.params),
            row.replicas,
            row.message,
        ]

    def text(self, now: float) -> str:
        metric = self.state.metric.upper() or "OBJECTIVE"
        header = ["TRIAL", "BEST", "STATE", metric, "PARAMETERS", "REPLICAS", "MESSAGE"]
        rows, left_out = self.shown_rows()
        best = self.state.best()
        table = [header]
        for row in rows:
            cells = self._cells(row, best)
            cells[4] = _clip(cells[4], PARAMS_WIDTH)
            cells[6] = _clip(cells[6], MESSAGE_WIDTH)
            table.append(cells)
        widths = [max(len(r[i]) for r in table) for i in range(len(header) - 1)]
        lines = [self.headline(now)]
        for cells in table:
            padded = [c.ljust(w) for c, w in zip(cells[:-1], widths, strict=True)] + [cells[-1]]
            lines.append("  ".join(padded).rstrip())
        if left_out:
            lines.append(f"... {left_out} more trials: %study {self.job.name} shows them all")
        return "\n".join(lines)

    def html(self, now: float) -> str:
        e = html.escape
        state = self.state
        metric = state.metric or "objective"
        heads = ("trial", "best", "state", metric, "parameters", "replicas")
        head = "".join(f"<th style='{_TD}'>{e(h)}</th>" for h in heads)
        head += f"<th style='{_MESSAGE_TD}'>message</th>"
        rows, left_out = self.shown_rows()
        best = state.best()
        body = []
        for row in rows:
            cells = self._cells(row, best)
            colour = _COLOURS.get(row.state, "inherit")
            weight = ";font-weight:bold" if cells[1] else ""
            tds = [
                f"<td style='{_TD}{weight}'>{e(cells[0])}</td>",
                f"<td style='{_TD}'>{'★' if cells[1] else ''}</td>",
                f"<td style='{_TD};color:{colour}'>{e(cells[2])}</td>",
                f"<td style='{_TD}{weight}'>{e(cells[3])}</td>",
                f"<td style='{_TD}'>{e(cells[4])}</td>",
                f"<td style='{_TD}'>{e(cells[5])}</td>",
                f"<td style='{_MESSAGE_TD};color:#cf222e' title='{e(cells[6])}'>"
                f"<div style='{_CLIP}'>{e(cells[6])}</div></td>",
            ]
            body.append("<tr>" + "".join(tds) + "</tr>")
        colour = _COLOURS.get(state.state, "inherit")
        elapsed = _duration((self.ended or now) - self.submitted)
        what = (
            f"study of {state.trials} trials, {e(str(self.study.get('algorithm', '')))}, "
            f"{e(state.direction)} {e(metric)}"
        )
        more = (
            f"<div style='color:#57606a'>… {left_out} more trials: "
            f"<code>%study {e(self.job.name)}</code> shows them all</div>"
            if left_out
            else ""
        )
        return (
            "<div class='ciao-study'>"
            f"<div><b>{e(self.job.name)}</b> {what} · "
            f"<b style='color:{colour}'>{e(state.state)}</b> · {elapsed} · "
            f"{e(state.summary())}</div>"
            "<table style='border-collapse:collapse;font-size:90%;width:100%;table-layout:auto'>"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>{more}</div>"
        )


def best_bundle(name: str, row: TrialRow) -> dict[str, Any]:
    """`%best NAME`: the best trial's parameters, `x: 1.93` a line, and as data."""
    lines = [f"{key}: {number_text(value)}" for key, value in row.params.items()]
    return {
        "text/plain": "\n".join(lines),
        "application/vnd.ciao.best+json": dict(row.params),
    }


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
