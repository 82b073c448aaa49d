"""The magic grammar: a cell's `%name=value` lines -> a checked Parameter, or a Command.

Every problem of a cell is collected and raised at once (MagicErrors), each with its line
and magic, before anything is built or submitted: the original reported one error at a
time, and some only after the image was built.
"""

from __future__ import annotations

import difflib
import re
import shlex
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ciao.errors import MagicError, MagicErrors, excerpt
from ciao.interpreter.docs import MAGICS, MagicDoc, describe, help_text, lookup, unknown_magic
from ciao.interpreter.lines import (
    Token,
    find_magic_lines,
    find_shell_lines,
    magic_tokens,
    split_cell,
)
from ciao.interpreter.pod import (
    SETTING_BY_MAGIC,
    PodSettings,
    Setting,
    SettingError,
    identity,
    settings_from,
)
from ciao.interpreter.quantity import check_quantity
from ciao.interpreter.requirements import (
    requirement_name,
    requirement_problem,
    split_requirements,
)
from ciao.interpreter.tune import (
    ALGORITHMS,
    DEFAULT_TRIALS,
    EARLY_STOPPING,
    GRID_KINDS,
    MAX_PARALLEL,
    MAX_SEED,
    MAX_TRIALS,
    METRIC_NAME,
    TuneError,
    TuneSpec,
    grid_points,
    read_objective,
    read_space,
)
from ciao.interpreter.types import (
    ALL_ROLES,
    CLEAN_POLICIES,
    DEFAULT_JOBS_LIMIT,
    FRAMEWORKS,
    MAX_PROCS_PER_NODE,
    QUEUE_NAME,
    ROLES,
    CleanPolicy,
    Command,
    ConfigCommand,
    Framework,
    HelpCommand,
    JobCommand,
    JobsCommand,
    LogsCommand,
    MetricsCommand,
    Parameter,
    PipCommand,
    Resources,
    RoleSpec,
    StudyCommand,
)
from ciao.names import DNS_LABEL, random_name

__all__ = [
    "MAGICS",
    "MagicDoc",
    "MagicInterpreter",
    "MAIN_ROLE",
    "describe",
    "help_text",
    "lookup",
]

#: The role a cell without role magics runs as (one replica), so plain Python cells run.
MAIN_ROLE: dict[str, str] = {"pytorch": "master", "tensorflow": "worker"}

_EXAMPLE = {"cpu": "500m", "memory": "1Gi", "gpu": "1"}
_POLICIES: dict[str, CleanPolicy] = {p.lower(): p for p in CLEAN_POLICIES}


#: A pod setting as read from a cell: the setting, its value (as pod.py read it), its line.
_PodValue = tuple[Setting, Any, int]


@dataclass
class _Role:
    """A role magic as read: its line, its count (None when invalid), its resource magics
    and the pod settings after it on its line."""

    line: int
    count: int | None
    resources: dict[str, str | int] = field(default_factory=dict)
    pod: list[_PodValue] = field(default_factory=list)


@dataclass
class _Reading:
    """What the magic lines say, before the rules that span lines are checked."""

    errors: list[MagicError] = field(default_factory=list)
    framework: str | None = None
    framework_line: int | None = None
    framework_valid: bool = True
    clean_policy: CleanPolicy | None = None
    backend: str = ""
    on_interrupt: str = ""
    procs: tuple[int, int] | None = None  # (line, count)
    runtime: tuple[int, str] | None = None  # (line, name)
    queue: str = ""
    flags: set[str] = field(default_factory=set)
    #: `%requirements` items in cell order, and the line that named each project first.
    requirements: list[str] = field(default_factory=list)
    #: `%files` entries in cell order.
    files: list[str] = field(default_factory=list)
    requirement_lines: dict[str, int] = field(default_factory=dict)
    roles: dict[str, _Role] = field(default_factory=dict)
    commands: list[tuple[Token, MagicDoc, str]] = field(default_factory=list)
    seen: dict[str, int] = field(default_factory=dict)
    #: Pod settings of lines without a role magic: every role's.
    pod: list[_PodValue] = field(default_factory=list)
    #: (scope, field, identity) of each list item (a variable, a mount path) -> its line.
    pod_items: dict[tuple[str, str, str], int] = field(default_factory=dict)
    profile: tuple[int, str] | None = None  # (line, name)
    #: The study magics as read: name -> (line, value as its reader gave it).
    study: dict[str, tuple[int, Any]] = field(default_factory=dict)
    #: `%tune` was given (read or not).
    tuned: bool = False

    def error(self, line: int, magic: str, message: str) -> None:
        self.errors.append(MagicError(line, magic, message))


