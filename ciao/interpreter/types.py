"""Phase 1 of a cell: what the magics say (the Go `types.Parameter`), and the Interpreter seam."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Literal, Protocol

from ciao.interpreter.pod import PodSettings

if TYPE_CHECKING:
    from ciao.interpreter.carry import Carried
    from ciao.interpreter.tune import TuneSpec

Framework = Literal["tensorflow", "pytorch"]
CleanPolicy = Literal["All", "Running", "None"]

FRAMEWORKS: tuple[Framework, ...] = ("tensorflow", "pytorch")
CLEAN_POLICIES: tuple[CleanPolicy, ...] = ("All", "Running", "None")

#: Replica roles each framework accepts, in the order the operator lists them.
#: Magic names are these in lower case; the operator's replica types are in REPLICA_TYPES.
ROLES: dict[str, tuple[str, ...]] = {
    "tensorflow": ("chief", "master", "ps", "worker", "evaluator"),
    "pytorch": ("master", "worker", "nodes"),
}
#: `%procs` at most: processes per node.
MAX_PROCS_PER_NODE = 256
#: Every replica role (TensorFlow's are all five; PyTorch's `nodes` is a count, not one).
ALL_ROLES: tuple[str, ...] = ROLES["tensorflow"]

#: The operator's replica-type key for each role (`tfReplicaSpecs.PS`, `...Worker`).
REPLICA_TYPES: dict[str, str] = {
    "chief": "Chief",
    "master": "Master",
    "ps": "PS",
    "worker": "Worker",
    "evaluator": "Evaluator",
}


#: A Kueue LocalQueue name as a label value takes it: a DNS-1123 subdomain of at most 63.
QUEUE_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?")


@dataclass(frozen=True)
class Resources:
    """Per-replica requests (and limits) of one role; None means "not set"."""

    cpu: str | None = None
    memory: str | None = None
    gpu: int = 0


@dataclass(frozen=True)
class RoleSpec:
    """One role of the job: how many replicas and what each gets."""

    role: str
    count: int
    resources: Resources = field(default_factory=Resources)
    #: The role's pod settings: the job's (`Parameter.pod`) with its own line's on top.
    pod: PodSettings = field(default_factory=PodSettings)


@dataclass
class Parameter:
    """Everything a backend needs to run the cell, in the Go Parameter's terms.

    `roles` keeps the cell's roles in operator order; roles with count 0 are absent.
    Nothing changes a Parameter after phase 1 but `carried` and `directory`, which the
    kernel adds from the notebook before anything is planned: what phase 2 ships is its
    own record (`ciao.s2i.types.Shipment`), and a backend's plan holds both.
    """

    framework: Framework
    roles: dict[str, RoleSpec]
    generate_name: str = ""
    clean_policy: CleanPolicy | None = None
    code: str = ""
    #: `%backend` of the cell; empty: the config's `backend`.
    backend: str = ""
    #: `%dryrun`: show what would run, submit nothing. `%detach`: submit and end the cell.
    dry_run: bool = False
    detach: bool = False
    #: `%onInterrupt`: "cancel" the job (default) or "detach" from it.
    on_interrupt: str = "cancel"
    #: `%requirements` of the cell: PEP 508 requirements (no markers), in the cell's order,
    #: each project once. Phase 2 ships them (requirements.txt) or checks them (local).
    requirements: list[str] = field(default_factory=list)
    #: Who submitted the job (kernel id, session, cell), for labels that find it again.
    owner: dict[str, str] = field(default_factory=dict)
    #: `%procs`: processes per node (torchrun's --nproc-per-node); None: the default.
    procs_per_node: int | None = None
    #: `%runtime`: the Kubeflow Trainer v2 training runtime; empty: the config's.
    runtime: str = ""
    #: `%queue`: the Kueue LocalQueue of a Kubeflow job; empty: the config's (or none).
    queue: str = ""
    #: `%files` (after the config's `files:`): paths in the notebook's folder that travel.
    files: list[str] = field(default_factory=list)
    #: What the cell takes from the notebook's earlier cells and session; set by the
    #: kernel before planning (it alone has the history), None where no notebook is.
    carried: Carried | None = None
    #: The notebook's folder (the kernel's working directory): where local replicas run
    #: and `%files` are found.
    directory: str = "."
    #: Pod settings of every role: config `pod:`, then the `%profile`'s, then the cell's
    #: own lines; a role's line adds its own (`RoleSpec.pod`).
    pod: PodSettings = field(default_factory=PodSettings)
    #: `%tune` and its magics: the cell is a study whose trials are this job; None: a job.
    tune: TuneSpec | None = None
    #: `%profile` of the cell: a name in the config's `profiles:` (its settings are in
    #: `pod`); "" for none.
    profile: str = ""
    #: A Katib trial's: the file its replicas also append their metric lines to (main.py
    #: tees them), where Katib's File metrics collector reads them, leaving the container's
    #: own log to Ciao. Katib runs the container's command as `<command> && echo completed >
    #: ...`, so that command must end rather than `exec` another. Empty: a job's.
    metrics_file: str = ""

    def count(self, role: str) -> int:
        spec = self.roles.get(role)
        return spec.count if spec else 0

    def resources(self, role: str) -> Resources:
        spec = self.roles.get(role)
        return spec.resources if spec else Resources()

    def pod_of(self, role: str) -> PodSettings:
        """The pod settings of `role`'s replicas (the job's, with the role line's on top)."""
        spec = self.roles.get(role)
        return spec.pod if spec else self.pod

    @property
    def total_replicas(self) -> int:
        return sum(spec.count for spec in self.roles.values())

    @property
    def effective_clean_policy(self) -> CleanPolicy:
        """The policy sent to the operator: the user's, else Running with PS, else None.

        With PS and `None`, parameter servers never exit after success (kubeflow contract).
        """
        if self.clean_policy is not None:
            return self.clean_policy
        return "Running" if self.count("ps") else "None"

    def replica_names(self) -> list[str]:
        """`role-index` of every replica, in operator order (`master-0`, `worker-0`, ...)."""
        return [f"{role}-{i}" for role, spec in self.roles.items() for i in range(spec.count)]


