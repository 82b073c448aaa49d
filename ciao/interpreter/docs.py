"""The magic reference: one table that `%help`, completion, inspection and errors all read."""

from __future__ import annotations

import difflib
import html
import re
import textwrap
from dataclasses import dataclass
from typing import Literal

from ciao.errors import MagicError, MagicErrors
from ciao.interpreter.pod import EFFECTS, VOLUME_KINDS
from ciao.interpreter.tune import ALGORITHMS, DISTRIBUTIONS, EARLY_STOPPING

MagicKind = Literal["job", "flag", "role", "resource", "pod", "study", "command"]


@dataclass(frozen=True)
class MagicDoc:
    """What one magic is: its kind, the values it takes (for completion), its doc.

    `values` lists the allowed values as users type them (empty when any number or quantity
    is allowed); `arg` is the placeholder shown in usage lines (`<count>`). `hints` are
    starts of free-form values that completion offers (`pvc:`), after the last
    `hint_after` in the value when that is set (a toleration's effect after its `:`).
    `blank`: written with a blank before its value, like a command (`%tune lr=...`).
    """

    name: str
    kind: MagicKind
    values: tuple[str, ...]
    summary: str
    doc: str
    arg: str = ""
    hints: tuple[str, ...] = ()
    hint_after: str = ""
    blank: bool = False

    @property
    def usage(self) -> str:
        """How the magic is written: `%worker=<count>`, `%help [magic]`."""
        if self.kind in ("command", "flag") or self.blank:
            return f"%{self.name} {self.arg}".rstrip()
        return f"%{self.name}={self.arg}"


def _role(name: str, summary: str, doc: str) -> MagicDoc:
    return MagicDoc(name, "role", (), summary, doc, "<count>")


#: Where a pod setting applies, said once for every pod magic's doc.
_POD_SCOPE = (
    "On a line of its own it is every role's; after a role on the role's line, that\n"
    "role's alone (on top of the job's): %worker=4;%gpu=1;%{name}=..."
)


def _pod(
    name: str,
    summary: str,
    doc: str,
    arg: str,
    hints: tuple[str, ...] = (),
    hint_after: str = "",
    scope: bool = True,
) -> MagicDoc:
    """A pod setting's magic (pod.py's SETTINGS reads its value); the scope rule is
    added to its doc before the example."""
    prose, _, example = doc.partition("Example:\n")
    where = _POD_SCOPE.replace("{name}", name) + "\n" if scope else ""
    return MagicDoc(
        name, "pod", (), summary, f"{prose}{where}Example:\n{example}", arg, hints, hint_after
    )


#: Node labels clusters commonly select GPU nodes and zones by (completion offers them).
NODE_LABELS = (
    "nvidia.com/gpu.product=",
    "node.kubernetes.io/instance-type=",
    "topology.kubernetes.io/zone=",
    "kubernetes.io/arch=",
    "kubernetes.io/hostname=",
)