class MagicInterpreter:
    """The Interpreter of Ciao cells: pure functions of the cell text, no I/O."""

    def __init__(
        self,
        defaults: dict[str, Resources] | None = None,
        default_framework: str = "pytorch",
        name_factory: Callable[[], str] | None = None,
        default_files: Sequence[str] = (),
        pod: PodSettings | None = None,
        profiles: Mapping[str, PodSettings] | None = None,
    ) -> None:
        framework = default_framework.lower()
        if framework not in FRAMEWORKS:
            raise ValueError(f"default framework {default_framework!r} is not one of {FRAMEWORKS}")
        self.default_framework: Framework = framework
        self.defaults = {role.lower(): res for role, res in (defaults or {}).items()}
        self.name_factory = name_factory or random_name
        #: `files:` of the config: what every job takes along, before its own %files.
        self.default_files = list(default_files)
        #: `pod:` of the config: every job's pod settings, under its profile's and its own.
        self.pod = pod or PodSettings()
        #: `profiles:` of the config, which `%profile=NAME` picks from.
        self.profiles: dict[str, PodSettings] = dict(profiles or {})

    def preprocess(self, code: str) -> Parameter:
        """The job the cell describes; raises MagicErrors naming every bad magic at once."""
        result = self.parse(code)
        if isinstance(result, Command):
            line = next(iter(magic_tokens(code)))
            raise MagicErrors([MagicError(line, result.magic, "a kernel command, not a job")])
        return result

    def runs_in_session(self, code: str) -> bool:
        """Whether the cell is the session's: no magic line of it is Ciao's (route.py)."""
        from ciao.interpreter.route import runs_in_session

        return runs_in_session(code)

    def preprocessed_code(self, code: str) -> str:
        """The training code: magic lines emptied (not removed) so line numbers match."""
        lines = split_cell(code)
        for index in find_magic_lines(lines):
            lines[index] = "\r" if lines[index].endswith("\r") else ""
        return "\n".join(lines)

    def parse(self, code: str) -> Parameter | Command:
        """The cell as a job (Parameter) or a kernel command; raises MagicErrors."""
        tokens = magic_tokens(code)
        reading = _Reading()
        for tokens_of_line in tokens.values():
            _read_line(tokens_of_line, reading)
        command = _command(code, tokens, reading)
        _check_shell_escapes(code, reading)
        framework = (
            (reading.framework or self.default_framework) if reading.framework_valid else None
        )
        counts = _check_roles(reading, framework) if framework else {}
        if framework:
            _check_job_magics(reading, framework)
        self._check_profile(reading)
        tune = _check_study(reading)
        if reading.errors:
            raise MagicErrors(reading.errors)
        if command is not None:
            return command
        assert framework is not None
        pod = self._job_pod(reading)
        return Parameter(
            framework=framework,  # type: ignore[arg-type]
            roles=self._role_specs(framework, counts, reading.roles, pod),
            generate_name=self.name_factory(),
            clean_policy=reading.clean_policy,
            code=self.preprocessed_code(code),
            backend=reading.backend,
            dry_run="dryrun" in reading.flags,
            detach="detach" in reading.flags,
            on_interrupt=reading.on_interrupt or "cancel",
            requirements=list(reading.requirements),
            files=[*self.default_files, *(f for f in reading.files if f not in self.default_files)],
            procs_per_node=reading.procs[1] if reading.procs else None,
            runtime=reading.runtime[1] if reading.runtime else "",
            queue=reading.queue,
            pod=pod,
            profile=reading.profile[1] if reading.profile else "",
            tune=tune,
        )

    def _check_profile(self, reading: _Reading) -> None:
        """`%profile=NAME` names one of the config's profiles."""
        if reading.profile is None or reading.profile[1] in self.profiles:
            return
        line, name = reading.profile
        if not self.profiles:
            message = (
                f"unknown profile {excerpt(name)}: the config has no profiles: (write "
                f"profiles: {{{name}: {{...}}}} in it; %config shows which file it reads)"
            )
        else:
            close = difflib.get_close_matches(name, list(self.profiles), n=1, cutoff=0.6)
            hint = f" did you mean {close[0]}?" if close else ""
            known = ", ".join(sorted(self.profiles))
            message = f"unknown profile {excerpt(name)};{hint} the config's profiles are {known}"
        reading.error(line, "%profile", message)

    def _job_pod(self, reading: _Reading) -> PodSettings:
        """Every role's pod settings: config pod < profile < the cell's own lines."""
        base = self.pod
        if reading.profile is not None:
            base = self.profiles[reading.profile[1]].with_defaults(base)
        return _cell_pod(reading.pod).with_defaults(base)

    def _role_specs(
        self, framework: str, counts: dict[str, int], roles: dict[str, _Role], pod: PodSettings
    ) -> dict[str, RoleSpec]:
        specs: dict[str, RoleSpec] = {}
        for role in ROLES[framework]:
            if counts.get(role, 0) > 0:
                source = "nodes" if "nodes" in roles else role  # %nodes: master + workers
                given = roles[source].resources if source in roles else {}
                resources = replace(self.defaults.get(role, Resources()), **given)  # type: ignore[arg-type]
                line_pod = roles[source].pod if source in roles else []
                role_pod = _cell_pod(line_pod).with_defaults(pod) if line_pod else pod
                specs[role] = RoleSpec(role, counts[role], resources, role_pod)
        return specs


