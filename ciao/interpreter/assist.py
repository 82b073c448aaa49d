"""Editor help on cells: completeness, completion and the doc under the cursor.

Pure text in, data out: the kernel wraps the answers in Jupyter replies. Magic lines are read
with the grammar's own tokenizer, so the editor and the interpreter never disagree on what a
magic is. Cursor positions are character offsets (str indices) into the whole cell.
"""

from __future__ import annotations

import builtins
import codeop
import keyword
import re
import tokenize
import warnings
from io import StringIO

from ciao.errors import MagicErrors
from ciao.interpreter.docs import MAGICS, MagicDoc, describe, lookup
from ciao.interpreter.lines import (
    Token,
    find_magic_lines,
    find_shell_lines,
    magic_tokens,
    split_cell,
    split_pieces,
)
from ciao.interpreter.magics import MagicInterpreter
from ciao.interpreter.pod import SETTING_BY_MAGIC
from ciao.interpreter.types import FRAMEWORKS, ROLES

#: Job magics of PyTorch cells only (torchrun's processes, Trainer v2 runtimes).
PYTORCH_ONLY = frozenset({"procs", "runtime"})

__all__ = ["complete", "inspect", "is_complete", "is_complete_python"]

_WORD_END = re.compile(r"(?!\d)\w+$")
_WORD_START = re.compile(r"\w*")
_NAME_CHARS = re.compile(r"[\w-]*")
_VALUE_CHARS = re.compile(r"[^\s;]*")


def _run_end(chars: re.Pattern[str], text: str, pos: int) -> int:
    """Where the run of `chars` starting at `pos` ends (the patterns match empty runs)."""
    match = chars.match(text, pos)
    return match.end() if match else pos


_TYPED_MAGIC = re.compile(r"%\s*([\w-]*)(\s*)(.*)", re.DOTALL)
_IDENTIFIER = re.compile(r"(?!\d)\w+")

Completion = tuple[list[str], int, int]


def is_complete(code: str, interpreter: MagicInterpreter | None = None) -> tuple[str, str]:
    """("complete" | "incomplete" | "invalid", indent) for a console's Enter key.

    Any bad magic makes the cell invalid; the code part is judged by codeop, as Python's own
    console does, and an incomplete block gets the indent of its next line.
    """
    if not code.strip():
        return "complete", ""
    interp = interpreter or MagicInterpreter()
    try:
        interp.parse(code)
    except MagicErrors:
        return "invalid", ""
    source = interp.preprocessed_code(code)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compiled = codeop.compile_command(source, symbol="exec")
    except (SyntaxError, ValueError, OverflowError):
        return "invalid", ""
    if compiled is not None:
        return "complete", ""
    return "incomplete", _next_indent(source)


def is_complete_python(code: str) -> tuple[str, str]:
    """is_complete for a session cell, while no session runs to ask: its Python judged
    as Python's console does, with magic and shell-escape lines (IPython's) left out."""
    lines = split_cell(code)
    for index in (*find_magic_lines(lines), *find_shell_lines(lines)):
        lines[index] = ""
    source = "\n".join(lines)
    if not source.strip():
        return "complete", ""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compiled = codeop.compile_command(source, symbol="exec")
    except (SyntaxError, ValueError, OverflowError):
        return "invalid", ""
    return ("complete", "") if compiled is not None else ("incomplete", _next_indent(source))


def _next_indent(source: str) -> str:
    """The last line's indent, one level deeper after a line ending with `:`."""
    lines = [line for line in split_cell(source) if line.strip()]
    if not lines:
        return ""
    last = lines[-1].rstrip()
    indent = last[: len(last) - len(last.lstrip())]
    return indent + "    " if last.endswith(":") else indent


def complete(code: str, cursor_pos: int, interpreter: MagicInterpreter | None = None) -> Completion:
    """(matches, cursor_start, cursor_end): what may replace code[cursor_start:cursor_end].

    On a magic line: magic names (as `%worker=`) fitting the cell's framework and the line,
    or the values after `=`. On a code line: keywords, builtins and the cell's own names.
    """
    interp = interpreter or MagicInterpreter()
    cursor_pos = max(0, min(cursor_pos, len(code)))
    lines = split_cell(code)
    index = code.count("\n", 0, cursor_pos)
    line_start = code.rfind("\n", 0, cursor_pos) + 1
    if index in find_magic_lines(lines):
        col = cursor_pos - line_start
        matches, start, end = _complete_magic(code, lines[index], index + 1, col, interp)
        return matches, line_start + start, line_start + end
    return _complete_code(code, cursor_pos, interp)