_DOCS = (
    MagicDoc(
        "framework",
        "job",
        ("tensorflow", "pytorch"),
        "Which operator runs the cell: a TFJob (tensorflow) or a PyTorchJob (pytorch).",
        "Case-insensitive. Without it the cell uses the kernel's default framework.\n"
        "Example:\n    %framework=tensorflow",
        "tensorflow|pytorch",
    ),
    _role(
        "chief",
        "TensorFlow: the one replica that coordinates training and saves checkpoints.",
        "At most one chief (or master) per job; the job succeeds when the chief does.\n"
        "Example:\n    %framework=tensorflow\n    %chief=1\n    %worker=2",
    ),
    _role(
        "master",
        "PyTorch: the rank-0 replica, exactly one (%master=1). TensorFlow: the chief's old name.",
        "PyTorch jobs need exactly one master; the workers connect to it (MASTER_ADDR).\n"
        "Example:\n    %framework=pytorch\n    %master=1;%cpu=1;%memory=2Gi\n    %worker=2",
    ),
    _role(
        "ps",
        "TensorFlow: parameter servers that hold the model's variables.",
        "Parameter servers never exit on their own, so with PS the clean policy defaults to\n"
        "running (their pods are deleted when the job ends).\n"
        "Example:\n    %framework=tensorflow\n    %ps=1;%cpu=500m;%memory=1Gi\n    %worker=2",
    ),
    _role(
        "worker",
        "Replicas that run the training code (PyTorch: ranks 1..N; TensorFlow: the main role).",
        "A count >= 0; 0 leaves the role out. A TensorFlow cell without chief, master or worker\n"
        "gets one worker.\n"
        "Example:\n    %worker=2;%cpu=1;%memory=2Gi;%gpu=1",
    ),
    _role(
        "evaluator",
        "TensorFlow: a replica that evaluates checkpoints beside the training cluster.",
        "Example:\n    %framework=tensorflow\n    %chief=1\n    %worker=2\n    %evaluator=1",
    ),
    _role(
        "nodes",
        "PyTorch: N nodes of one kind, node 0 the rank-0 one (%master=1 with %worker=N-1).",
        "The way Kubeflow Trainer v2 counts (TrainJob numNodes); on a v1 cluster and locally\n"
        "it is a master and N-1 workers. Resources after it apply to every node.\n"
        "Example:\n    %framework=pytorch\n    %nodes=3;%cpu=2;%memory=4Gi",
    ),
    MagicDoc(
        "cpu",
        "resource",
        (),
        "CPU of each replica of the role on the same line: a Kubernetes quantity > 0.",
        "Goes after the role on its line; overrides only the CPU of the configured default.\n"
        "500m is half a core; 1 or 2.5 are cores. On Kubernetes only: local replicas are\n"
        "processes of this machine, never limited (the cell notes it).\n"
        "Example:\n    %worker=2;%cpu=500m",
        "<quantity>",
    ),
    MagicDoc(
        "memory",
        "resource",
        (),
        "Memory of each replica of the role on the same line: a Kubernetes quantity in bytes.",
        "Goes after the role on its line; overrides only the memory of the configured default.\n"
        "Use binary suffixes (512Mi, 1Gi) or decimal ones (500M, 2G); 100m is 0.1 byte.\n"
        "On Kubernetes only: local replicas are never limited (the cell notes it).\n"
        "Example:\n    %worker=2;%memory=2Gi",
        "<quantity>",
    ),
    MagicDoc(
        "gpu",
        "resource",
        (),
        "GPUs (nvidia.com/gpu) of each replica of the role on the same line: a whole number.",
        "Goes after the role on its line; 0 means no GPU. On Kubernetes only: local replicas\n"
        "see every GPU of this machine (the cell notes it).\n"
        "Example:\n    %worker=2;%gpu=1",
        "<count>",
    ),
    MagicDoc(
        "cleanPolicy",
        "job",
        ("all", "running", "none"),
        "Which pods are deleted when the job ends: all, running (those still running) or none.",
        "Case-insensitive. Default: none (keep pods for their logs), running when the job has\n"
        "parameter servers.\nExample:\n    %cleanPolicy=running",
        "all|running|none",
    ),
    MagicDoc(
        "backend",
        "job",
        ("local", "kubeflow"),
        "Where this cell runs: local processes, or a Kubeflow job on Kubernetes.",
        "Overrides `backend:` of the config file for this cell only.\n"
        "local runs the replicas on this machine with the operator's environment;\n"
        "kubeflow submits a TFJob / PyTorchJob to the cluster of the kubeconfig.\n"
        "Example:\n    %backend=kubeflow",
        "local|kubeflow",
    ),
    MagicDoc(
        "procs",
        "job",
        (),
        "PyTorch: processes per node (torchrun --nproc-per-node), each with its own rank.",
        "Every node runs the cell N times, with RANK, LOCAL_RANK and WORLD_SIZE as torchrun\n"
        "sets them (world size = nodes x N). Trainer v2: numProcPerNode; v1:\n"
        "PET_NPROC_PER_NODE; locally N processes per replica. Default: one per node.\n"
        "With N > 1 each line comes whole, marked with its process: [default<local rank>]:.\n"
        "Example:\n    %framework=pytorch\n    %nodes=2\n    %procs=4",
        "<count>",
    ),
    MagicDoc(
        "runtime",
        "job",
        (),
        "Kubeflow Trainer v2: the training runtime of the TrainJob (default torch-distributed).",
        "A ClusterTrainingRuntime (or TrainingRuntime of the namespace) that must exist; the\n"
        "error lists those that do. Overrides `kubeflow.runtime` of the config.\n"
        "Example:\n    %runtime=torch-distributed",
        "<name>",
    ),
    MagicDoc(
        "queue",
        "job",
        (),
        "Kubeflow: the Kueue LocalQueue the job waits in until the queue admits it.",
        "Sets the job's label kueue.x-k8s.io/queue-name, on every Kubeflow API (TrainJob,\n"
        "PyTorchJob, TFJob); while the queue holds the job the cell says it is suspended.\n"
        "Overrides `kubeflow.queue` of the config; local runs do not queue. With\n"
        "%schedulerName=volcano (Training Operator v1) it is Volcano's queue instead: the\n"
        "job's runPolicy.schedulingPolicy.queue, every replica started at once or none.\n"
        "Example:\n    %queue=team-gpus",
        "<name>",
    ),
    MagicDoc(
        "requirements",
        "job",
        (),
        "Python packages the job's replicas need, as pip requirements separated by commas.",
        "Each item is a PEP 508 requirement (name, extras, versions; no `;` markers). A comma\n"
        "before a version clause stays with it: numpy>=1.26,<2 is one requirement. Several\n"
        "%requirements lines add up; one package is named once.\n"
        "kubeflow: installed with pip in every replica before the code runs (configmap),\n"
        "or built into the image (s2i: requirements.txt; img: a pip install layer).\n"
        "local: checked against the kernel's environment; a warning names what is missing.\n"
        "Example:\n    %requirements=pandas==2.2,scikit-learn>=1.4,numpy>=1.26,<2",
        "<requirement>,...",
    ),
    MagicDoc(
        "files",
        "job",
        (),
        "Files and folders beside the notebook that the job's replicas need, by commas.",
        "Paths relative to the notebook's folder (globs work: data/*.csv); a folder travels\n"
        "whole, minus what .gitignore and .ciaoignore list. Replicas find them at the same\n"
        "relative paths in a writable working directory. Modules the cell imports from the\n"
        "notebook's folder (import utils) travel without being named here.\n"
        "local: replicas run in the notebook's folder, so its files are already there.\n"
        "kubeflow: in the job's ConfigMap up to its 1 MiB; more needs an image\n"
        "(s2i: {provider: img} or s2i) or a volume. `files:` in the config adds to every job.\n"
        "Example:\n    %files=data/small.csv,configs/",
        "<path>,...",
    ),
    MagicDoc(
        "onInterrupt",
        "job",
        ("cancel", "detach"),
        "What an interrupt (Ctrl-C, the stop button) does to the job: cancel it, or detach.",
        "cancel (the default) stops every replica and deletes the job and what it created;\n"
        "detach stops following it and leaves it running: %attach NAME follows it again.\n"
        "Example:\n    %onInterrupt=detach",
        "cancel|detach",
    ),
    MagicDoc(
        "profile",
        "job",
        (),
        "Pod settings by name: one of the config's profiles: (GPU nodes, volumes, secrets).",
        "A profile holds any pod setting (the magics below) and affinity, securityContext,\n"
        "labels and annotations, written once in the config's profiles:. The job's settings\n"
        "are the config's pod:, then the profile's, then the cell's own lines, then a\n"
        "role's line: each later one wins (a variable, a mount path or a node label given\n"
        "again replaces the earlier one; tolerations and pull secrets add up). The whole\n"
        "job's: on a line of its own. %config lists the profiles.\n"
        "Example:\n    %profile=a100\n    %nodes=2;%gpu=8",
        "<name>",
    ),
    _pod(
        "volume",
        "Mount a volume: an existing PVC, a scratch emptyDir, a ConfigMap or Secret as files.",
        "pvc:CLAIM:/path[:ro]         an existing PersistentVolumeClaim (ro: read-only)\n"
        "emptyDir:/path[:SIZE]        an empty folder of the pod (SIZE: its limit, like 20Gi)\n"
        "configMap:NAME:/path         a ConfigMap's keys as files (read-only)\n"
        "secret:NAME:/path            a Secret's keys as files (read-only)\n"
        "hostPath:/folder:/path[:ro]  a folder of the node (locally: of this machine)\n"
        "Give it again for more volumes, one a mount path. A replica also finds each one's\n"
        "path in CIAO_VOLUME_<PATH> (/data/train: CIAO_VOLUME_DATA_TRAIN).\n"
        "Example:\n    %volume=pvc:datasets:/data:ro\n    %volume=emptyDir:/scratch:20Gi",
        "<kind>:<name>:<path>[:ro]",
        hints=tuple(f"{kind}:" for kind in VOLUME_KINDS),
    ),
    _pod(
        "shm",
        "Size of /dev/shm of each replica (an in-memory emptyDir): PyTorch DataLoader workers.",
        "A memory quantity like 8Gi. Containers get 64 MiB of shared memory, and DataLoader\n"
        "workers (num_workers > 0) that pass larger batches crash with a bus error. The\n"
        "memory counts against the replica's memory limit: give %memory room for it.\n"
        "Example:\n    %nodes=2;%gpu=4;%memory=64Gi;%shm=16Gi",
        "<quantity>",
    ),
    _pod(
        "env",
        "Set an environment variable of the replicas: a value, or a Secret's key by reference.",
        "NAME=value, NAME=secret:SECRET/KEY (the value of KEY in the Secret, put there by\n"
        "the kubelet: Ciao never reads it) or NAME=configMap:NAME/KEY. Give it again for\n"
        "more variables, each name once. A value cannot hold ; (it separates magics).\n"
        "Variables Ciao or the operator set (RANK, WORLD_SIZE, MASTER_ADDR, CIAO_...)\n"
        "are refused. Locally the values reach the replicas too. IPython's own\n"
        "%env NAME=value (a blank, no = after env) is the session's, in session cells.\n"
        "Example:\n    %env=HF_HOME=/data/hf\n    %env=WANDB_API_KEY=secret:wandb/api-key",
        "<NAME>=<value>",
        hints=("secret:", "configMap:"),
        hint_after="=",
    ),
    _pod(
        "envFrom",
        "Every key of a Secret (or ConfigMap) as an environment variable of the replicas.",
        "secret:NAME or configMap:NAME; give it again for more. Ciao never reads the\n"
        "values: the kubelet sets them. Kubeflow Trainer v2 has no field for it: use\n"
        "%env=NAME=secret:SECRET/KEY per variable there.\n"
        "Example:\n    %envFrom=secret:s3-creds",
        "secret|configMap:<name>",
        hints=("secret:", "configMap:"),
    ),
    _pod(
        "nodeSelector",
        "Run the replicas only on nodes with this label (a GPU model, an instance type).",
        "label=value, like nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3; give it again for\n"
        "more labels (each label once): a node must have all of them. kubectl get nodes\n"
        "--show-labels lists the labels of the cluster's nodes.\n"
        "Example:\n    %nodeSelector=nvidia.com/gpu.product=NVIDIA-A100-SXM4-80GB",
        "<label>=<value>",
        hints=NODE_LABELS,
    ),
    _pod(
        "toleration",
        "Let the replicas run on nodes with this taint (GPU nodes are often tainted).",
        "key (the taint, whatever its value) or key=value (with that value), and :Effect\n"
        "to tolerate that effect only; without it, every effect. Effects:\n"
        f"{', '.join(EFFECTS)}. Give it again for more.\n"
        "A replica that does not tolerate a node's taint waits for another node\n"
        "(FailedScheduling: untolerated taint).\n"
        "Example:\n    %toleration=nvidia.com/gpu:NoSchedule\n"
        "    %toleration=dedicated=ml-team:NoExecute",
        "<key>[=<value>][:<effect>]",
        hints=EFFECTS,
        hint_after=":",
    ),
    _pod(
        "serviceAccount",
        "The Kubernetes service account the replicas run as (its permissions, its pull secrets).",
        "A service account of the job's namespace, like trainer; without it, the\n"
        "namespace's default. Its imagePullSecrets apply to the replicas too.\n"
        "Example:\n    %serviceAccount=trainer",
        "<name>",
    ),
    _pod(
        "imagePullSecret",
        "A Secret with the registry credentials to pull a private image (docker-registry type).",
        "The name of a Secret of the job's namespace; give it again for more. Where the\n"
        "Kubeflow API cannot carry it (Trainer v2.0), give the service account the pull\n"
        "secret instead: kubectl patch serviceaccount NAME -p\n"
        '\'{"imagePullSecrets": [{"name": "regcred"}]}\' and %serviceAccount=NAME.\n'
        "Example:\n    %imagePullSecret=regcred",
        "<secret>",
    ),
    _pod(
        "priorityClass",
        "The PriorityClass of the replicas: which pods the scheduler preempts for which.",
        "The name of a PriorityClass of the cluster (kubectl get priorityclasses).\n"
        "Example:\n    %priorityClass=high",
        "<name>",
    ),
    _pod(
        "schedulerName",
        "The scheduler that places the replicas (volcano for gang scheduling); default: the "
        "cluster's.",
        "The name a scheduler of the cluster answers to, like volcano. With volcano (on\n"
        "the Training Operator v1, for every role) the job is gang-scheduled: every replica\n"
        "starts at once or none, in %queue's Volcano queue. Trainer v2 cannot set it: a\n"
        "runtime's pod template does.\n"
        "Example:\n    %schedulerName=volcano",
        "<name>",
        hints=("volcano",),
    ),
    _pod(
        "image",
        "The container image the replicas run the cell in (instead of the config's images:).",
        "An image reference like pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime; it needs\n"
        "python. The whole job's: one image per job, on a line of its own. Locally it does\n"
        "not apply (the cell says so).\n"
        "Example:\n    %image=nvcr.io/nvidia/pytorch:24.10-py3",
        "<image>",
        scope=False,
    ),
    MagicDoc(
        "tune",
        "study",
        (),
        "Tune the cell: run its job as the trials of a study, each with its own parameters.",
        "Each parameter is name=distribution: uniform(a,b), loguniform(a,b) (a log scale),\n"
        "int(a,b), logint(a,b) (whole numbers, a and b included) or choice(x,y,...). Every\n"
        "trial is the cell's job (its roles, resources, carried definitions), with its\n"
        "values in the environment as CIAO_HP_<NAME> (and KUBEFLOW_TRAINER_OPT_<NAME>):\n"
        "ciao.hp.float('lr'), ciao.hp.int('layers'), ciao.hp.str('opt') read them. It\n"
        "needs %objective; %trials, %parallel, %algorithm, %earlyStopping and %seed shape\n"
        "the study. %study NAME shows its trials again, %best NAME the best parameters.\n"
        "Example:\n    %tune lr=loguniform(1e-4,1e-1) batch=choice(32,64,128) layers=int(2,6)\n"
        "    %objective=minimize:val_loss\n    %trials=20;%parallel=4;%algorithm=tpe",
        "<name>=<distribution>(...) ...",
        hints=tuple(f"{kind}(" for kind in DISTRIBUTIONS),
        hint_after="=",
        blank=True,
    ),
    MagicDoc(
        "objective",
        "study",
        (),
        "What each trial of a study scores: minimize:METRIC or maximize:METRIC of its log.",
        "The metric is read from the primary replica's lines (master-0; the chief or master,\n"
        "else worker-0, of TensorFlow; node-0 on Trainer v2) in Katib's format: a line like\n"
        "`epoch=3 val_loss=0.42` reports val_loss. A trial's value is the metric's min when\n"
        "minimizing, its max when maximizing (Katib's defaults), or with :latest its last\n"
        "one (:min, :max and :latest name the strategy). A trial whose metric never\n"
        "appears fails, saying so (Katib's MetricsUnavailable).\n"
        "Example:\n    %objective=minimize:val_loss\n    %objective=maximize:accuracy:latest",
        "minimize|maximize:<metric>[:min|max|latest]",
        hints=("minimize:", "maximize:"),
    ),
    MagicDoc(
        "trials",
        "study",
        (),
        "How many trials a study runs (default 10; with %algorithm=grid, the grid's size).",
        "Each trial is one job of the cell. Trials that fail or are stopped early count.\n"
        "Example:\n    %trials=20",
        "<count>",
    ),
    MagicDoc(
        "parallel",
        "study",
        (),
        "How many trials of a study run at once (default 1; at most %trials).",
        "Katib's parallelTrialCount. With tpe, trials that run meanwhile count as their\n"
        "worst (Optuna's constant liar), so parallel trials spread out.\n"
        "Example:\n    %trials=20;%parallel=4",
        "<count>",
    ),
    MagicDoc(
        "algorithm",
        "study",
        ALGORITHMS,
        "How a study picks each trial's parameters: Katib's algorithm names (default tpe).",
        "random, grid (every combination; only choice and int parameters), tpe,\n"
        "multivariate-tpe, cmaes, sobol, bayesianoptimization. Locally and on a cluster\n"
        "without Katib they are Optuna's samplers (RandomSampler, GridSampler, TPESampler,\n"
        "TPESampler(multivariate=True), CmaEsSampler, QMCSampler(sobol), GPSampler); cmaes\n"
        "needs the cmaes package, sobol scipy, bayesianoptimization torch and scipy.\n"
        "Example:\n    %algorithm=random",
        "|".join(ALGORITHMS),
    ),
    MagicDoc(
        "earlyStopping",
        "study",
        EARLY_STOPPING,
        "Stop a trial early when its objective so far is worse than the median of the others.",
        "median: Katib's medianstop rule, Optuna's MedianPruner, with Katib's defaults: it\n"
        "judges once 3 trials have finished, from a trial's 4th value of the objective on,\n"
        "comparing it with the finished trials' values at the same point. A stopped trial\n"
        "is Pruned: its job is cancelled, as an interrupt cancels it.\n"
        "Example:\n    %earlyStopping=median",
        "median",
    ),
    MagicDoc(
        "seed",
        "study",
        (),
        "The seed of a study's sampler: the same study asks the same parameters.",
        "A whole number (Katib's random_state). Trials that run in parallel finish in any\n"
        "order, which later suggestions depend on.\n"
        "Example:\n    %seed=1",
        "<number>",
    ),
    MagicDoc(
        "dryrun",
        "flag",
        (),
        "Show what would be submitted (the manifest, or command lines and environments).",
        "Nothing is built or submitted. Locally it shows each replica's command line,\n"
        "directory and the variables Ciao injects; on Kubeflow the TFJob / PyTorchJob.\n"
        "Example:\n    %dryrun\n    %framework=pytorch\n    %master=1",
    ),
    MagicDoc(
        "detach",
        "flag",
        (),
        "Submit the job and end the cell at once; the job runs on, other cells can run.",
        "The cell shows the job's name. %attach NAME follows it (from any kernel),\n"
        "%status NAME shows it, %logs NAME prints its log, %delete NAME stops it.\n"
        "Example:\n    %detach\n    %framework=pytorch\n    %master=1",
    ),
    MagicDoc(
        "job",
        "flag",
        (),
        "Run the cell as a job (one replica, the config's defaults) instead of in the session.",
        "A cell with any job magic (%framework, a role, %backend, %dryrun...) is a job\n"
        "already; %job makes a cell without them one too, as every cell was before the\n"
        "session: the code runs in a fresh process (locally, or on the cluster with\n"
        "backend: kubeflow), not in this notebook's Python session.\n"
        "Example:\n    %job\n    import platform\n    print(platform.node())",
    ),
    MagicDoc(
        "jobs",
        "command",
        (),
        "List this notebook's recent Ciao jobs, newest first (--all: everyone's).",
        "By default the last 20 jobs this notebook ran (or, where the frontend does not\n"
        "name the notebook, this kernel). --limit N shows N; --all lists the jobs of every\n"
        "notebook and kernel, marking each job's notebook. Local jobs come from the run\n"
        "directory, Kubeflow jobs from the cluster (by label).\n"
        "Example:\n    %jobs\n    %jobs --all --limit 50",
        "[--all] [--limit N]",
    ),
    MagicDoc(
        "status",
        "command",
        (),
        "Show a job's state and its replicas (phase, reason, restarts, where).",
        "Example:\n    %status ciao-abcde",
        "NAME",
    ),
    MagicDoc(
        "logs",
        "command",
        (),
        "Print a job's log: every replica's, or one replica's, or the last N lines.",
        "Works after the job's processes or pods are gone (what was streamed is kept).\n"
        "Example:\n    %logs ciao-abcde worker-1 --tail 50",
        "NAME [replica] [--tail N]",
    ),
    MagicDoc(
        "metrics",
        "command",
        (),
        "Show a job's metrics (its name=value lines) per replica, and their history.",
        "A line a replica prints in Katib's metric format, like epoch=3 loss=0.42, is\n"
        "metrics (Katib's default filter: a name, =, a number); the live view shows them\n"
        "with a chart. This prints each replica's count, min, max and latest value of each\n"
        "metric, and the history (step, replica, metric, value; step n is a replica's n-th\n"
        "value of that metric). With the session on, _ (and Out[n]) holds the history as\n"
        "columns: pd.DataFrame(_). Works after the job's processes or pods are gone.\n"
        "Example:\n    %metrics ciao-abcde\n    %metrics ciao-abcde loss",
        "NAME [metric]",
    ),
    MagicDoc(
        "attach",
        "command",
        (),
        "Follow a running job again: its live view, and its log from where it was left.",
        "Lines already shown (by the cell that submitted it, or an earlier %attach) are not\n"
        "repeated. Works from a restarted kernel too.\nExample:\n    %attach ciao-abcde",
        "NAME",
    ),
    MagicDoc(
        "delete",
        "command",
        (),
        "Stop a job and delete it with everything it created (pods, ConfigMap, run dir).",
        "Example:\n    %delete ciao-abcde",
        "NAME",
    ),
    MagicDoc(
        "study",
        "command",
        (),
        "Show a study's trials again: parameters, state, objective, the best marked.",
        "A study is a %tune cell's run; this works after the kernel that ran it is gone.\n"
        "%attach NAME follows a running study again (and finishes one whose driver\n"
        "stopped), %best NAME gives its best parameters.\n"
        "Example:\n    %study ciao-abcde",
        "NAME",
    ),
    MagicDoc(
        "best",
        "command",
        (),
        "The parameters of a study's best trial, as a dict (x: 1.93, one a line).",
        "The cell's result holds them as data too (application/vnd.ciao.best+json).\n"
        "Example:\n    %best ciao-abcde",
        "NAME",
    ),
    MagicDoc(
        "pip",
        "command",
        (),
        "Install packages where local jobs and the session get them: the kernel's Python.",
        "Runs pip (any of its commands: install, uninstall -y, list, show) in the Python\n"
        "that local jobs and the session run, with its output in the cell; the next job\n"
        "and the session's next import have the packages (a package the session imported\n"
        "already stays as it was until the kernel restarts). Ciao's, not the session's:\n"
        "alone in its cell. On Kubernetes, jobs run in the image: use %requirements\n"
        "(installed in every replica) or an image that has them.\n"
        "Example:\n    %pip install torch==2.13.0",
        "install PACKAGE...",
    ),
    MagicDoc(
        "help",
        "command",
        (),
        "Show this reference, or the doc of one magic (%help worker).",
        "A kernel command: alone in its cell.\nExample:\n    %help cleanPolicy",
        "[magic]",
    ),
    MagicDoc(
        "config",
        "command",
        (),
        "Show the kernel's configuration: backend, defaults per role, where it was read from.",
        "A kernel command: alone in its cell. It says whether the session is on\n"
        "(session.enabled). Ciao's, not the session's: IPython's %config is\n"
        "get_ipython().run_line_magic('config', '...') in a session cell.\n"
        "Example:\n    %config",
    ),
)

