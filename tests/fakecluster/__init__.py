"""An in-process Kubernetes API server with the Kubeflow training operator, for tests.

    with FakeCluster() as cluster:
        kubeconfig = cluster.write_kubeconfig(tmp_path / "config")
        api = kubernetes.client.CoreV1Api(
            kubernetes.config.new_client_from_config(config_file=str(kubeconfig)))

The real `kubernetes` client talks HTTP/1.1 to a loopback port; a simulated training
operator (v1.9) turns TFJobs/PyTorchJobs into pods and services; a simulated kubelet runs
each container's command as a local process, so followed logs are real output.

FakeCluster(namespaces=("default",), capacity=None, strict_schemas=True, *, crds_dir=None,
            token=None, user="system:serviceaccount:default:ciao", history_size=1000,
            bookmark_interval=1.0, grace_cap=2.0, backoff_base=0.2, backoff_cap=1.6,
            operator=True)
    start() / stop() / context manager; stop() kills every pod process and joins threads.
    url, token, user, resource_version
    write_kubeconfig(path, namespace="default", context="fake") -> Path
    api_client() -> kubernetes.client.ApiClient
    get(resource, namespace, name) -> dict | None
    list(resource, namespace=None, label_selector=None, field_selector=None) -> list[dict]
    create(resource, obj, namespace=None), delete(resource, namespace, name, propagation=None)
    events(namespace="default", involved=None, reason=None) -> list[dict]
    logs(namespace, pod, container=None, previous=False, timestamps=False) -> str
    pod_processes() -> {"ns/pod/container": pid}
    wait_for(predicate, timeout=30, message="...") -> the truthy value
    deny(verb, resource, namespace=None) -> DenyRule; allow(rule=None)
    uninstall_crd(name) / install_crd(name)
    inject(fault, **params_and_match) -> Fault (fault.cancel()); clear_faults()
    drop_watches(after_events=0, abrupt=False) -> int; compact() -> int

Faults (match keys: pod= glob, namespace=, container=, job=, replica_type=, labels={}; and
times= how often, None for until cancelled):
    unschedulable(resource="cpu")        Pending, FailedScheduling "1 Insufficient <resource>"
    image_pull(cause="not-found"|"manifest-unknown"|"auth")  ErrImagePull / ImagePullBackOff
    oom(after_lines=0, delay=0.0)        killed; terminated OOMKilled, exitCode 137
    restart(after_lines=1, exit_code=1)  first instance exits 1, then restarts in place
    log_cut(after_bytes=10)              next follow of the pod's log is cut mid-line
    watch_drop(after_events=0, abrupt=False)  open watches end (abrupt: connection reset)
    watch_expire()                       next watch resuming from a resourceVersion gets 410

validate_job(obj) -> list[str]: schema (strict about unknown fields) + operator webhook
problems of a TFJob/PyTorchJob manifest, without a server. fakecluster.jobs has small
manifest builders (pytorchjob(...), tfjob(...)).

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
from .validation import validate_job

__all__ = ["FakeCluster", "Fault", "StatusError", "validate_job"]