def inspect(code: str, cursor_pos: int) -> str | None:
    """The doc of the magic under the cursor (`%help` topics too), None elsewhere."""
    cursor_pos = max(0, min(cursor_pos, len(code)))
    lineno = code.count("\n", 0, cursor_pos) + 1
    col = cursor_pos - (code.rfind("\n", 0, cursor_pos) + 1)
    for token in magic_tokens(code).get(lineno, []):
        if token.start <= col <= token.end and token.has_name:
            doc = lookup(token.name)
            if doc is not None and doc.name == "help" and token.rest and col > token.name_end:
                doc = lookup(token.rest) or doc
            return describe(doc) if doc else None
    return None


def _complete_magic(
    code: str, line: str, lineno: int, col: int, interp: MagicInterpreter
) -> Completion:
    """Completion inside a magic line; columns are within the line."""
    piece_start, piece_end = next((s, e) for s, e in split_pieces(line) if s <= col <= e)
    typed = line[piece_start:col].lstrip()
    if not typed:
        if line[col:piece_end].strip():
            return [], col, col  # the cursor is before a token, not in it
        return _magic_names(code, line, lineno, piece_start, "", interp), col, col
    match = _TYPED_MAGIC.fullmatch(typed)
    if match is None:
        return [], col, col
    name, blank, rest = match.groups()
    if rest.startswith("="):
        return _magic_values(lookup(name), rest[1:].lstrip(), line, col, piece_end, interp)
    if blank or rest:
        doc = lookup(name)
        if doc is not None and doc.name == "help":
            arg = (blank + rest).strip().removeprefix("%")
            names = [d.name for d in MAGICS.values() if d.name.lower().startswith(arg.lower())]
            return names, col - len(arg), _run_end(_NAME_CHARS, line, col)
        if doc is not None and doc.blank and blank:  # %tune x=un<Tab>: the parameter's value
            word = (blank + rest).rsplit(maxsplit=1)[-1] if rest.strip() else ""
            if doc.hint_after in word:
                return _magic_values(doc, word, line, col, piece_end, interp)
        return [], col, col
    start = col - len(typed)
    end = _run_end(_NAME_CHARS, line, col)
    after = line[end:piece_end]
    if after.lstrip().startswith("="):
        end += len(after) - len(after.lstrip()) + 1
    return _magic_names(code, line, lineno, piece_start, name, interp), start, end


def _magic_values(
    doc: MagicDoc | None, prefix: str, line: str, col: int, piece_end: int, interp: MagicInterpreter
) -> Completion:
    matches = _value_matches(doc, prefix, interp) if doc else []
    end = col + _run_end(_VALUE_CHARS, line[col:piece_end], 0)
    return matches, col - len(prefix), end


def _value_matches(doc: MagicDoc, typed: str, interp: MagicInterpreter) -> list[str]:
    """The values of `doc` that may follow what is typed (any case), whole: its choices,
    the config's profiles for %profile, or the starts of a free-form value (`pvc:`); after
    the doc's `hint_after` (`:` of a toleration), what may follow it (its effects)."""
    choices = list(doc.values) + (sorted(interp.profiles) if doc.name == "profile" else [])
    head, tail = "", typed
    if doc.hint_after:
        before, mark, after = typed.rpartition(doc.hint_after)
        if mark:
            head, tail, choices = before + mark, after, list(doc.hints)
    else:
        choices += doc.hints
    return [head + choice for choice in choices if choice.lower().startswith(tail.lower())]


def _magic_names(
    code: str, line: str, lineno: int, piece_start: int, prefix: str, interp: MagicInterpreter
) -> list[str]:
    """The magics that may start a token here, as `%name=` (commands as `%name`); after a
    role on its line, its resources and pod settings first."""
    tokens = magic_tokens(code)
    others = [t for n, ts in tokens.items() for t in ts if n != lineno or t.end < piece_start]
    before = [t for t in tokens.get(lineno, []) if t.end < piece_start]
    used = {
        doc.name
        for doc in map(_doc, others)
        if doc and doc.kind in ("job", "role", "flag", "study")
    }
    if "nodes" in used:  # %nodes=N is %master=1 with %worker=N-1: one or the other
        used |= {"master", "worker"}
    elif used & {"master", "worker"}:
        used.add("nodes")
    framework = _cell_framework(tokens, interp.default_framework)
    if framework != "pytorch":
        used |= PYTORCH_ONLY
    role_index = max((i for i, t in enumerate(before) if _kind(t) == "role"), default=None)
    segment = set() if role_index is None else {_name(t) for t in before[role_index + 1 :]}
    alone = sum(1 for text in split_cell(code) if text.strip()) == 1 and not before
    line_has_role = any(_kind(t) == "role" for t in tokens.get(lineno, []))
    # pod settings given once a scope: the job's (lines without a role) or this role's
    job_pod = {
        _name(t)
        for n, ts in tokens.items()
        if not any(_kind(u) == "role" for u in ts)
        for t in ts
        if (n != lineno or t.end < piece_start) and _kind(t) == "pod"
    }
    resources: list[str] = []
    offered: list[str] = []
    for doc in MAGICS.values():
        if not doc.name.lower().startswith(prefix.lower()):
            continue
        if doc.kind == "pod":
            setting = SETTING_BY_MAGIC[doc.name]
            if role_index is not None:
                if setting.per_role and (setting.many or doc.name not in segment):
                    resources.append(f"%{doc.name}=")
            elif not line_has_role and (setting.many or doc.name not in job_pod):
                offered.append(f"%{doc.name}=")
        elif doc.kind == "command":
            if alone and ";" not in line:
                offered.append(f"%{doc.name}")
        elif doc.kind == "flag":
            if doc.name not in used:
                offered.append(f"%{doc.name}")
        elif doc.kind == "resource":
            if role_index is not None and doc.name not in segment:
                resources.append(f"%{doc.name}=")
        elif (doc.name == "profile" or doc.kind == "study") and line_has_role:
            continue  # the whole job's: on a line of its own
        elif doc.name not in used and (doc.kind != "role" or doc.name in ROLES[framework]):
            offered.append(f"%{doc.name} " if doc.blank else f"%{doc.name}=")
    return resources + offered