#: Every magic by its documented name, in the order of the reference.
MAGICS: dict[str, MagicDoc] = {doc.name: doc for doc in _DOCS}

_BY_LOWER = {name.lower(): doc for name, doc in MAGICS.items()}

_GROUPS: tuple[tuple[MagicKind, str], ...] = (
    ("job", "Job"),
    ("flag", "Job flags (no value)"),
    ("role", "Roles (replica counts; 0 leaves a role out)"),
    ("resource", "Resources (per replica, after a role on the same line)"),
    ("pod", "Pod settings (a line of their own: every role; after a role: that role)"),
    ("study", "Tuning (the cell's job run as the trials of a study)"),
    ("command", "Kernel commands (alone in a cell)"),
)

#: Magics of the session (IPython's) that a Ciao magic of the same name hides: a cell
#: starting with one runs Ciao's (a test keeps these lists equal to what IPython has).
SHADOWED_SESSION_MAGICS = ("config", "pip")
#: Magics both have, told apart by how they are written: `%env=NAME=value` is Ciao's,
#: IPython's `%env NAME=value` (or `%env` alone) the session's (route.py).
SHARED_SESSION_MAGICS = ("env",)

_EXAMPLES = """\
Examples:
    %framework=tensorflow
    %ps=1;%cpu=500m;%memory=1Gi
    %worker=2;%cpu=1;%memory=2Gi
    %cleanPolicy=running
    <training code>

    %framework=pytorch
    %master=1;%cpu=1;%memory=2Gi;%gpu=1
    %worker=2;%cpu=1;%memory=2Gi;%gpu=1
    <training code>

Every line whose first character is % is a magic line; tokens are separated by `;`.
Everything else is the training code, run by every replica. Without role magics a job
cell runs as one replica (pytorch: %master=1, tensorflow: %worker=1)."""


