"""Which cells are the session's: those that name no Ciao magic.

A magic line is Ciao's when its first token names a Ciao magic (`%worker=2`, `%help`) or
is written the way only Ciao's are, `%name=value` (so a mistyped `%wrker=2` is Ciao's
error, "did you mean %worker?", not the session's "magic not found"). A magic both have
(`%env`) is Ciao's written `%env=NAME=value` and IPython's written `%env NAME=value`. Any
other magic line (`%timeit f()`, `%matplotlib inline`, `%%time`) and every shell escape (`!ls`) is
the session's (IPython's). One Ciao line makes the whole cell Ciao's: a job, or a kernel
command, read by the grammar in magics.py with all its rules.
"""

from __future__ import annotations

from ciao.interpreter.docs import SHARED_SESSION_MAGICS, lookup
from ciao.interpreter.lines import Token, magic_tokens


def is_ciao_line(tokens: list[Token]) -> bool:
    """Whether a magic line (its tokens) is Ciao's rather than the session's."""
    if not tokens or not tokens[0].has_name:
        return False
    first = tokens[0]
    if first.value is not None:
        return True
    doc = lookup(first.name)
    return doc is not None and doc.name not in SHARED_SESSION_MAGICS


def runs_in_session(code: str) -> bool:
    """Whether the cell is plain Python (and IPython's magics and shell escapes) for the
    session: it has no magic line of Ciao's."""
    return not any(is_ciao_line(tokens) for tokens in magic_tokens(code).values())


def on_ciao_line(code: str, cursor_pos: int) -> bool:
    """Whether the cursor is on a magic line of Ciao's: completing there is Ciao's alone
    (the session would read `%framework=py` as Python and offer `%pycat`)."""
    lineno = code.count("\n", 0, max(0, min(cursor_pos, len(code)))) + 1
    tokens = magic_tokens(code).get(lineno)
    return tokens is not None and is_ciao_line(tokens)