def _cell_pod(values: list[_PodValue]) -> PodSettings:
    """The pod settings of some lines of the cell, each from its line."""
    return settings_from((setting, value, f"line {line}") for setting, value, line in values)


def _read_line(tokens: list[Token], reading: _Reading) -> None:
    """Check each token of one magic line on its own; resources and pod settings attach
    to the last role before them (pod settings on a line without a role: every role)."""
    role: str | None = None
    line_roles = [t.text for t in tokens if (d := _doc_of(t)) is not None and d.kind == "role"]
    for token in tokens:
        doc = _token_doc(token, reading)
        if doc is None:
            continue
        if doc.kind == "command":
            arg = token.value if token.value is not None else token.rest
            reading.commands.append((token, doc, arg.strip()))
            continue
        if doc.kind == "flag":
            if token.value is not None or token.rest:
                reading.error(token.line, f"%{doc.name}", f"takes no value: write %{doc.name}")
            elif _first_time(token, doc.name, doc.name, reading):
                reading.flags.add(doc.name)
            continue
        if doc.kind == "study":
            _read_study(token, doc, reading)
            continue
        if doc.kind == "role":
            role = doc.name
        if doc.name == "env" and token.value is None and token.rest:
            message = (
                f"write %env={token.rest.strip()}: IPython's %env NAME=value is the session's, "
                "in a cell without Ciao's magics"
            )
            reading.error(token.line, "%env", message)
            continue
        value = _token_value(token, doc, reading)
        if value is None:
            continue
        if doc.kind == "resource":
            _read_resource(token, doc, value, role, reading)
        elif doc.kind == "pod":
            _read_pod(token, doc, value, role, line_roles, reading)
        elif doc.name == "profile" and line_roles:
            reading.error(token.line, "%profile", _whole_job(line_roles))
        elif doc.name == "requirements":
            _read_requirements(token, value, reading)
        elif doc.name == "files":
            _read_files(token, value, reading)
        elif _first_time(token, doc.name, doc.name, reading):
            _read_magic(token, doc, value, reading)


def _doc_of(token: Token) -> MagicDoc | None:
    return lookup(token.name) if token.has_name else None


def _token_doc(token: Token, reading: _Reading) -> MagicDoc | None:
    """The magic a token names, or None after recording why it names none."""
    if not token.has_name:
        hint = ""
        if not token.text.startswith("%"):
            guess = lookup(token.text.split("=", 1)[0])
            hint = f"; did you mean %{token.text}?" if guess else "; every magic starts with %"
        reading.error(token.line, token.text, f"expected %name=value, like %worker=2{hint}")
        return None
    doc = lookup(token.name)
    if doc is None:
        reading.error(token.line, f"%{token.name}", unknown_magic(token.name))
    return doc


def _token_value(token: Token, doc: MagicDoc, reading: _Reading) -> str | None:
    """The token's value, or None after recording that it is missing or malformed."""
    magic = f"%{doc.name}"
    if token.value is None and token.rest:
        reading.error(token.line, magic, f"expected {doc.usage}, got {excerpt(token.text)}")
    elif token.value is None:
        reading.error(token.line, magic, f"missing value: write {doc.usage}")
    elif not token.value:
        reading.error(token.line, magic, f"empty value: write {doc.usage}")
    return token.value or None


def _first_time(token: Token, key: str, name: str, reading: _Reading) -> bool:
    """False (and an error naming both lines) when a magic is given twice."""
    first = reading.seen.get(key)
    if first is None:
        reading.seen[key] = token.line
        return True
    reading.error(token.line, f"%{name}", _twice(first, token.line))
    return False


