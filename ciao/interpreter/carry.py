"""What a job cell needs from the notebook: the names it uses that earlier cells defined.

Read from source alone (no I/O, nothing run): every earlier cell's top-level `import`,
`def` and `class` statements, and which names its other statements assign. A job cell's
free names are looked up there, latest definition first; a function or class brings the
names it uses in turn. Imports travel as `import` lines, functions and classes as their
source (so they work on an image with another Python), and any other value (a DataFrame, a
dict) only from the Python session that holds it: the kernel asks the session for those.

Kale does the same for pipeline steps (cells tagged `imports`/`functions`, found by static
analysis); Ciao needs no tags because it has the notebook's history.
"""

from __future__ import annotations

import ast
import builtins
import re
import symtable
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from ciao.interpreter.lines import find_magic_lines, find_shell_lines, split_cell

#: Names every module has without defining them.
MODULE_NAMES = frozenset(
    {"__name__", "__file__", "__doc__", "__builtins__", "__spec__", "__loader__", "__package__"}
)
BUILTIN_NAMES = frozenset(dir(builtins)) | MODULE_NAMES
#: What IPython gives every session and no script has: a job cell that uses one gets what a
#: script would (a NameError, or its own `try:`), never a copy of the session's.
IPYTHON_NAMES = frozenset(
    {"get_ipython", "display", "In", "Out", "_ih", "_oh", "_dh", "_", "__", "___", "exit", "quit"}
)
_IPYTHON_HISTORY = re.compile(r"_i{1,3}|_i?\d+")

BindingKind = Literal["import", "source", "value"]

#: Where a chunk came from when no cell's source shows it (the session alone has it).
SESSION_LABEL = "the session"


@dataclass(frozen=True)
class HistoryCell:
    """An earlier cell: its number, its code, and whether it ran in the session (so what
    it assigned lives there) or as a job (only its imports, functions and classes count)."""

    count: int
    code: str
    in_session: bool


@dataclass(frozen=True)
class Binding:
    """Where a name was last given its meaning at the top level of a cell."""

    name: str
    kind: BindingKind
    count: int
    #: The statement's first line in its cell (1-based; a function's decorators included),
    #: and its column (two statements may share a line: `import os; import json`).
    line: int
    #: The statement's source (imports and functions/classes); empty for a value.
    source: str = ""
    in_session: bool = True
    column: int = 0


@dataclass(frozen=True)
class Chunk:
    """A top-level statement that travels as source: an import, a function, a class, or
    a block of them (`try: import ujson as json except ImportError: import json`)."""

    count: int
    line: int
    source: str
    names: tuple[str, ...]

    @property
    def label(self) -> str:
        return cell_label(self.count) if self.count else SESSION_LABEL


@dataclass(frozen=True)
class Needed:
    """What the job cell needs, found from source: statements that travel as source (in
    the notebook's order), values only a session holds (name -> the cell that assigned it,
    None when no cell's source shows it: it may still be in the session), and names that
    cannot travel (name -> why)."""

    imports: tuple[Chunk, ...] = ()
    sources: tuple[Chunk, ...] = ()
    values: dict[str, int | None] = field(default_factory=dict)
    #: Where each value was last assigned in its cell (its line), to load it in order.
    value_lines: dict[str, int] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    #: A star import could define any name: unknown names are then not errors.
    star_import: bool = False

    @property
    def empty(self) -> bool:
        return not (self.imports or self.sources or self.values)


def cell_label(count: int) -> str:
    """How a notebook names a cell (`In [3]`): tracebacks through carried code use it."""
    return f"In [{count}]"


def python_source(code: str) -> str:
    """A cell as plain Python: its magic lines (`%timeit x`, `%worker=2`) and shell escapes
    (`!ls`) emptied, so the rest parses and keeps its line numbers."""
    lines = split_cell(code)
    if lines and lines[0].lstrip().startswith("%%"):
        return ""  # a cell magic's body is the magic's to run, not top-level code
    for index in (*find_magic_lines(lines), *find_shell_lines(lines)):
        lines[index] = ""
    return "\n".join(lines)


