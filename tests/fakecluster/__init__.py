"""An in-process Kubernetes API server with Kubeflow (training operator v1, Trainer v2, Katib),
for tests.

    with FakeCluster() as cluster:
        kubeconfig = cluster.write_kubeconfig(tmp_path / "config")
        api = kubernetes.client.CoreV1Api(
            kubernetes.config.new_client_from_config(config_file=str(kubeconfig)))

The real `kubernetes` client talks HTTP/1.1 to a loopback port; a simulated training
operator (v1.9) turns TFJobs/PyTorchJobs into pods and services; a simulated Kubeflow
Trainer v2 (trainer.py) with JobSet v0.12 and the batch/v1 Job controller (jobset.py) turns
TrainJobs into JobSets, indexed Jobs and pods; a simulated scheduler (scheduling.py) binds
pods to the cluster's nodes and simulated kubelets run each container's command as a local
process, whichever node it is bound to, so followed logs are real output. Every pod has a
loopback address of its own (status.podIP), and inside pods Python's resolver is cluster
DNS: a Service name answers the pods its selector selects, so two jobs' masters listen on
one port at once (runtime.py says what is simulated and how). A simulated Katib
(katib/) runs hyperparameter Experiments of those jobs, its metrics collector included.

FakeCluster(namespaces=("default",), capacity=None, strict_schemas=True, *, crds_dir=None,
            token=None, user="system:serviceaccount:default:ciao", history_size=1000,
            bookmark_interval=1.0, grace_cap=2.0, backoff_base=0.2, backoff_cap=1.6,
            operator=True, kubeflow=("v1",), trainer_release="v2.3", runtimes=None,
            missing_runtime="deny", torchrun=None, image_users=None,
            pytorch_init_template=None, nodes=None, private_images=None)
    nodes: [{name, labels, taints: [{key, value, effect}], capacity}, ...] (nodes.py); default
        one node `fake-node`, untainted, with `capacity` (default cpu 8, memory 32Gi,
        ephemeral-storage 100Gi, nvidia.com/gpu 0, pods 110; also the default of a node
        giving no capacity). Node i
        has the address 127.0.0.(i+1): its pods' status.hostIP.
    private_images: {image: pull Secret name}: the registry refuses those images (ErrImagePull
        `... pull access denied ... authentication required`, ImagePullBackOff) unless the
        pod's imagePullSecrets (or its service account's) name that Secret, it exists and
        is of type kubernetes.io/dockerconfigjson (or dockercfg). Registry credentials are
        not checked further; an image a node has pulled once is present for every pod there.
    kubeflow: the Kubeflow APIs installed: "v1" (kubeflow.org/v1 pytorchjobs, tfjobs), "v2"
        (trainer.kubeflow.org/v1alpha1 trainjobs, clustertrainingruntimes, trainingruntimes,
        and jobset.x-k8s.io/v1alpha2 jobsets), "katib" (Katib v0.19.0: kubeflow.org/v1beta1
        experiments, suggestions, trials; see Katib below), any of them or none. Discovery
        (/apis, /apis/<group>[/<version>]) and OpenAPI v3 list exactly those; batch/v1 and
        apiextensions.k8s.io/v1 are always served. operator=False runs no Kubeflow, Katib,
        JobSet or Job controller at all.
    trainer_release: "v2.0" | "v2.1" | "v2.2" | "v2.3": the TrainJob CRD served (v2.2 gets
        v2.3's) and so its pod-override field: podSpecOverrides, podTemplateOverrides,
        runtimePatches (v2.2, v2.3).
    runtimes: runtime manifests created at start with v2 (default: [jobs.torch_runtime()],
        the ClusterTrainingRuntime `torch-distributed` of v2.3: mlPolicy {numNodes: 1,
        torch: {}}, replicated job `node`, container `node`, image
        pytorch/pytorch:2.13.0-cuda13.0-cudnn9-runtime, no backoffLimit: the Job default 6).
    missing_runtime: "deny" (as the real validating webhook: 403 `... specified
        clusterTrainingRuntime must be created before the TrainJob is created`) or "admit"
        (a runtime gone after admission: the controller records Warning
        TrainJobResourcesCreationFailed `TrainJob resources reconciliation failed: not found
        ClusterTrainingRuntime specified in TrainJob: clustertrainingruntimes.trainer.
        kubeflow.org "x" not found` and sets no condition, as upstream's).
    kueue() -> a context manager in which Kueue's job integration is stood in for: a job
        labelled kueue.x-k8s.io/queue-name is suspended at creation (spec.suspend;
        v1: spec.runPolicy.suspend) until kueue.admit(plural, namespace, name).
    An ownerReference with blockOwnerDeletion needs `update` on the owner's finalizers
    (OwnerReferencesPermissionEnforcement), checked and recorded like any other call.
    A ResourceQuota in a namespace limits the pods created there (`exceeded quota: ...`,
    403), so the controller creating them records FailedCreate / FailedCreatePod.
    Pod Security admission (podsecurity.py, upstream's checks of every level and version):
    a namespace labelled pod-security.kubernetes.io/enforce=baseline|restricted (and
    -version) refuses the pods that violate it (403 `pods "x" is forbidden: violates
    PodSecurity "restricted:latest": allowPrivilegeEscalation != false (...), ...`), so
    controllers record FailedCreate / FailedCreatePod; `warn` adds Warning headers (pods,
    Jobs); bad labels are refused (422); `latest` is the server's v1.31.
    image_users: the image config's USER of images ("1000", "app"); any other image runs as
        root (as the stock framework images do), so the kubelet refuses to start it under
        runAsNonRoot without a runAsUser (CreateContainerConfigError `container has
        runAsNonRoot and image will run as root (pod: "...", container: c)`), as a real
        kubelet does.
    pytorch_init_template: the v1 operator's init container template (the text of its
        /etc/config/initContainer.yaml, with {{.InitContainerImage}}, {{.MaxTries}} and
        {{.MasterAddr}}); default: the operator's built-in `init-pytorch`, which sets no
        securityContext, so Pod Security `restricted` refuses the workers of a PyTorchJob
        with a master whatever their own containers set, as on a real cluster.
    torchrun: whether `torchrun` exists in images (default: whether torch is importable);
        without it a `torchrun ...` container fails to start (StartError, exit code 128).
    start() / stop() / context manager; stop() kills every pod process and joins threads.
    url, token, user, resource_version
    write_kubeconfig(path, namespace="default", context="fake") -> Path
    api_client() -> kubernetes.client.ApiClient
    get(resource, namespace, name) -> dict | None
    list(resource, namespace=None, label_selector=None, field_selector=None) -> list[dict]
    create(resource, obj, namespace=None), delete(resource, namespace, name, propagation=None)
    label_namespace(name, {label: value or None}) -> the Warning texts (admission applies)
    events(namespace="default", involved=None, reason=None) -> list[dict]
    logs(namespace, pod, container=None, previous=False, timestamps=False) -> str
    pod_processes() -> {"ns/pod/container": pid}
    wait_for(predicate, timeout=30, message="...") -> the truthy value
    deny(verb, resource, namespace=None) -> DenyRule; allow(rule=None)
    uninstall_crd(name) / install_crd(name)
    inject(fault, **params_and_match) -> Fault (fault.cancel()); clear_faults()
    drop_watches(after_events=0, abrupt=False) -> int; compact() -> int
    openapi(path=None) -> the /openapi/v3 index, or the document of "apis/<group>/<version>"
    trainjob_pods(name, namespace="default") -> a TrainJob's pods by node rank
    create_claim(name, namespace="default", access_modes=("ReadWriteOnce",), storage="10Gi",
        bound=True) -> a PersistentVolumeClaim, bound at once (bound=False: Pending forever)
    claim_path(name, namespace="default") -> Path: a bound claim's data, as its pods see it

Served besides pods, services, configmaps, events, resourcequotas, namespaces, nodes,
batch/v1 jobs and CRDs: core/v1 secrets, serviceaccounts and persistentvolumeclaims, and
scheduling.k8s.io/v1 priorityclasses (list, watch, get, create, update, patch, delete, as
the others; discovery and RBAC deny rules alike).
- Secrets (configdata.py): stringData merged into data, type Opaque by default, docker
  config types need their key. ServiceAccounts: `default` exists in every namespace from its
  creation (the serviceaccount controller, at once). PriorityClasses: system-cluster-critical
  and system-node-critical exist; user values up to 1000000000; one globalDefault.
- Admission of pods (admission.py), before validation, PodSecurity and ResourceQuota: the
  ServiceAccount plugin (403 `pods "x" is forbidden: error looking up service account
  default/trainer: serviceaccount "trainer" not found`; the account's imagePullSecrets for a
  pod without any), Priority (403 `pods "x" is forbidden: no PriorityClass with name high
  was found`; spec.priority and preemptionPolicy from the class), DefaultTolerationSeconds.
  Refusals name a pod created with generateName by its prefix; controllers record them as
  FailedCreate / FailedCreatePod `Error creating: <message>`.
- PersistentVolumeClaims (storage.py): of the default class `standard` bound at once to a
  volume `pvc-<uid>` (a directory every pod mounting the claim shares, until the claim is
  deleted); any other class Pending, with the PV controller's event.
- The scheduler (scheduling.py, scheduler.py, preemption.py), v1.31's default profile and
  words: pods for another schedulerName are left Pending without a word; schedulingGates
  hold a pod (PodScheduled False SchedulingGated); PreFilter: a claim that does not exist
  (`0/3 nodes are available: persistentvolumeclaim "datasets" not found. preemption: 0/3
  nodes are available: 3 Preemption is not helpful for scheduling.`) or is unbound (`pod
  has unbound immediate PersistentVolumeClaims`); Filter per node: untolerated NoSchedule
  / NoExecute taints, nodeSelector and required node affinity, resources, ReadWriteOncePod
  claims in use, summed as `0/3 nodes are available: 1 node(s) didn't match Pod's node
  affinity/selector, 2 node(s) had untolerated taint {nvidia.com/gpu: }. preemption: ...`;
  then preemption of lower-priority pods (DisruptionTarget, Preempted, nominatedNodeName),
  or why it cannot help. PreferNoSchedule taints and the requested share only order the
  nodes that fit (no random tie-break; preferred affinity, topology spread, inter-pod
  affinity, node ports, PodDisruptionBudgets are not simulated).
- The kubelet (kubelet.py, runtime.py, podfs.py): a ReadWriteOnce claim in use on another
  node blocks a pod in ContainerCreating (attachdetach-controller's Warning
  FailedAttachVolume `Multi-Attach error for volume "pvc-..." Volume is already used by
  pod(s) x`); Secret and ConfigMap volumes wait for their object (FailedMount
  `MountVolume.SetUp failed for volume "v" : secret "s" not found`); env from Secrets and
  ConfigMaps (secretKeyRef, configMapKeyRef, envFrom) waits in CreateContainerConfigError
  (`secret "hf" not found`, `couldn't find key token in Secret default/hf`, event Failed
  `Error: ...`) until it exists, `optional` honoured; missing pull Secrets are named
  (Warning FailedToRetrieveImagePullSecret `Unable to retrieve some image pull secrets
  (regcred); attempting to pull the image may not succeed.`). Inside Python, file
  functions see mount paths, read-only mounts (readOnly, Secret and ConfigMap volumes)
  refuse writes with EROFS, and os.statvfs reports a Memory emptyDir's tmpfs size (so
  `shutil.disk_usage("/dev/shm")` is the 8Gi of a sizeLimit) or the runtime's 64 MiB
  /dev/shm. Not simulated: the service account token volume, pvc-protection, storage
  classes and PersistentVolume objects, volume node affinity, filesystem limits (a full
  tmpfs), C-level file access to mount paths (torch.save's is mapped), and the kubelet's
  `Unable to attach or mount volumes ... ` event, which v1.31 no longer records on a
  timeout.

Faults (match keys: pod= glob, namespace=, container=, job= (a v1 job's or a TrainJob's
name), replica_type= (a v1 replica type, or `node`), labels={}; and times= how often, None
for until cancelled):
    unschedulable(resource="cpu")        Pending, FailedScheduling "N Insufficient <resource>"
    image_pull(cause="not-found"|"manifest-unknown"|"auth")  ErrImagePull / ImagePullBackOff
    oom(after_lines=0, delay=0.0)        killed; terminated OOMKilled, exitCode 137
    restart(after_lines=1, exit_code=1)  first instance exits 1, then restarts in place
    log_cut(after_bytes=10)              next follow of the pod's log is cut mid-line
    watch_drop(after_events=0, abrupt=False)  open watches end (abrupt: connection reset)
    watch_expire()                       next watch resuming from a resourceVersion gets 410

validate_job(obj) -> list[str]: schema (strict about unknown fields) + operator webhook
problems of a TFJob/PyTorchJob manifest, without a server; validate_trainjob(obj,
release="v2.3", runtime=None, strict=True) the same for a TrainJob (schema, CEL rules,
torch and pod-override webhook rules), validate_experiment(obj, configmap=None) the same
for a Katib Experiment (its defaulter's decoding, then its validator; not the namespace
label). fakecluster.jobs has small manifest builders
(pytorchjob(...), tfjob(...), trainjob(...), torch_runtime(...), configmap_mount(release,
configmap, mount_path) -> the release's pod-override field mounting a ConfigMap into `node`,
batch_job(command) -> a trial's Job, experiment(name, trial_spec, parameters,
primary_container, ...) -> a Katib Experiment).
fakecluster.testing has what tests of the cluster share: connected(cluster, kubeconfig) ->
real clients (core, custom, ext) closed after, status_of(ApiException), conditions(obj),
finished(cluster, resource, name), pod(name, command), phase(cluster, pod), owned_by(obj,
name) -> a ConfigMap it owns.

The controllers (operator.py's one a framework, trainer.py, jobset.py) are `Controller`s
(controller.py); they, the garbage collector and the kubelet each run on one `Worker` thread
(worker.py).

Kubeflow v1 (operator.py): past runPolicy.backoffLimit (or activeDeadlineSeconds) every pod
and service of the job is deleted, whatever the cleanPodPolicy, and only then the Failed
condition is set ("Job NAME has failed because it has reached the specified backoff limit",
reason PyTorchJobFailed / TFJobFailed; no replica named).

Kubeflow Trainer v2: the release's pod-override field (podSpecOverrides, podTemplateOverrides,
runtimePatches: whatever its CRD accepts: volumes, env, nodeSelector, tolerations,
serviceAccountName; imagePullSecrets and affinity from v2.1; securityContext in v2.3) is
merged into the runtime's pod templates as upstream does, a strategic merge patch (lists
with a merge key merge, tolerations are replaced).
TrainJob <t> -> JobSet <t> (owner: the TrainJob) -> headless Service <t>
and Job <t>-node-0 (Indexed, completions = parallelism = numNodes, restartPolicy OnFailure,
backoffLimit from the runtime's Job template, default 6) -> pods <t>-node-0-<rank>-<5 chars>
with hostname <t>-node-0-<rank>, subdomain <t>, labels jobset.sigs.k8s.io/jobset-name,
replicatedjob-name=node, job-index=0, batch.kubernetes.io/job-completion-index=<rank> (the
ancestor label trainer.kubeflow.org/trainjob-ancestor-step=trainer is on the Job, as JobSet
copies only its own labels to pods); container `node` with trainer.env, then PET_NNODES,
PET_NPROC_PER_NODE, PET_NODE_RANK (field ref), PET_MASTER_ADDR=<t>-node-0-0.<t>,
PET_MASTER_PORT=29500 and the Job's JOB_COMPLETION_INDEX, port 29500. Inside pods, Python
resolves <t>-node-0-<i>.<t> to that pod's own loopback address, and torch's TCPStore is
patched to use it, so `torchrun` (run as `python -m torch.distributed.run`) rendezvous
across nodes, several jobs at once on one port. Status:
Complete (AllJobsCompleted, "jobset completed successfully") or Failed (FailedJobs, "jobset
failed due to one or more job failures (first failed job: <t>-node-0)") copied from the
JobSet, Suspended, jobsStatus [{name: node, ready, succeeded, failed, active, suspended}]
(counts of Jobs). A node that keeps failing exhausts the Job's backoffLimit (restarts in
place count): FailureTarget, its active pods deleted, Failed (BackoffLimitExceeded).
Foreground deletion propagates in the foreground (TrainJob -> JobSet -> Jobs -> pods, the
TrainJob goes last); objects owned by the TrainJob (its ConfigMap) are collected.
Unknown fields of trainer.kubeflow.org / jobset.x-k8s.io objects are dropped (Warn) unless
fieldValidation=Strict, whatever strict_schemas says. Webhook
`validator.trainjob.trainer.kubeflow.org`: reserved PET_* in trainer.env, unsupported
runtime kinds, override targets/containers that the runtime lacks, env for `node` through
an override; CEL: metadata.name a DNS-1035 label of at most 63 (v2.1+), immutable fields.

Katib v0.19.0 (katib/, kubeflow "katib"; cluster.katib, its `db` the observation logs):
- CRDs schemaless as upstream's (preserve-unknown-fields, status subresource, printer
  columns), so the webhooks are the only schema: `defaulter.experiment.katib.kubeflow.org`
  decodes the spec into Katib's Go types (400 `... denied the request: json: cannot
  unmarshal number into Go struct field FeasibleSpace.spec.parameters.feasibleSpace.min of
  type string`; unknown fields dropped) and sets experiment_defaults.go's defaults
  (parallelTrialCount 3, resumePolicy Never, metric strategies, success/failure conditions
  and primaryPodLabels of Job, v1 kinds and TrainJob, collector StdOut, a File collector's
  path/kind/format, distribution uniform); `validator.experiment.katib.kubeflow.org`
  refuses a namespace without `katib.kubeflow.org/metrics-collector-injection: enabled`,
  then validator.go's rules in its order and words (name ≤ 40 starting with a letter,
  budgets, objective, algorithm and early stopping names from katib-config, trialTemplate:
  primaryContainerName, conditions, every trialParameter found and referencing a
  parameter, no unknown `${trialParameters.*}`, no metadata.name/namespace, apiVersion and
  kind; parameters; collector kinds, file path and format, filters; on update only the
  three budget fields). Refusals are admission.Errored(400): code 400, no reason.
- The pod webhook (namespaces with that label): pods whose owner chain leads to a Trial get
  its labels, `katib.kubeflow.org/trial`, KATIB_TRIAL_NAME in the primary container; the
  primary pod (primaryPodLabels) gets the `metrics-logger-and-collector` sidecar (image,
  flags and resources of katib-config), shareProcessNamespace, the emptyDir
  `metrics-volume` at the metrics file's directory, and its primary container wrapped as
  `sh -c "<command args> [1>/var/log/katib/metrics.log 2>&1] && echo completed >
  /var/log/katib/$$$$.pid"` (the redirection for StdOut only: the training's own log is
  then empty, its output re-printed klog-prefixed by the sidecar).
- The sidecar's program is file-metrics-collector's, run in-process by the kubelet
  (programs.py): it prints the metrics file through klog, waits for the pod's other
  processes, checks the main one's `completed` mark (exit 255 and the upstream F-line
  without it), parses the file (default filter, or metricsFormat; TEXT or JSON) and reports
  to katib-db-manager; no objective metric: `unavailable` is reported.
- Controllers: Experiment -> Suggestion (same name, `spec.requests`) -> Trials
  `<experiment>-<8 chars>` (runSpec: the trialSpec with `${trialParameters.x}` replaced
  over its JSON text, metadata references too) -> the trial's job named like the trial,
  owned by it; conditions, reasons and messages as upstream (Trial Created, Running,
  Succeeded `Trial has succeeded. Job message: ...`, Failed, MetricsUnavailable; Experiment
  Created, Running, Succeeded by goal or max trials, Failed by max failed or a failed
  Suggestion), observation {min, max, latest} per metric, currentOptimalTrial, the trial
  lists and counts; finalizers update-prometheus-metrics and clean-metrics-in-db; a
  finished trial's job is deleted unless retain. Suggestions are Optuna's ask/tell with the
  sampler of the algorithm name, `random_state` the seed (suggestion.py lists the mapping).
- Not simulated: the suggestion Deployment and Service, early stopping (medianstop is
  accepted, no rules come), restarts of completed Experiments, TensorFlowEvent, Prometheus
  and Push collection, image entrypoints (a container without command is wrapped with its
  args alone), the Job-conversion check of batch trial specs, and the katib-config
  ConfigMap itself (its v0.19.0 content is katib/config.py).

Error shapes (kind Status, as the real server): 401 Unauthorized; 403 Forbidden (RBAC
wording, or `admission webhook "validator.<kind>.training-operator.kubeflow.org" denied the
request: ...` with no details); 404 NotFound (`pods "x" not found`, details name/group/kind)
or a text/plain `404 page not found` for unknown resources; 409 AlreadyExists / Conflict;
400 BadRequest for unknown fields (`strict decoding error: unknown field "spec.x"`: with
strict_schemas=True always, else only with fieldValidation=Strict; Warn prunes and sends a
Warning header); 422 Invalid for schema violations (causes carry the field path); 410
Expired as a watch ERROR event; 415 for strategic merge patches of custom resources.
"""

from .cluster import FakeCluster
from .errors import StatusError
from .faults import Fault
from .katib.webhook import validate_experiment
from .trainer import validate_trainjob
from .validation import validate_job

__all__ = [
    "FakeCluster",
    "Fault",
    "StatusError",
    "validate_experiment",
    "validate_job",
    "validate_trainjob",
]