def _twice(first: int, line: int) -> str:
    """`given on lines 2 and 5; give it once` (or `twice on line 2`)."""
    where = f"on lines {first} and {line}" if first != line else f"twice on line {first}"
    return f"given {where}; give it once"


def _read_magic(token: Token, doc: MagicDoc, value: str, reading: _Reading) -> None:
    """A job or role magic: record it, or the error that its value is not allowed."""
    magic = f"%{doc.name}"
    if doc.name == "framework":
        reading.framework_line = token.line
        reading.framework = value.lower()
        if reading.framework not in FRAMEWORKS:
            reading.framework_valid = False
            reading.error(token.line, magic, f"unknown framework {excerpt(value)}; {_allowed(doc)}")
    elif doc.name == "onInterrupt":
        reading.on_interrupt = value.lower()
        if reading.on_interrupt not in doc.values:
            reading.error(token.line, magic, f"unknown choice {excerpt(value)}; {_allowed(doc)}")
    elif doc.name == "backend":
        reading.backend = value.lower()
        if reading.backend not in doc.values:
            reading.error(token.line, magic, f"unknown backend {excerpt(value)}; {_allowed(doc)}")
    elif doc.name == "procs":
        count = _count(value)
        if count is None or not 1 <= count <= MAX_PROCS_PER_NODE:
            message = f"processes per node: a whole number from 1 to {MAX_PROCS_PER_NODE}"
            reading.error(token.line, magic, f"{message}, got {excerpt(value)}")
        else:
            reading.procs = (token.line, count)
    elif doc.name == "runtime":
        if not DNS_LABEL.fullmatch(value):
            message = f"{excerpt(value)} is not a runtime name (like torch-distributed)"
            reading.error(token.line, magic, message)
        else:
            reading.runtime = (token.line, value)
    elif doc.name == "queue":
        if not QUEUE_NAME.fullmatch(value):
            reading.error(
                token.line, magic, f"{excerpt(value)} is not a queue name (like team-gpus)"
            )
        else:
            reading.queue = value
    elif doc.name == "profile":
        reading.profile = (token.line, value)
    elif doc.name == "cleanPolicy":
        reading.clean_policy = _POLICIES.get(value.lower())
        if reading.clean_policy is None:
            reading.error(
                token.line, magic, f"unknown clean policy {excerpt(value)}; {_allowed(doc)}"
            )
    else:
        count = _count(value)
        if count is None:
            message = f"the replica count must be a whole number >= 0, got {excerpt(value)}"
            reading.error(token.line, magic, message)
        elif count > MAX_ROLE_REPLICAS:
            message = f"at most {MAX_ROLE_REPLICAS} replicas of a role, got {excerpt(value)}"
            reading.error(token.line, magic, message)
            count = None
        reading.roles[doc.name] = _Role(token.line, count)


def _read_pod(
    token: Token,
    doc: MagicDoc,
    value: str,
    role: str | None,
    line_roles: list[str],
    reading: _Reading,
) -> None:
    """A pod setting: the role's before it on its line, else every role's. Read by
    pod.py's reader; a one-value setting once in a scope, a list item (a variable, a mount
    path, a node label) once in a scope."""
    magic = f"%{doc.name}"
    setting = SETTING_BY_MAGIC[doc.name]
    if not setting.per_role and line_roles:
        reading.error(token.line, magic, _whole_job(line_roles))
        return
    if role is None and line_roles:
        example = f"{line_roles[0]};{magic}=..."
        message = (
            f"goes after the role on its line for that role's replicas ({example}), or on "
            "a line of its own for every role"
        )
        reading.error(token.line, magic, message)
        return
    scope = f"{token.line}.{role}" if role is not None else ""
    if not setting.many and not _first_time(token, f"pod.{scope}.{doc.name}", doc.name, reading):
        return
    try:
        parsed = setting.read(value)
    except SettingError as exc:
        reading.error(token.line, magic, str(exc))
        return
    known = identity(setting.field, parsed)
    if known is not None:
        what, which = known
        first = reading.pod_items.get((scope, setting.field, which))
        if first is not None:
            reading.error(token.line, magic, f"{what} {which} is {_twice(first, token.line)}")
            return
        reading.pod_items[(scope, setting.field, which)] = token.line
    if role is None:
        reading.pod.append((setting, parsed, token.line))
    elif role in reading.roles and reading.roles[role].line == token.line:
        reading.roles[role].pod.append((setting, parsed, token.line))