#: Kinds of magic that make a cell a job (the rest are kernel commands).
JOB_KINDS: tuple[MagicKind, ...] = ("job", "flag", "role", "resource", "pod", "study")

WHERE_TITLE = "Where a cell runs"


def where_cells_run() -> str:
    """Which cells run in the session, which as jobs, which in the kernel, and which
    Ciao magics hide the session's of the same name (for `%help`)."""
    jobs = " ".join(f"%{d.name}" for d in _DOCS if d.kind in JOB_KINDS)
    commands = " ".join(f"%{d.name}" for d in _DOCS if d.kind == "command")
    shadowed = " and ".join(f"%{name}" for name in SHADOWED_SESSION_MAGICS)
    return "\n".join(
        textwrap.wrap(
            "A cell without Ciao magics runs in this notebook's Python session (a child "
            "process of the kernel, in its Python and folder): names persist from cell to "
            "cell, values, tables and plots show, and the session's own magics and shell "
            "escapes work (%timeit, %matplotlib, !ls). "
            f"A cell with a job magic ({jobs}) runs as a job: %job alone makes any cell "
            "one. A kernel command runs alone in its cell, in the kernel "
            f"({commands}). Ciao's magics come first: {shadowed} are Ciao's, not the "
            "session's, and %env is Ciao's written %env=NAME=value, the session's written "
            "%env NAME=value. With session: {enabled: false} in the config every cell is a "
            "job, as before the session.",
            88,
        )
    )