def _cell_framework(tokens: dict[int, list[Token]], default: str) -> str:
    """The framework the cell's `%framework` names, else the interpreter's default."""
    for token in (t for ts in tokens.values() for t in ts):
        if _name(token) == "framework" and (token.value or "").lower() in FRAMEWORKS:
            return (token.value or "").lower()
    return default


def _doc(token: Token) -> MagicDoc | None:
    return lookup(token.name) if token.has_name else None


def _kind(token: Token) -> str | None:
    doc = _doc(token)
    return doc.kind if doc else None


def _name(token: Token) -> str | None:
    doc = _doc(token)
    return doc.name if doc else None


def _complete_code(code: str, cursor_pos: int, interp: MagicInterpreter) -> Completion:
    """Keywords, builtins and the cell's names that start with the word before the cursor."""
    line_start = code.rfind("\n", 0, cursor_pos) + 1
    match = _WORD_END.search(code, line_start, cursor_pos)
    if match is None:
        return [], cursor_pos, cursor_pos
    prefix, start = match.group(), match.start()
    end = _run_end(_WORD_START, code, cursor_pos)
    names = _identifiers(interp.preprocessed_code(code[:start] + code[end:]))
    if not (start > 0 and code[start - 1] == "."):
        names |= set(keyword.kwlist) | set(keyword.softkwlist) | set(dir(builtins))
    private = prefix.startswith("_")
    matches = sorted(n for n in names if n.startswith(prefix) and (private or n[0] != "_"))
    return matches, start, end


def _identifiers(source: str) -> set[str]:
    """The names used in the code (strings and comments excluded when it tokenizes)."""
    try:
        tokens = tokenize.generate_tokens(StringIO(source).readline)
        return {t.string for t in tokens if t.type == tokenize.NAME}
    except (tokenize.TokenError, SyntaxError):
        return set(_IDENTIFIER.findall(source))


#: Commands whose first argument is a job's name (a study's too).
JOB_COMMANDS = ("status", "logs", "metrics", "attach", "delete")
#: Commands whose first argument is a study's name.
STUDY_COMMANDS = ("study", "best")


def job_argument(code: str, cursor_pos: int) -> tuple[str, int, int] | None:
    """When the cursor is on the job-name argument of %status/%logs/%metrics/%attach/%delete:
    (what is typed of it, its start, its end) as offsets into the cell; else None.

    The kernel completes it with the names of known jobs (that needs I/O, so not here).
    """
    return _name_argument(code, cursor_pos, JOB_COMMANDS)


def study_argument(code: str, cursor_pos: int) -> tuple[str, int, int] | None:
    """As `job_argument`, for the study-name argument of %study and %best (the kernel
    completes it with the names of known studies)."""
    return _name_argument(code, cursor_pos, STUDY_COMMANDS)


def _name_argument(
    code: str, cursor_pos: int, commands: tuple[str, ...]
) -> tuple[str, int, int] | None:
    cursor_pos = max(0, min(cursor_pos, len(code)))
    lineno = code.count("\n", 0, cursor_pos) + 1
    line_start = code.rfind("\n", 0, cursor_pos) + 1
    col = cursor_pos - line_start
    for token in magic_tokens(code).get(lineno, []):
        doc = lookup(token.name) if token.has_name else None
        if doc is None or doc.name not in commands or col <= token.name_end:
            continue
        line = code[line_start:].split("\n", 1)[0]
        typed = line[token.name_end : col]
        if typed and not typed[0].isspace():
            return None  # still in the command's name
        if typed.strip() != typed.lstrip() or len(typed.split()) > 1:
            return None  # past the first argument
        prefix = typed.strip()
        end = col
        while end < len(line) and not line[end].isspace():
            end += 1
        return prefix, cursor_pos - len(prefix), line_start + end
    return None