def _read_study(token: Token, doc: MagicDoc, reading: _Reading) -> None:
    """A study magic, read by tune.py's readers; each once a cell. `%tune` takes its
    parameters after a blank (`%tune lr=loguniform(1e-4,1e-1)`), or after `=`."""
    magic = f"%{doc.name}"
    if doc.name == "tune":
        reading.tuned = True  # even when wrong: the other study magics are its
        value = (token.value if token.value is not None else token.rest).strip()
        if not value:
            reading.error(token.line, magic, f"name the parameters: write {doc.usage}")
            return
    else:
        found = _token_value(token, doc, reading)
        if found is None:
            return
        value = found
    if not _first_time(token, doc.name, doc.name, reading):
        return
    try:
        parsed = _STUDY_READERS[doc.name](value)
    except TuneError as exc:
        reading.error(token.line, magic, str(exc))
        return
    reading.study[doc.name] = (token.line, parsed)


def _bounded(low: int, high: int) -> Callable[[str], int]:
    """A reader of a whole number from `low` to `high`."""

    def read(value: str) -> int:
        count = _count(value)
        if count is None or not low <= count <= high:
            raise TuneError(f"expected a whole number from {low} to {high:,}, got {excerpt(value)}")
        return count

    return read


def _one_of(allowed: Sequence[str], what: str) -> Callable[[str], str]:
    def read(value: str) -> str:
        if value.lower() not in allowed:
            close = difflib.get_close_matches(value.lower(), list(allowed), n=1, cutoff=0.6)
            hint = f" did you mean {close[0]}?" if close else ""
            raise TuneError(f"unknown {what} {excerpt(value)};{hint} allowed: {', '.join(allowed)}")
        return value.lower()

    return read


_STUDY_READERS: dict[str, Callable[[str], Any]] = {
    "tune": read_space,
    "objective": read_objective,
    "trials": _bounded(1, MAX_TRIALS),
    "parallel": _bounded(1, MAX_PARALLEL),
    "seed": _bounded(0, MAX_SEED),
    "algorithm": _one_of(ALGORITHMS, "algorithm"),
    "earlyStopping": _one_of(EARLY_STOPPING, "early stopping rule"),
}


def _check_study(reading: _Reading) -> TuneSpec | None:
    """The study of a `%tune` cell, every rule across its magics checked: %objective is
    needed, the others need %tune, %parallel is at most %trials, grid enumerates only
    choice and int parameters (Optuna's GridSampler takes explicit values, Katib's grid a
    list or a step) and runs at most its points."""
    study = reading.study
    if "tune" not in study:
        if reading.tuned:
            return None  # the %tune line's own error says what is wrong
        for name, (line, _) in study.items():
            message = (
                "belongs to a study: add %tune name=distribution(...) ... (the parameters to tune)"
            )
            reading.error(line, f"%{name}", message)
        return None
    tune_line, space = study["tune"]
    if "objective" not in study:
        message = (
            "needs %objective=minimize:METRIC or maximize:METRIC (a metric its trials print, "
            "like val_loss=0.42)"
        )
        reading.error(tune_line, "%tune", message)
        return None
    algorithm = study.get("algorithm", (0, "tpe"))[1]
    trials = study.get("trials", (0, DEFAULT_TRIALS))[1]
    if algorithm == "grid":
        line = study["algorithm"][0]
        for name, distribution in space:
            if distribution.kind not in GRID_KINDS:
                message = (
                    f"grid tries every combination of choice(...) and int(a,b) parameters; "
                    f"{name} is {distribution.describe()}: give it as choice(...) or use "
                    "another algorithm"
                )
                reading.error(line, "%algorithm", message)
                return None
        points = grid_points(space)
        if "trials" in study and trials > points:
            message = f"the grid has {points} points: run at most %trials={points}"
            reading.error(study["trials"][0], "%trials", message)
            return None
        if "trials" not in study:
            if points > MAX_TRIALS:
                message = (
                    f"the grid has more than {MAX_TRIALS:,} points: say how many to try "
                    "with %trials=N"
                )
                reading.error(line, "%algorithm", message)
                return None
            trials = points
    parallel = study.get("parallel", (0, 1))[1]
    if parallel > trials:
        given = ""
        if "trials" not in study:
            given = " (the grid's size)" if algorithm == "grid" else " (the default)"
        message = f"runs at most %trials={trials}{given} trials at once, got {parallel}"
        reading.error(study["parallel"][0], "%parallel", message)
        return None
    return TuneSpec(
        space=space,
        objective=study["objective"][1],
        trials=trials,
        parallel=parallel,
        algorithm=algorithm,
        early_stopping=study.get("earlyStopping", (0, ""))[1],
        seed=study["seed"][1] if "seed" in study else None,
    )


