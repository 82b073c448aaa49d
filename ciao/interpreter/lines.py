"""Where the magics are in a cell, and the tokens of a magic line, with their columns.

Shared by the grammar (magics.py) and the editor helpers (assist.py), which need the same
answer to "is this line a magic?" and the columns of every token for completion.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME = re.compile(r"[A-Za-z_][\w-]*")
_OPENERS = "([{"
_CLOSERS = ")]}"


def split_cell(code: str) -> list[str]:
    """The cell's lines, split on "\\n" only, so that "\\n".join() gives the cell back."""
    return code.split("\n")


def find_shell_lines(lines: list[str]) -> list[int]:
    """Indices (0-based) of IPython shell escapes (`!pip install x`): a statement that
    starts with `!`, which Python cannot run."""
    return _statements_starting(lines, "!")


def find_magic_lines(lines: list[str]) -> list[int]:
    """Indices (0-based) of the magic lines: the first non-blank character is `%`.

    A line that Python would read as the continuation of the previous one is code, not a
    magic: inside a triple-quoted string (`%s` templates), inside brackets or after a
    backslash (`("%d items"\\n % n)`). Line numbers of everything else are untouched.
    """
    return _statements_starting(lines, "%")


def _statements_starting(lines: list[str], mark: str) -> list[int]:
    """Indices of the lines that start a statement with `mark` (such a line is not fed
    to the scanner: it is not Python)."""
    found: list[int] = []
    scanner = _Scanner()
    for index, line in enumerate(lines):
        if scanner.at_statement_start() and line.lstrip().startswith(mark):
            found.append(index)
            continue
        scanner.feed(line)
    return found


class _Scanner:
    """Just enough of Python's tokenizer to know whether a line starts a new statement.

    Tracks open strings, bracket depth and backslash continuations; it never fails, since
    cells being typed are often not valid Python yet.
    """

    def __init__(self) -> None:
        self.quote: str | None = None
        self.depth = 0
        self.continued = False

    def at_statement_start(self) -> bool:
        return self.quote is None and self.depth == 0 and not self.continued

    def feed(self, line: str) -> None:
        line = line.removesuffix("\r")
        self.continued = False
        i, n = 0, len(line)
        while i < n:
            c = line[i]
            if self.quote is not None:
                if c == "\\":
                    i += 2
                elif line.startswith(self.quote, i):
                    i += len(self.quote)
                    self.quote = None
                else:
                    i += 1
                continue
            if c == "#":
                break
            if c in "\"'":
                self.quote = c * 3 if line.startswith(c * 3, i) else c
                i += len(self.quote)
                continue
            if c in _OPENERS:
                self.depth += 1
            elif c in _CLOSERS:
                self.depth = max(0, self.depth - 1)
            elif c == "\\" and i == n - 1:
                self.continued = True
            i += 1
        if self.quote is not None and len(self.quote) == 1 and not line.endswith("\\"):
            self.quote = None  # an unterminated one-line string: a syntax error, not ours


@dataclass(frozen=True)
class Token:
    """One `%name=value` of a magic line, with columns (0-based, within the line).

    `start`/`end` span the token without its surrounding blanks and `;`. `name` is as typed
    ("" when the token does not start with `%name`). `value` is the stripped text after `=`
    (None when there is no `=`); `rest` is any text after the name when there is no `=`
    (the argument of `%help worker`).
    """

    line: int
    start: int
    end: int
    text: str
    name: str
    name_start: int
    name_end: int
    value: str | None
    value_start: int
    rest: str

    @property
    def has_name(self) -> bool:
        return bool(self.name)


def split_pieces(line: str) -> list[tuple[int, int]]:
    """Column ranges (start, end) of the `;`-separated pieces of a line, blanks included."""
    pieces: list[tuple[int, int]] = []
    start = 0
    for i, c in enumerate(line):
        if c == ";":
            pieces.append((start, i))
            start = i + 1
    pieces.append((start, len(line)))
    return pieces


def tokenize_magic_line(line: str, lineno: int) -> list[Token]:
    """The non-empty tokens of a magic line (`lineno` is 1-based, kept for error messages)."""
    tokens: list[Token] = []
    for piece_start, piece_end in split_pieces(line):
        piece = line[piece_start:piece_end]
        stripped = piece.strip()
        if not stripped:
            continue  # `%worker=2;` or `;;`: an empty piece is harmless
        start = piece_start + (len(piece) - len(piece.lstrip()))
        tokens.append(parse_token(stripped, lineno, start))
    return tokens


def parse_token(text: str, lineno: int, start: int) -> Token:
    """Read one stripped token `% name = value` that starts at column `start`."""
    end = start + len(text)
    name, name_start, name_end = "", start, start
    value: str | None = None
    value_start = end
    rest = ""
    if text.startswith("%"):
        after = 1 + len(text[1:]) - len(text[1:].lstrip())
        match = _NAME.match(text, after)
        if match:
            name, name_start, name_end = match.group(), start + match.start(), start + match.end()
            tail = text[match.end() :]
            if tail.lstrip().startswith("="):
                eq = match.end() + tail.index("=")
                raw = text[eq + 1 :]
                value = raw.strip()
                value_start = start + eq + 1 + (len(raw) - len(raw.lstrip()))
            else:
                rest = tail.strip()
    return Token(lineno, start, end, text, name, name_start, name_end, value, value_start, rest)


def magic_tokens(code: str) -> dict[int, list[Token]]:
    """Every magic line of the cell (1-based line number) and its tokens, in order."""
    lines = split_cell(code)
    return {i + 1: tokenize_magic_line(lines[i], i + 1) for i in find_magic_lines(lines)}