def lookup(name: str) -> MagicDoc | None:
    """The magic called `name` (with or without `%`, any case), or None."""
    return _BY_LOWER.get(name.removeprefix("%").strip().lower())


def known_names() -> str:
    """`%framework, %chief, ...`: the list an unknown-magic error shows."""
    return ", ".join(f"%{name}" for name in MAGICS)


def unknown_magic(name: str) -> str:
    """The message for an unknown magic: the closest known name, and all of them."""
    close = difflib.get_close_matches(name.lower(), list(_BY_LOWER), n=1, cutoff=0.6)
    hint = f" did you mean %{_BY_LOWER[close[0]].name}?" if close else ""
    return f"unknown magic %{name};{hint} the magics are {known_names()}"


def describe(doc: MagicDoc) -> str:
    """One magic's full doc: usage, kind, summary, details."""
    values = f"\nValues: {', '.join(doc.values)}" if doc.values else ""
    return f"{doc.usage}    ({doc.kind} magic)\n{doc.summary}{values}\n{doc.doc}"


def help_text(name: str | None = None) -> str:
    """The magic reference (`%help`), or one magic's doc (`%help worker`)."""
    doc = _topic(name)
    if doc is not None:
        return describe(doc)
    parts = ["Ciao magics (%help <magic> for details)", ""]
    for kind, title in _GROUPS:
        parts.append(f"{title}:")
        width = max(len(d.usage) for d in _DOCS)
        parts += [f"  {d.usage:<{width}}  {d.summary}" for d in _DOCS if d.kind == kind]
        parts.append("")
    parts += [f"{WHERE_TITLE}:", where_cells_run(), "", _EXAMPLES]
    return "\n".join(parts)