def _whole_job(line_roles: list[str]) -> str:
    """The error of a whole-job setting (%image, %profile) on a role's line."""
    return (
        f"is the whole job's, not a role's: put it on a line of its own, not with {line_roles[0]}"
    )


def _read_files(token: Token, value: str, reading: _Reading) -> None:
    """`%files=data/a.csv,configs/`: paths inside the notebook's folder, in cell order;
    several lines add up. Whether each exists is the S2I step's to check (it reads disk)."""
    for item in (part.strip() for part in value.split(",")):
        parts = item.replace("\\", "/").split("/")
        if not item:
            reading.error(token.line, "%files", "an empty path between commas")
        elif item.startswith(("/", "~")) or ".." in parts:
            reading.error(
                token.line,
                "%files",
                f"{excerpt(item)} is not inside the notebook's folder: name it relative to it",
            )
        elif item not in reading.files:
            reading.files.append(item)


def _read_requirements(token: Token, value: str, reading: _Reading) -> None:
    """`%requirements=a,b==1`: each item a PEP 508 requirement, each project named once
    (the magic may be given on several lines; they add up)."""
    for item in split_requirements(value):
        problem = requirement_problem(item)
        if problem is not None:
            reading.error(token.line, "%requirements", problem)
            continue
        name = requirement_name(item)
        first = reading.requirement_lines.get(name)
        if first is not None:
            where = f"line {first}" if first != token.line else "this line"
            message = f"{name} is already required on {where}; name each package once"
            reading.error(token.line, "%requirements", message)
            continue
        reading.requirement_lines[name] = token.line
        reading.requirements.append(item)


def _read_resource(
    token: Token, doc: MagicDoc, value: str, role: str | None, reading: _Reading
) -> None:
    """A resource magic: it belongs to the role before it on the same line."""
    magic = f"%{doc.name}"
    if role is None:
        example = f"%worker=2;{magic}={_EXAMPLE[doc.name]}"
        message = f"sets a role's resources: put it after the role on its line, e.g. {example}"
        reading.error(token.line, magic, message)
        return
    if not _first_time(token, f"{token.line}.{role}.{doc.name}", doc.name, reading):
        return
    parsed: str | int | None
    if doc.name == "gpu":
        parsed = _count(value)
        if parsed is None or parsed > MAX_GPUS:
            message = f"the number of GPUs must be a whole number from 0 to {MAX_GPUS}"
            reading.error(token.line, magic, f"{message}, got {excerpt(value)}")
            parsed = None
    else:
        problem = check_quantity(doc.name, value)
        parsed = value if problem is None else None
        if problem is not None:
            reading.error(token.line, magic, problem)
    if parsed is not None and role in reading.roles and reading.roles[role].line == token.line:
        reading.roles[role].resources[doc.name] = parsed


#: Replicas of one role, and GPUs of one replica, at most.
MAX_ROLE_REPLICAS = 1000
MAX_GPUS = 64


def _count(value: str) -> int | None:
    """A whole number >= 0 written in ASCII digits (no sign, no `2.0`, no `１`), or None.
    More than 9 significant digits read as 10**9: over every limit, and never handed to
    int() whole (thousands of digits cost time, and Python refuses over 4300)."""
    if not (value.isascii() and value.isdigit()):
        return None
    significant = value.lstrip("0") or "0"
    return int(significant) if len(significant) <= 9 else 10**9