def free_names(source: str) -> set[str]:
    """Names `source` uses at run time that it does not define itself, nor builtins do."""
    try:
        table = symtable.symtable(source, "<cell>", "exec")
    except SyntaxError:
        return set()
    bound: set[str] = set()
    used: set[str] = set()
    for symbol in table.get_symbols():
        if symbol.is_assigned() or symbol.is_imported() or symbol.is_namespace():
            bound.add(symbol.get_name())
        elif symbol.is_referenced():
            used.add(symbol.get_name())
    stack = list(table.get_children())
    while stack:
        scope = stack.pop()
        stack.extend(scope.get_children())
        for symbol in scope.get_symbols():
            name = symbol.get_name()
            if symbol.is_declared_global() and symbol.is_assigned():
                bound.add(name)
            elif symbol.is_global() and symbol.is_referenced():
                used.add(name)
    globals_set = {n for n in bound if n not in _top_level_bound(table)}
    free = (used - bound) | (_read_before_bound(source) - globals_set)
    return {n for n in free - BUILTIN_NAMES - IPYTHON_NAMES if not _IPYTHON_HISTORY.fullmatch(n)}


def _top_level_bound(table: symtable.SymbolTable) -> set[str]:
    return {
        s.get_name()
        for s in table.get_symbols()
        if s.is_assigned() or s.is_imported() or s.is_namespace()
    }