def help_markdown(name: str | None = None) -> str:
    """The reference as Markdown: a table of magics a group, the examples as code."""
    doc = _topic(name)
    if doc is not None:
        return _doc_markdown(doc)
    rows = ["| magic | what it does |", "|:---|:---|"]
    for kind, title in _GROUPS:  # one table, so the groups' columns line up
        rows.append(f"| **{_md(title)}** | |")
        rows += [f"| {_code(d.usage)} | {_md(d.summary)} |" for d in _DOCS if d.kind == kind]
    parts = [
        "**Ciao magics** (`%help <magic>` for details)",
        f"**{WHERE_TITLE}**: " + _md(where_cells_run()).replace("\n", " "),
        "\n".join(rows),
    ]
    examples, _, rules = _EXAMPLES.removeprefix("Examples:\n").partition("\n\nEvery line")
    parts.append(f"**Examples**\n\n```\n{textwrap.dedent(examples)}\n```")
    parts.append(_md("Every line" + rules).replace("\n", " "))
    return "\n\n".join(parts)


def _doc_markdown(doc: MagicDoc) -> str:
    """One magic's page: usage and kind, summary, values, its doc's lines, the example."""
    prose, _, example = doc.doc.partition("Example:\n")
    parts = [f"**{_code(doc.usage)}** ({doc.kind} magic)", _md(doc.summary)]
    if doc.values:
        parts.append("Values: " + ", ".join(_code(v) for v in doc.values))
    if prose.strip():
        parts.append("  \n".join(_md(line) for line in prose.strip().splitlines()))
    if example:
        parts.append(f"Example:\n\n```\n{textwrap.dedent(example).rstrip()}\n```")
    return "\n\n".join(parts)


def _topic(name: str | None) -> MagicDoc | None:
    """The magic `%help NAME` asks for; None for the whole reference; an unknown one is
    the same error as an unknown magic."""
    if name is None or not name.strip():
        return None
    doc = lookup(name)
    if doc is None:
        bare = name.strip().removeprefix("%")
        raise MagicErrors([MagicError(1, "%help", unknown_magic(bare))])
    return doc


def _md(text: str) -> str:
    """Text as Markdown shows it literally (in a table cell too)."""
    return re.sub(r"([\\`*_|<>\[\]#])", r"\\\1", text)


def _code(text: str) -> str:
    """Inline code, as HTML: a `|` in a table cell, even in backticks, would end the cell
    for some renderers and show as `\\|` in others."""
    escaped = html.escape(text).replace("|", "&#124;")
    return f"<code style='white-space:nowrap'>{escaped}</code>"