def _command(code: str, tokens: dict[int, list[Token]], reading: _Reading) -> Command | None:
    """The Command when the cell is one command line; errors when mixed with more."""
    if not reading.commands:
        return None
    alone = sum(1 for line in split_cell(code) if line.strip()) == 1
    for token, doc, arg in reading.commands:
        magic = f"%{doc.name}"
        if not alone or len(tokens[token.line]) > 1 or len(reading.commands) > 1:
            reading.error(token.line, magic, "a kernel command: run it alone in its cell")
        elif doc.name == "config" and arg:
            reading.error(token.line, magic, f"takes no argument, got {excerpt(arg)}")
        elif doc.name in ("status", "attach", "delete", "logs", "metrics"):
            parsed = _job_command(doc.name, arg.split())
            if isinstance(parsed, str):
                reading.error(token.line, magic, f"{parsed}; write {doc.usage}")
            else:
                return parsed
        elif doc.name == "help":
            topic = lookup(arg) if arg else None
            if arg and topic is None:
                reading.error(token.line, magic, unknown_magic(arg.removeprefix("%").strip()))
            else:
                return HelpCommand(topic.name if topic else None)
        elif doc.name == "config":
            return ConfigCommand()
        elif doc.name in ("study", "best"):
            study = _study_command(doc.name, arg.split())
            if isinstance(study, str):
                reading.error(token.line, magic, f"{study}; write {doc.usage}")
            else:
                return study
        elif doc.name == "pip":
            args = _pip_args(arg)
            if isinstance(args, str):
                reading.error(token.line, magic, f"{args}; write {doc.usage}")
            else:
                return PipCommand(args)
        else:
            jobs = _jobs_command(arg.split())
            if isinstance(jobs, str):
                reading.error(token.line, magic, f"{jobs}; write {doc.usage}")
            else:
                return jobs
    return None


def _check_shell_escapes(code: str, reading: _Reading) -> None:
    """`!command` lines are IPython's, not Python: found here, before a job is made, with
    what to do instead (the job would end in a SyntaxError)."""
    lines = split_cell(code)
    for index in find_shell_lines(lines):
        text = lines[index].strip()
        pip = re.match(r"!\s*(?:python3?\s+-m\s+)?pip3?\s+(.*)$", text)
        if pip:
            args = pip.group(1).strip()
            hint = f"to install packages for the replicas, run %pip {args} in a cell of its own"
        else:
            hint = "run it in a terminal, or from Python with subprocess.run([...])"
        reading.error(
            index + 1,
            text.split()[0][:40],
            f"shell commands do not run in Ciao cells (each cell is a job, not IPython): {hint}",
        )


def _pip_args(arg: str) -> tuple[str, ...] | str:
    """pip's arguments as a shell would split them (quotes kept together), or what is
    wrong; they become an argument list, never a shell command."""
    try:
        args = tuple(shlex.split(arg))
    except ValueError as exc:
        return f"cannot read the arguments: {exc}"
    return args if args else "missing pip's command"


def _jobs_command(args: list[str]) -> JobsCommand | str:
    """`%jobs [--all] [--limit N]`, or what is wrong with its arguments."""
    everyone, limit = False, DEFAULT_JOBS_LIMIT
    while args:
        option, args = args[0], args[1:]
        if option == "--all":
            everyone = True
        elif option == "--limit":
            count = _count(args[0]) if args else None
            if count is None or count < 1:
                return "--limit needs a whole number >= 1"
            limit, args = count, args[1:]
        else:
            return f"unexpected {excerpt(option)}"
    return JobsCommand(everyone, limit)


#: A replica's name: its role's (or a TrainJob node's) and its index.
_REPLICA = re.compile(rf"({'|'.join((*ALL_ROLES, 'node'))})-\d+")


def _job_command(name: str, args: list[str]) -> JobCommand | LogsCommand | MetricsCommand | str:
    """The command %status/%attach/%delete/%logs/%metrics with these arguments, or what
    is wrong."""
    if not args:
        return "missing the job's name"
    job = args[0]
    if not DNS_LABEL.fullmatch(job):
        return f"{excerpt(job)} is not a job name"
    rest = args[1:]
    if name == "metrics":
        if len(rest) > 1:
            return f"unexpected {excerpt(' '.join(rest[1:]))} (one metric at most)"
        if rest and not METRIC_NAME.fullmatch(rest[0]):
            return f"{excerpt(rest[0])} is not a metric name (letters, digits, _, - or |)"
        return MetricsCommand(job, rest[0] if rest else None)
    if name != "logs":
        if rest:
            return f"unexpected {excerpt(' '.join(rest))}"
        return JobCommand(name, job)  # type: ignore[arg-type]
    replica = tail = None
    if rest and _REPLICA.fullmatch(rest[0]):
        replica, rest = rest[0], rest[1:]
    if rest[:1] == ["--tail"]:
        count = _count(rest[1]) if len(rest) > 1 else None
        if count is None or count < 1:
            return "--tail needs a whole number >= 1"
        tail, rest = count, rest[2:]
    if rest:
        return f"unexpected {excerpt(' '.join(rest))} (a replica is like worker-0)"
    return LogsCommand(job, replica, tail)