def _read_before_bound(source: str) -> set[str]:
    """Top-level names a statement reads before any statement (or its own target) binds
    them: `epochs = epochs * 2` needs the notebook's `epochs`."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    early: set[str] = set()
    _visit(tree.body, set(), early)
    return early


def _visit(statements: list[ast.stmt], bound: set[str], early: set[str]) -> None:
    """Walk statements in the order they run, noting reads of names not bound yet."""

    def read(*nodes: ast.AST | None) -> None:
        early.update(_loads(*nodes) - bound)

    for node in statements:
        if isinstance(node, ast.For | ast.AsyncFor):
            read(node.iter)
            bound.update(_stores(node.target))
            _visit(node.body + node.orelse, bound, early)
        elif isinstance(node, ast.While | ast.If):
            read(node.test)
            _visit(node.body + node.orelse, bound, early)
        elif isinstance(node, ast.With | ast.AsyncWith):
            for item in node.items:
                read(item.context_expr)
                bound.update(_stores(item.optional_vars))
            _visit(node.body, bound, early)
        elif isinstance(node, ast.Try):
            _visit(node.body, bound, early)
            for handler in node.handlers:
                read(handler.type)
                bound.update({handler.name} if handler.name else set())
                _visit(handler.body, bound, early)
            _visit(node.orelse + node.finalbody, bound, early)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            read(*node.decorator_list, *node.args.defaults, *node.args.kw_defaults)
            bound.add(node.name)
        elif isinstance(node, ast.ClassDef):
            read(*node.decorator_list, *node.bases)
            bound.add(node.name)  # its body's names are the class's own
        elif isinstance(node, ast.Import | ast.ImportFrom):
            bound.update(a.asname or a.name.split(".")[0] for a in node.names)
        else:
            if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
                early.update({node.target.id} - bound)  # `x += 1` reads x first
            read(*(child for child in ast.iter_child_nodes(node)))
            bound.update(_stores(node))


def _loads(*nodes: ast.AST | None) -> set[str]:
    """Names read in expressions (not in lambdas and comprehensions: own scopes)."""
    names: set[str] = set()
    stack = [n for n in nodes if n is not None]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            names.add(node.id)
        elif not isinstance(
            node, ast.Lambda | ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp
        ):
            stack.extend(ast.iter_child_nodes(node))
    return names


def _stores(node: ast.AST | None) -> set[str]:
    if node is None:
        return set()
    return {
        n.id for n in ast.walk(node) if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load)
    }


def has_star_import(source: str) -> bool:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    return any(
        isinstance(node, ast.ImportFrom) and any(a.name == "*" for a in node.names)
        for node in tree.body
    )


def needed(code: str, history: Sequence[HistoryCell]) -> Needed:
    """What `code` (a job cell's training code) needs from `history` (the earlier cells,
    oldest first), transitively, found from source alone."""
    table = definitions(tuple(history))
    imports: dict[tuple[int, int, int], Chunk] = {}
    sources: dict[tuple[int, int, int], Chunk] = {}
    values: dict[str, int | None] = {}
    value_lines: dict[str, int] = {}
    refused: dict[str, str] = {}
    code = python_source(code)
    star = has_star_import(code)
    seen: set[str] = set()
    todo = sorted(free_names(code))
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        binding = table.get(name)
        if binding is None:
            values[name] = None  # no cell's source shows it: perhaps the session has it
            for star_binding in (b for key, b in table.items() if key.startswith("*")):
                chunk, _ = _chunk(history, star_binding)  # `from m import *` may define it
                imports[(chunk.count, chunk.line, star_binding.column)] = chunk
                star = True
            continue
        if binding.kind == "value":
            if binding.in_session:
                values[name] = binding.count
                value_lines[name] = binding.line
            else:
                refused[name] = (
                    f"{name} is assigned in {cell_label(binding.count)}, which ran as a job: "
                    "its value lived only there (assign it in this cell, or in a cell "
                    "without job magics, which runs in the session)"
                )
            continue
        chunk, uses = _chunk(history, binding)
        star = star or has_star_import(chunk.source)
        key = (chunk.count, chunk.line, binding.column)
        (imports if binding.kind == "import" else sources)[key] = chunk
        todo.extend(sorted(uses - seen))
    return Needed(
        imports=tuple(imports[k] for k in sorted(imports)),
        sources=tuple(sources[k] for k in sorted(sources)),
        values=values,
        value_lines=value_lines,
        refused=refused,
        star_import=star,
    )


def definitions(history: tuple[HistoryCell, ...]) -> dict[str, Binding]:
    """Every name's latest top-level binding in the notebook's cells."""
    table: dict[str, Binding] = {}
    for cell in history:
        for binding in cell_bindings(cell.code, cell.count, cell.in_session):
            if binding.kind == "value" and not cell.in_session and binding.name in table:
                continue  # a job's assignment leaves the session's value as it was
            table[binding.name] = binding
    return table


@lru_cache(maxsize=4096)
def cell_bindings(code: str, count: int, in_session: bool) -> tuple[Binding, ...]:
    """The names a cell binds at its top level, in order (cached: a notebook's history is
    read again for every job cell)."""
    source = python_source(code)
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return ()
    found: list[Binding] = []
    for node in tree.body:
        line, col = _first_line(node), node.col_offset
        text = ast.get_source_segment(source, node, padded=True) or ""
        if isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                if alias.name == "*":  # a key no identifier can be: any unknown name's
                    star = f"*{getattr(node, 'module', '')}"
                    found.append(Binding(star, "import", count, line, text, in_session, col))
                    continue
                bound = alias.asname or alias.name.split(".")[0]
                found.append(Binding(bound, "import", count, line, text, in_session, col))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            text = "\n".join(source.split("\n")[line - 1 : node.end_lineno])
            found.append(Binding(node.name, "source", count, line, text, in_session, col))
        else:
            kind: BindingKind = "source" if _only_definitions(node) else "value"
            for name in sorted(_assigned(node)):
                found.append(Binding(name, kind, count, line, text, in_session, col))
    return tuple(found)


def _chunk(history: Sequence[HistoryCell], binding: Binding) -> tuple[Chunk, set[str]]:
    """The statement that made `binding`, and the names it uses in turn."""
    names = tuple(
        b.name.lstrip("*")
        for b in cell_bindings(
            next(c.code for c in history if c.count == binding.count),
            binding.count,
            binding.in_session,
        )
        if (b.line, b.column) == (binding.line, binding.column)
    )
    uses = set() if binding.kind == "import" else free_names(textwrap.dedent(binding.source))
    return Chunk(binding.count, binding.line, binding.source, names), uses


def _first_line(node: ast.stmt) -> int:
    decorators: list[ast.expr] = getattr(node, "decorator_list", [])
    return min([node.lineno, *(d.lineno for d in decorators)])


#: Statements a block may hold and still travel as source.
_DEFINING = (
    ast.Import,
    ast.ImportFrom,
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
    ast.Pass,
    ast.Raise,
    ast.Expr,  # a docstring, a warning printed
)
_BLOCKS = (ast.Try, ast.If, ast.With)


def _only_definitions(node: ast.stmt) -> bool:
    """A block (try/if/with) whose every statement imports, defines or does nothing:
    it travels as source, as a function does."""
    if not isinstance(node, _BLOCKS):
        return False
    statements = list(_block_statements(node))
    return bool(statements) and all(isinstance(s, _DEFINING) for s in statements)


def _block_statements(block: ast.stmt) -> Iterable[ast.stmt]:
    """The statements in a block's bodies, through nested blocks (not into functions)."""
    bodies: list[list[ast.stmt]] = [
        getattr(block, attr) for attr in ("body", "orelse", "finalbody") if hasattr(block, attr)
    ]
    bodies += [handler.body for handler in getattr(block, "handlers", [])]
    for body in bodies:
        for statement in body:
            if isinstance(statement, _BLOCKS):
                yield from _block_statements(statement)
            else:
                yield statement


