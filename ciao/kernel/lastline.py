"""A replica's last line in the live view's narrow column, with what matters kept.

A plain line is cut at its end (its start says what it is). A progress line is the other
way round: its end is the rate and the time left (`45/100 [00:01<00:02, 30.0it/s]`), so
its drawn bar shrinks first (the HTML view draws a real one), then its middle goes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ELLIPSIS = "…"

#: A bar drawn with characters: tqdm's (`|███▌  |`, ascii `|##5  |`), Keras's
#: (`[====>....]`), rich's and Lightning's (`━━━╸━━━`).
_BAR = re.compile(r"\|[█▉▊▋▌▍▎▏ ]{3,}\||\|[#0-9 ]{3,}\||\[[=>.]{3,}\]|[━╸╺╾╼─]{3,}")
#: A percentage a progress line shows (its whole number is group 1).
PERCENT = re.compile(r"(\d{1,3})(?:\.\d+)?\s?%")


@dataclass(frozen=True)
class ProgressParts:
    """A progress line around its bar: `head` (what, how far), `tail` (counts, rate, ETA)."""

    head: str
    bar: str
    tail: str


def progress_parts(text: str) -> ProgressParts:
    """The line split at its drawn bar; without one, after its percentage (or nowhere)."""
    found = _BAR.search(text)
    if found:
        return ProgressParts(text[: found.start()], found.group(), text[found.end() :])
    percent = PERCENT.search(text)
    if percent:
        return ProgressParts(text[: percent.end()], "", text[percent.end() :])
    return ProgressParts(text, "", "")


def is_progress(text: str) -> bool:
    """Whether a line (open or final) draws a progress bar."""
    return _BAR.search(text) is not None


def fit(text: str, width: int, progress: bool = False) -> str:
    """`text` in at most `width` characters: cut at the end, or (a progress line: open, or
    with a bar) its bar shrunk and then its middle cut, so its end stays."""
    if len(text) <= width:
        return text
    if not progress and not is_progress(text):
        return text[: width - 1] + ELLIPSIS
    parts = progress_parts(text)
    if parts.bar:
        inner = max(0, len(parts.bar) - 2 - (len(text) - width))
        shorter = parts.head + shrink_bar(parts.bar, inner) + parts.tail
        if len(shorter) <= width:
            return shorter
        text = parts.head.rstrip() + " " + parts.tail.lstrip()
        if len(text) <= width:
            return text
    keep_end = (2 * (width - 1)) // 3
    return text[: width - 1 - keep_end] + ELLIPSIS + text[len(text) - keep_end :]


def shrink_bar(bar: str, inner: int) -> str:
    """The bar drawn `inner` characters wide (between its ends), its glyphs sampled so it
    is as full as it was; "" when there is no room for one."""
    if inner < 3:
        return ""
    ends = (bar[0], bar[-1]) if bar[0] in "|[" else ("", "")
    glyphs = bar[1:-1] if ends[0] else bar
    width = inner if ends[0] else inner + 2
    drawn = "".join(glyphs[i * len(glyphs) // width] for i in range(width))
    return f"{ends[0]}{drawn}{ends[1]}"