def _study_command(name: str, args: list[str]) -> StudyCommand | str:
    """`%study NAME`, `%best NAME`, or what is wrong with the arguments."""
    if not args:
        return "missing the study's name"
    if not DNS_LABEL.fullmatch(args[0]):
        return f"{excerpt(args[0])} is not a study's name"
    if len(args) > 1:
        return f"unexpected {excerpt(' '.join(args[1:]))}"
    return StudyCommand(name, args[0])  # type: ignore[arg-type]


def _check_roles(reading: _Reading, framework: str) -> dict[str, int]:
    """Rules across lines (roles per framework, one master...); returns the replica counts."""
    allowed = ROLES[framework]
    for role, seen in reading.roles.items():
        if role not in allowed:
            others = [f for f in FRAMEWORKS if role in ROLES[f]]
            message = f"{framework} jobs have only {_and(allowed)}"
            reading.error(seen.line, f"%{role}", f"{message}; %{role} is a {_and(others)} role")
    counts = {r: s.count for r, s in reading.roles.items() if r in allowed and s.count is not None}
    unknown = {r for r, s in reading.roles.items() if s.count is None}
    if not reading.roles:
        return {MAIN_ROLE[framework]: 1}
    line = reading.framework_line or 1
    if framework == "pytorch":
        _check_pytorch(reading, counts, unknown, line)
    else:
        _check_tensorflow(reading, counts, unknown)
    return counts


def _check_pytorch(reading: _Reading, counts: dict[str, int], unknown: set[str], line: int) -> None:
    if "nodes" in reading.roles:
        _check_nodes(reading, counts, unknown)
        return
    if "master" in unknown:
        return
    if "master" not in reading.roles:
        message = "a PyTorch cell needs %master=1 (the rank-0 replica); add workers with %worker=N"
        reading.error(line, "%master", message)
    elif counts["master"] != 1:
        message = f"a PyTorch job has exactly one master: %master=1, got {counts['master']}"
        reading.error(reading.roles["master"].line, "%master", message)


def _check_nodes(reading: _Reading, counts: dict[str, int], unknown: set[str]) -> None:
    """`%nodes=N`: node 0 is the master, the others workers (how v1 and local count)."""
    nodes = reading.roles["nodes"]
    both = [r for r in ("master", "worker") if r in reading.roles]
    if both:
        message = f"give %nodes or %{' and %'.join(both)}, not both (%nodes=N is %master=1 "
        reading.error(nodes.line, "%nodes", message + "with %worker=N-1)")
        return
    if "nodes" in unknown:
        return
    total = counts.pop("nodes")
    if total < 1:
        reading.error(nodes.line, "%nodes", f"a PyTorch job has at least one node, got {total}")
        return
    counts["master"], counts["worker"] = 1, total - 1


def _check_job_magics(reading: _Reading, framework: str) -> None:
    """Magics only some frameworks take."""
    if framework == "pytorch":
        return
    if reading.procs is not None:
        message = "processes per node are torchrun's: %procs is for PyTorch cells"
        reading.error(reading.procs[0], "%procs", message)
    if reading.runtime is not None:
        message = (
            "a Trainer v2 runtime runs PyTorch cells (Trainer v2 has no TensorFlow runtime; "
            "TensorFlow cells run as TFJobs on Training Operator v1)"
        )
        reading.error(reading.runtime[0], "%runtime", message)


def _check_tensorflow(reading: _Reading, counts: dict[str, int], unknown: set[str]) -> None:
    for role in ("chief", "master"):
        if counts.get(role, 0) > 1:
            message = f"a TensorFlow job has at most one chief: %{role}=1, got {counts[role]}"
            reading.error(reading.roles[role].line, f"%{role}", message)
    if counts.get("chief", 0) >= 1 and counts.get("master", 0) >= 1:
        later = max(("chief", "master"), key=lambda r: reading.roles[r].line)
        message = "a TensorFlow job has one chief: give %chief or %master, not both"
        reading.error(reading.roles[later].line, f"%{later}", message)
    main = [r for r in ("chief", "master", "worker") if r in reading.roles]
    if not main:
        counts["worker"] = 1  # e.g. `%ps=1` alone: the code needs a replica that runs it
    elif not unknown.intersection(main) and not any(counts[r] for r in main):
        message = "a TensorFlow job needs a chief, master or worker to run the code, e.g. %worker=1"
        reading.error(reading.roles[main[0]].line, f"%{main[0]}", message)


def _allowed(doc: MagicDoc) -> str:
    return "allowed: " + ", ".join(doc.values)


def _and(words: Sequence[str]) -> str:
    """`master and worker`, `chief, master, ps, worker and evaluator`."""
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