@dataclass(frozen=True)
class HelpCommand:
    """`%help [magic]`: the magic reference, or one magic's page."""

    topic: str | None = None
    magic: ClassVar[str] = "%help"


@dataclass(frozen=True)
class ConfigCommand:
    """`%config`: the effective configuration."""

    magic: ClassVar[str] = "%config"


#: How many jobs `%jobs` lists unless told otherwise.
DEFAULT_JOBS_LIMIT = 20


@dataclass(frozen=True)
class JobsCommand:
    """`%jobs [--all] [--limit N]`: this notebook's latest jobs (every notebook's with
    --all), at most `limit` of them."""

    everyone: bool = False
    limit: int = DEFAULT_JOBS_LIMIT
    magic: ClassVar[str] = "%jobs"


@dataclass(frozen=True)
class JobCommand:
    """`%status NAME`, `%attach NAME`, `%delete NAME`: one job, by name."""

    action: Literal["status", "attach", "delete"]
    job: str

    @property
    def magic(self) -> str:
        return f"%{self.action}"


@dataclass(frozen=True)
class LogsCommand:
    """`%logs NAME [replica] [--tail N]`: a job's log (one replica's, its last N lines)."""

    job: str
    replica: str | None = None
    tail: int | None = None
    magic: ClassVar[str] = "%logs"


@dataclass(frozen=True)
class MetricsCommand:
    """`%metrics NAME [metric]`: a job's metrics (its lines in Katib's `name=value`
    format) as a table, and as columns in the session; one metric's, or all."""

    job: str
    metric: str | None = None
    magic: ClassVar[str] = "%metrics"


@dataclass(frozen=True)
class StudyCommand:
    """`%study NAME` (its trial table again), `%best NAME` (its best trial's parameters)."""

    action: Literal["study", "best"]
    study: str

    @property
    def magic(self) -> str:
        return f"%{self.action}"


@dataclass(frozen=True)
class PipCommand:
    """`%pip install PACKAGE...`: pip, run in the Python the local replicas run."""

    args: tuple[str, ...]
    magic: ClassVar[str] = "%pip"


#: A cell that is a kernel command, not a job; each alone in its cell, checked once here.
Command = (
    HelpCommand
    | ConfigCommand
    | JobsCommand
    | JobCommand
    | LogsCommand
    | MetricsCommand
    | StudyCommand
    | PipCommand
)


class Interpreter(Protocol):
    """Reads a cell's magics (the Go `interpreter.Interpreter`). Pure: no I/O. The
    Manager reads every cell through it (`parse`)."""

    def parse(self, code: str) -> Parameter | Command:
        """The cell as a job, or as a kernel command (%jobs, %logs...); raises MagicErrors
        naming every bad magic line."""
        ...

    def preprocess(self, code: str) -> Parameter:
        """The job the cell describes; raises MagicErrors naming every bad magic line."""
        ...

    def runs_in_session(self, code: str) -> bool:
        """Whether the cell is the session's (it names no Ciao magic), when the session
        is on; otherwise every cell is `parse`d."""
        ...

    def preprocessed_code(self, code: str) -> str:
        """The training code: the cell with magic lines blanked, so line numbers match."""
        ...