def _assigned(node: ast.stmt) -> set[str]:
    """The module-level names a top-level statement binds (not those bound inside the
    functions or classes it defines)."""
    names: set[str] = set()
    stack: list[ast.AST] = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, ast.Name) and isinstance(current.ctx, ast.Store | ast.Del):
            names.add(current.id)
        elif isinstance(current, ast.Import | ast.ImportFrom):
            names.update(a.asname or a.name.split(".")[0] for a in current.names if a.name != "*")
        elif isinstance(current, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(current.name)
            continue
        elif isinstance(current, ast.Lambda):
            continue
        elif isinstance(current, ast.ExceptHandler | ast.MatchAs | ast.MatchStar):
            if current.name:
                names.add(current.name)
        elif isinstance(current, ast.MatchMapping) and current.rest:
            names.add(current.rest)
        stack.extend(ast.iter_child_nodes(current))
    return names


@dataclass(frozen=True)
class CarriedValue:
    """A value that travels by value: pickled by the session into `path` (this machine)."""

    name: str
    #: The cell that assigned it, None when no cell's source shows it.
    count: int | None
    size: int
    path: str
    type_name: str
    #: The line of its cell that last assigned it (0: unknown).
    line: int = 0
    #: The top-level modules its pickle refers to (one beside the notebook travels too).
    modules: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return cell_label(self.count) if self.count is not None else SESSION_LABEL


@dataclass(frozen=True)
class Carried:
    """What a job cell takes from the notebook: import lines, functions and classes as
    their source, values pickled by the session, and the text of every cell they came from
    (for tracebacks). `count` is the job cell's own number."""

    count: int
    imports: tuple[Chunk, ...] = ()
    sources: tuple[Chunk, ...] = ()
    values: tuple[CarriedValue, ...] = ()
    cells: dict[int, str] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.imports or self.sources or self.values)

    @property
    def label(self) -> str:
        return cell_label(self.count)

    def summary(self) -> str:
        """One line for the cell: `torch, np (imports), Net, make_loader (In [2]), lr
        (In [3])`; empty when nothing travels."""
        parts: list[str] = []
        imported = [n for chunk in self.imports for n in chunk.names]
        if imported:
            parts.append(f"{', '.join(dict.fromkeys(imported))} (imports)")
        by_cell: dict[str, list[str]] = {}
        made = [(c.count, c.names, c.label) for c in self.sources]
        made += [(v.count or 0, (v.name,), v.label) for v in self.values]
        for _, names, label in sorted(made, key=lambda m: m[0]):
            by_cell.setdefault(label, []).extend(names)
        parts += [f"{', '.join(names)} ({label})" for label, names in by_cell.items()]
        return ", ".join(parts)
