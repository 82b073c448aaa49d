"""The simulated kubelets of the cluster's nodes (and, on their worker thread, the
scheduler: scheduling.py).

A pod bound to one of the nodes gets a PodWorker thread that attaches its single-node
volumes (storage.py: Multi-Attach), sets up its volumes (runtime.py: FailedMount until a
ConfigMap or Secret exists), fetches its image pull secrets (Warning
FailedToRetrieveImagePullSecret `Unable to retrieve some image pull secrets (a, b);
attempting to pull the image may not succeed.`), pulls images (events only; an image the
cluster calls private needs a pull Secret of a docker config type that the test named:
ErrImagePull / ImagePullBackOff `... pull access denied ... authentication required`
otherwise; an image already on the node is not pulled again, whoever pulled it), runs init
containers, then runs every container as a real local process (see runtime.py), records
its output line by line, and reports status the way the kubelet does: waiting reasons
(CreateContainerConfigError for a Secret, ConfigMap or key the env names that does not
exist, retried until it does), running/terminated states, restartCount and lastState,
CrashLoopBackOff, phases and conditions, graceful deletion. Events come from `kubelet` with
the node's name as host; status.hostIP is the node's address.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import os
import secrets
import signal
import subprocess
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from . import errors as E
from . import storage
from .configdata import gives_pull_credentials
from .faults import Faults
from .logs import ContainerLog, LogBook
from .nodes import Node
from .programs import Program, ProgramRun, Sibling, repository
from .recorder import EventRecorder
from .registry import Registry
from .runtime import ConfigError, ContainerRuntime, MountError, Sandbox, dns_records, pod_ip
from .scheduling import Scheduler
from .store import Obj, WatchEvent
from .timeutil import rfc3339
from .worker import Worker

PYTORCH_INIT = "init-pytorch"


def normalize_image(image: str) -> str:
    """`python:3.11` -> `docker.io/library/python:3.11`, as containerd reports it."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" not in last and not digest:
        name += ":latest"
    first = name.split("/", 1)[0]
    if "/" not in name:
        name = "docker.io/library/" + name
    elif "." not in first and ":" not in first and first != "localhost":
        name = "docker.io/" + name
    return name + (f"@{digest}" if digest else "")


def image_id(image: str) -> str:
    ref = normalize_image(image).split(":")[0].split("@")[0]
    return f"{ref}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"


def pull_error(image: str, cause: str) -> str:
    ref = normalize_image(image)
    if cause == "auth":
        return (
            f'rpc error: code = Unknown desc = failed to pull and unpack image "{ref}": failed '
            f'to resolve reference "{ref}": pull access denied, repository does not exist or '
            f"may require authorization: unauthorized: authentication required"
        )
    if cause == "manifest-unknown":
        return (
            f'rpc error: code = NotFound desc = failed to pull and unpack image "{ref}": failed '
            f'to resolve reference "{ref}": {ref}: not found: manifest unknown'
        )
    return (
        f'rpc error: code = NotFound desc = failed to pull and unpack image "{ref}": failed to '
        f'resolve reference "{ref}": {ref}: not found'
    )


def _terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _dns_key(pod: Obj | None) -> tuple[Any, ...] | None:
    """What of a pod decides the DNS names that answer it (see runtime.dns_records)."""
    if pod is None:
        return None
    meta, spec = pod["metadata"], pod.get("spec") or {}
    labels = tuple(sorted((meta.get("labels") or {}).items()))
    names = (spec.get("hostname"), spec.get("subdomain"))
    return labels, names, spec.get("nodeName"), _terminal(pod), "deletionTimestamp" in meta


class ContainerWorker:
    """One container of a pod: pulls, runs instances, restarts per policy."""

    def __init__(self, pw: PodWorker, spec: dict[str, Any], init: bool) -> None:
        self.pw = pw
        self.spec = spec
        self.name: str = spec["name"]
        self.init = init
        self.field_path = f"spec.{'initContainers' if init else 'containers'}{{{self.name}}}"
        waiting = "PodInitializing" if (init or pw.has_init) else "ContainerCreating"
        self.state: dict[str, Any] = {"waiting": {"reason": waiting}}
        self.last_state: dict[str, Any] = {}
        self.restart_count = 0
        self.ready = False
        self.started = False
        self.ever_started = False
        self.container_id: str | None = None
        self.final = False
        self.exit_code: int | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        #: The pid of the current (or last) process: what another container sees of it.
        self.pid: int | None = None
        self.env: dict[str, str] = {}
        self._kill_lock = threading.Lock()
        self.thread: threading.Thread | None = None

    # -- status --------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "state": self.state,
            "lastState": self.last_state,
            "ready": self.ready,
            "restartCount": self.restart_count,
            "image": normalize_image(self.spec.get("image") or ""),
            "imageID": image_id(self.spec.get("image") or "") if self.ever_started else "",
            "started": self.started,
        }
        if self.container_id:
            out["containerID"] = self.container_id
        return out

    def event(self, type_: str, reason: str, message: str) -> None:
        self.pw.recorder.event(self.pw.pod, type_, reason, message, self.field_path)

    # -- lifecycle -----------------------------------------------------------------------
    def should_restart(self, code: int) -> bool:
        policy = self.pw.restart_policy
        if self.init:
            return policy != "Never" and code != 0
        return policy == "Always" or (policy == "OnFailure" and code != 0)

    def run(self) -> None:
        kubelet = self.pw.kubelet
        failures = 0
        while not self.pw.terminating.is_set():
            if not self.pull() or not self.create_config():
                return
            code, forced = self.run_instance()
            if self.pw.terminating.is_set():
                return
            if not (forced or self.should_restart(code)):
                self.final = True
                self.pw.sync()
                return
            failures += 1
            self.last_state = {"terminated": self.state["terminated"]}
            if failures >= 2:
                delay = min(kubelet.backoff_base * 2 ** (failures - 2), kubelet.backoff_cap)
                pod = self.pw.pod["metadata"]
                where = f"{pod['name']}_{pod['namespace']}({pod['uid']})"
                self.state = {
                    "waiting": {
                        "reason": "CrashLoopBackOff",
                        "message": f"back-off {delay:g}s restarting failed container="
                        f"{self.name} pod={where}",
                    }
                }
                self.event(
                    "Warning",
                    "BackOff",
                    f"Back-off restarting failed container {self.name} in pod {where}",
                )
                self.pw.sync()
                if self.pw.terminating.wait(delay):
                    return
            self.restart_count += 1

    def pull(self) -> bool:
        """Image pull events; a failing pull (a private image without its pull Secret, an
        injected fault) loops ErrImagePull/ImagePullBackOff."""
        kubelet = self.pw.kubelet
        image = self.spec.get("image") or ""
        policy = self.spec.get("imagePullPolicy", "IfNotPresent")
        present = kubelet.images[self.pw.node.name]
        delay = kubelet.backoff_base
        first = True
        while True:
            fault = kubelet.faults.take("image_pull", self.pw.pod, self.name)
            if fault is None and (
                policy == "Never" or (policy == "IfNotPresent" and image in present)
            ):
                self.event(
                    "Normal", "Pulled", f'Container image "{image}" already present on machine'
                )
                return True
            secrets = self.pw.pull_secrets(refresh=not first)
            first = False
            cause = (
                fault.params.get("cause", "not-found") if fault else kubelet.denied(image, secrets)
            )
            if not cause:
                self.event("Normal", "Pulling", f'Pulling image "{image}"')
                started = time.monotonic()
                if self.pw.terminating.wait(kubelet.pull_delay):
                    return False
                took = f"{(time.monotonic() - started) * 1000:.0f}ms"
                present.add(image)
                self.event(
                    "Normal",
                    "Pulled",
                    f'Successfully pulled image "{image}" in {took} '
                    f"({took} including waiting). Image size: 0 bytes.",
                )
                return True
            message = pull_error(image, cause)
            self.event("Normal", "Pulling", f'Pulling image "{image}"')
            self.event("Warning", "Failed", f'Failed to pull image "{image}": {message}')
            self.event("Warning", "Failed", "Error: ErrImagePull")
            self.state = {"waiting": {"reason": "ErrImagePull", "message": message}}
            self.pw.sync()
            if self.pw.terminating.wait(delay):
                return False
            backoff = f'Back-off pulling image "{image}"'
            self.event("Normal", "BackOff", backoff)
            self.event("Warning", "Failed", "Error: ImagePullBackOff")
            self.state = {"waiting": {"reason": "ImagePullBackOff", "message": backoff}}
            self.pw.sync()
            if self.pw.terminating.wait(delay):
                return False
            delay = min(delay * 2, kubelet.backoff_cap)

    def create_config(self) -> bool:
        """generateContainerConfig, before the container is created: its environment (every
        Secret, ConfigMap and key it names must exist, unless optional), then with
        runAsNonRoot a user that is not root, and an image's own user numeric to be checked.
        Failing, the container waits in CreateContainerConfigError and is tried again."""
        kubelet = self.pw.kubelet
        delay = kubelet.backoff_base
        while True:
            sandbox = self.pw.sandbox
            assert sandbox is not None, "containers start once the pod's sandbox is made"
            try:
                self.env = kubelet.runtime.environment(
                    self.pw.pod, self.spec, sandbox, kubelet.lookup
                )
                problem = self.non_root_problem()
            except ConfigError as exc:
                problem = str(exc)
            if not problem:
                return True
            self.event("Warning", "Failed", f"Error: {problem}")
            self.state = {"waiting": {"reason": "CreateContainerConfigError", "message": problem}}
            self.pw.sync()
            if self.pw.terminating.wait(delay):
                return False
            delay = min(delay * 2, kubelet.backoff_cap)

    def non_root_problem(self) -> str:
        pod = self.pw.pod
        pod_sc = (pod.get("spec") or {}).get("securityContext") or {}
        sc = {**pod_sc, **(self.spec.get("securityContext") or {})}  # the container's win
        if sc.get("runAsNonRoot") is not True:
            return ""
        meta = pod["metadata"]
        where = (
            f'(pod: "{meta["name"]}_{meta["namespace"]}({meta["uid"]})", container: {self.name})'
        )
        if sc.get("runAsUser") is not None:
            return (
                f"container's runAsUser breaks non-root policy {where}"
                if sc["runAsUser"] == 0
                else ""
            )
        user = self.pw.kubelet.image_user(self.spec.get("image") or "").split(":")[0]
        if not user or user == "0":
            return f"container has runAsNonRoot and image will run as root {where}"
        if not user.isdigit():
            return (
                f"container has runAsNonRoot and image has non-numeric user ({user}), cannot "
                f"verify user is non-root {where}"
            )
        return ""

    def _start(self) -> tuple[ContainerLog, str]:
        kubelet = self.pw.kubelet
        cid = "containerd://" + secrets.token_hex(32)
        log = kubelet.logbook.new_instance(self.pw.uid, self.name, self.restart_count, cid)
        self.container_id = cid
        self.event("Normal", "Created", f"Created container: {self.name}")
        return log, cid

    def _running(self, started_at: str) -> None:
        self.state = {"running": {"startedAt": started_at}}
        self.started = True
        self.ever_started = True
        self.ready = not self.init
        self.event("Normal", "Started", f"Started container {self.name}")
        self.pw.sync()

    def _terminated(self, code: int, reason: str, started_at: str, message: str = "") -> None:
        term = {
            "exitCode": code,
            "reason": reason,
            "startedAt": started_at,
            "finishedAt": rfc3339(),
            "containerID": self.container_id,
        }
        if message:
            term["message"] = message
        self.state = {"terminated": term}
        self.exit_code = code
        self.ready = self.init and code == 0
        self.started = False
        self.pw.sync()

    def run_instance(self) -> tuple[int, bool]:
        """One container instance; returns (exit code, forced restart)."""
        if self.init and self.name == PYTORCH_INIT:
            return self._run_pytorch_init(), False
        program = self.pw.kubelet.program_for(self.spec.get("image") or "")
        if program is not None:
            return self._run_program(program), False
        kubelet, pod = self.pw.kubelet, self.pw.pod
        log, _cid = self._start()
        crash = kubelet.faults.take("restart", pod, self.name)
        oom = kubelet.faults.take("oom", pod, self.name)
        trigger = crash or oom
        started_at = rfc3339()
        sandbox = self.pw.sandbox
        assert sandbox is not None, "containers start once the pod's sandbox is made"
        try:
            proc = kubelet.runtime.spawn(pod, self.spec, sandbox, self.env)
        except OSError as exc:
            log.finish()
            message = (
                "failed to create containerd task: failed to create shim task: OCI runtime "
                "create failed: runc create failed: unable to start container process: exec: "
                f'"{(self.spec.get("command") or self.spec.get("args") or ["?"])[0]}": '
                f"{exc.strerror or exc}: unknown"
            )
            self.event("Warning", "Failed", f"Error: {message}")
            self._terminated(128, "StartError", started_at, message)
            return 128, False
        self.proc = proc
        self.pid = proc.pid
        self._running(started_at)
        after_lines = int(trigger.params.get("after_lines", 0)) if trigger else 0
        delay = float(trigger.params.get("delay", 0)) if trigger else 0.0
        cut = threading.Event()  # once a fault fires, the instance's later output is lost
        record_lock = threading.Lock()

        def fire() -> None:
            cut.set()
            self._kill(signal.SIGKILL)

        def record(stream: str, text: bytes, partial: bool = False) -> None:
            with record_lock:
                if cut.is_set():
                    return
                log.append(stream, text, partial)
                if trigger is not None and 0 < after_lines <= log.lines:
                    fire()

        if trigger is not None and after_lines <= 0 and delay <= 0:
            fire()
        readers = [
            threading.Thread(target=self._reader, args=(pipe, name, record), daemon=True)
            for pipe, name in ((proc.stdout, "stdout"), (proc.stderr, "stderr"))
        ]
        for r in readers:
            r.start()
        t0 = time.monotonic()
        while proc.poll() is None:
            if self.pw.terminating.is_set():
                self._terminate_process()
                break
            if 0 < delay <= time.monotonic() - t0:
                fire()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(0.05)
        proc.wait()
        for r in readers:
            r.join(2)
        log.finish()
        code = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
        reason = "Completed" if code == 0 else "Error"
        if oom is not None:
            code, reason = 137, "OOMKilled"
        elif crash is not None:
            code, reason = int(crash.params.get("exit_code", 1)), "Error"
        self.proc = None
        self._terminated(code, reason, started_at)
        return code, crash is not None

    @staticmethod
    def _reader(pipe: Any, stream: str, record: Any) -> None:
        """Split a pipe into lines (16 KiB partial records for longer ones, as CRI does)."""
        buf = b""
        fd = pipe.fileno()
        try:
            while True:
                data = os.read(fd, 65536)
                if not data:
                    break
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    record(stream, line)
                while len(buf) > 16384:
                    record(stream, buf[:16384], True)
                    buf = buf[16384:]
            if buf:
                record(stream, buf)
        except OSError:
            pass
        finally:
            pipe.close()

    def _kill(self, sig: int) -> None:
        with self._kill_lock:
            proc = self.proc
            if proc is None or proc.poll() is not None:
                return
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, sig)

    def _terminate_process(self) -> None:
        """Graceful stop: SIGTERM to the process group, SIGKILL after the grace period."""
        proc = self.proc
        if proc is None:
            return
        self.event("Normal", "Killing", f"Stopping container {self.name}")
        grace = self.pw.grace
        self._kill(signal.SIGTERM)
        if grace > 0:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(grace)
        self._kill(signal.SIGKILL)

    def _run_program(self, program: Program) -> int:
        """An in-process stand-in of the image's program (programs.py)."""
        log, _cid = self._start()
        started_at = rfc3339()
        self._running(started_at)
        sandbox = self.pw.sandbox
        assert sandbox is not None, "containers start once the pod's sandbox is made"
        runtime = self.pw.kubelet.runtime
        run = ProgramRun(
            self.pw.pod,
            self.spec,
            log,
            self.pw.terminating,
            self.pw.siblings_of(self),
            lambda path: runtime.local_path(self.spec, sandbox, path),
        )
        try:
            code = program(run)
        except Exception:  # a bug in the stand-in: the container fails, the test sees why
            for line in traceback.format_exc().splitlines():
                log.append("stderr", line.encode())
            code = 2
        log.finish()
        if self.pw.terminating.is_set():
            code = 143
        self._terminated(code, "Completed" if code == 0 else "Error", started_at)
        return code

    def _run_pytorch_init(self) -> int:
        """init-pytorch waits for the master's DNS name: here, for the master pod to run."""
        kubelet, pod = self.pw.kubelet, self.pw.pod
        log, _cid = self._start()
        started_at = rfc3339()
        self._running(started_at)
        labels = pod["metadata"].get("labels") or {}
        namespace = pod["metadata"]["namespace"]
        master = f"{labels.get('training.kubeflow.org/job-name', '')}-master-0"
        last_say = 0.0
        while True:
            if self.pw.terminating.is_set():
                log.finish()
                self._terminated(143, "Error", started_at)
                return 143
            other = kubelet.registry.store.get("pods", namespace, master)
            phase = (other or {}).get("status", {}).get("phase")
            if other is not None and phase in ("Running", "Succeeded", "Failed"):
                break
            if time.monotonic() - last_say >= 1.0:
                log.append("stdout", f"nslookup: can't resolve '{master}'".encode())
                log.append("stdout", b"waiting for master")
                last_say = time.monotonic()
            self.pw.terminating.wait(0.05)
        for line in (
            "Server:    10.96.0.10",
            "Address 1: 10.96.0.10 kube-dns.kube-system.svc.cluster.local",
            "",
            f"Name:      {master}",
            f"Address 1: {pod_ip(other)} {master}.{namespace}.svc.cluster.local",
        ):
            log.append("stdout", line.encode())
        log.finish()
        self._terminated(0, "Completed", started_at)
        return 0


class PodWorker:
    """Runs one bound pod to completion or deletion, and writes its status."""

    def __init__(self, kubelet: Kubelet, pod: Obj, node: Node) -> None:
        self.kubelet = kubelet
        self.node = node
        self.recorder = kubelet.recorders[node.name]
        self.pod = copy.deepcopy(pod)  # the event's object is a shared snapshot
        self.pod.setdefault("status", {})["hostIP"] = node.ip  # the downward API's, at once
        meta = self.pod["metadata"]
        self.uid: str = meta["uid"]
        self.namespace: str = meta["namespace"]
        self.name: str = meta["name"]
        spec = pod.get("spec") or {}
        self.restart_policy: str = spec.get("restartPolicy", "Always")
        self.has_init = bool(spec.get("initContainers"))
        self.init_workers = [
            ContainerWorker(self, c, True) for c in spec.get("initContainers") or []
        ]
        self.workers = [ContainerWorker(self, c, False) for c in spec.get("containers") or []]
        self.terminating = threading.Event()
        self.grace = 0.0
        self.deleting = False
        self.gone = False
        self.sandbox_ready = False
        self.sandbox: Sandbox | None = None
        self.initialized = not self.has_init
        self.failed_init = False
        self.start_time = rfc3339()
        self._sync_lock = threading.Lock()
        self._pull_secrets: list[Obj] | None = None
        self.thread = threading.Thread(target=self.run, name=f"pod-{self.name}", daemon=True)

    def siblings_of(self, me: ContainerWorker) -> Callable[[], list[Sibling]]:
        """The pod's other containers as a shared process namespace shows them to `me`."""

        def snapshot() -> list[Sibling]:
            out = []
            for w in self.workers:
                if w is me:
                    continue
                proc = w.proc
                spec = w.spec
                argv = [str(a) for a in (spec.get("command") or []) + (spec.get("args") or [])]
                out.append(
                    Sibling(
                        w.name,
                        w.pid,
                        proc is not None and proc.poll() is None,
                        w.final,
                        " ".join(argv),
                    )
                )
            return out

        return snapshot

    def pull_secrets(self, refresh: bool = False) -> list[Obj]:
        """getPullSecretsForPod, at each sync: the imagePullSecrets that exist, and an event
        naming those that do not."""
        if self._pull_secrets is not None and not refresh:
            return self._pull_secrets
        found, missing = [], []
        for ref in (self.pod.get("spec") or {}).get("imagePullSecrets") or []:
            name = ref.get("name") or ""
            if not name:
                continue
            secret = self.kubelet.lookup("secrets", self.namespace, name)
            if secret is None:
                missing.append(name)
            else:
                found.append(secret)
        if missing:
            self.recorder.event(
                self.pod,
                "Warning",
                "FailedToRetrieveImagePullSecret",
                f"Unable to retrieve some image pull secrets ({', '.join(missing)}); attempting "
                "to pull the image may not succeed.",
            )
        self._pull_secrets = found
        return found

    def terminate(self, grace: float, deleting: bool = True) -> None:
        self.grace = min(max(grace, 0.0), self.kubelet.grace_cap)
        self.deleting = self.deleting or deleting
        self.terminating.set()

    def processes(self) -> dict[str, int]:
        out = {}
        for w in self.init_workers + self.workers:
            proc = w.proc
            if proc is not None and proc.poll() is None:
                out[f"{self.namespace}/{self.name}/{w.name}"] = proc.pid
        return out

    # -- status --------------------------------------------------------------------------
    def _phase(self) -> str:
        if self.failed_init:
            return "Failed"
        if not self.initialized:
            return "Pending"
        if self.workers and all(w.final for w in self.workers):
            return "Succeeded" if all(w.exit_code == 0 for w in self.workers) else "Failed"
        if any(w.ever_started for w in self.workers):
            return "Running"
        return "Pending"

    @staticmethod
    def _condition(
        old: dict[str, dict[str, Any]], type_: str, ok: bool, reason: str = "", message: str = ""
    ) -> dict[str, Any]:
        status = "True" if ok else "False"
        prev = old.get(type_)
        cond: dict[str, Any] = {"type": type_, "status": status, "lastProbeTime": None}
        if prev is not None and prev.get("status") == status:
            cond["lastTransitionTime"] = prev.get("lastTransitionTime")
        else:
            cond["lastTransitionTime"] = rfc3339()
        if reason:
            cond["reason"] = reason
        if message:
            cond["message"] = message
        return cond

    def _compose(self, current: Obj) -> None:
        status = current.setdefault("status", {})
        old = {c["type"]: c for c in status.get("conditions") or []}
        phase = self._phase()
        finished = phase in ("Succeeded", "Failed")
        unready = [w.name for w in self.workers if not (w.ready and "running" in w.state)]
        pending_init = [w.name for w in self.init_workers if not w.final]
        conds = [self._condition(old, "PodReadyToStartContainers", self.sandbox_ready)]
        if self.initialized:
            conds.append(self._condition(old, "Initialized", True))
        else:
            conds.append(
                self._condition(
                    old,
                    "Initialized",
                    False,
                    "ContainersNotInitialized",
                    f"containers with incomplete status: [{' '.join(pending_init)}]",
                )
            )
        for t in ("Ready", "ContainersReady"):
            if finished:
                conds.append(self._condition(old, t, False, "PodCompleted"))
            elif unready:
                conds.append(
                    self._condition(
                        old,
                        t,
                        False,
                        "ContainersNotReady",
                        f"containers with unready status: [{' '.join(unready)}]",
                    )
                )
            else:
                conds.append(self._condition(old, t, True))
        if "PodScheduled" in old:
            conds.append(old["PodScheduled"])
        mine = {"PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady"}
        conds += [c for t, c in old.items() if t not in mine and t != "PodScheduled"]
        status.update(
            {
                "phase": phase,
                "conditions": conds,
                "hostIP": self.node.ip,
                "hostIPs": [{"ip": self.node.ip}],
                "podIP": pod_ip(current),
                "podIPs": [{"ip": pod_ip(current)}],
                "startTime": status.get("startTime") or self.start_time,
                "containerStatuses": [w.status() for w in self.workers],
            }
        )
        if self.init_workers:
            status["initContainerStatuses"] = [w.status() for w in self.init_workers]

    def sync(self) -> None:
        """Write the pod's status from the container workers' states."""
        if self.gone:
            return
        with self._sync_lock:
            result = self.kubelet.registry.mutate(
                "pods",
                self.namespace,
                self.name,
                lambda p: self._compose(p) if p["metadata"]["uid"] == self.uid else False,
            )
            if result is None:
                self.gone = True

    # -- lifecycle -----------------------------------------------------------------------
    def run(self) -> None:
        try:
            self.sync()
            if not self._setup() or not self._run_init():
                return
            threads = []
            for w in self.workers:
                w.thread = threading.Thread(
                    target=w.run, name=f"ctr-{self.name}-{w.name}", daemon=True
                )
                w.thread.start()
                threads.append(w.thread)
            for t in threads:
                t.join()
        except Exception:  # a bug in the fake must not hang the test silently
            traceback.print_exc()
        finally:
            self._finish()

    def _setup(self) -> bool:
        """Attach the pod's single-node volumes, then make its sandbox (mounts); each is
        retried until it works, each failure reported once per distinct message."""
        kubelet = self.kubelet
        reported = ""
        while not self.terminating.is_set():
            blocked, message = kubelet.attach(self.pod, self.node)
            if blocked:
                if message and message != reported:
                    kubelet.attach_recorder.event(
                        self.pod, "Warning", "FailedAttachVolume", message
                    )
                    reported = message
                self.terminating.wait(0.2)
                continue
            try:
                self.sandbox = kubelet.runtime.create_sandbox(
                    self.pod, kubelet.lookup, self.node.capacity.get("memory")
                )
                self.sandbox_ready = True
                self.pull_secrets()
                self.sync()
                return True
            except MountError as exc:
                if str(exc) != reported:
                    self.recorder.event(self.pod, "Warning", "FailedMount", str(exc))
                    reported = str(exc)
                self.terminating.wait(0.2)
        return False

    def _run_init(self) -> bool:
        for w in self.init_workers:
            w.run()
            if self.terminating.is_set() or not w.final:
                return False
            if w.exit_code != 0:
                self.failed_init = True
                self.sync()
                return False
        self.initialized = True
        for w in self.workers:
            if w.state.get("waiting", {}).get("reason") == "PodInitializing":
                w.state = {"waiting": {"reason": "PodInitializing"}}
        self.sync()
        return True

    def _finish(self) -> None:
        for w in self.init_workers + self.workers:
            w._kill(signal.SIGKILL)
        if self.deleting and not self.gone:
            for w in self.init_workers + self.workers:
                if w.exit_code is not None and "terminated" in w.state:
                    w.final = True
            self.sync()
            with contextlib.suppress(E.StatusError):
                info = self.kubelet.registry.by_plural("pods")
                current = self.kubelet.registry.store.get("pods", self.namespace, self.name)
                if current is not None and current["metadata"]["uid"] == self.uid:
                    self.kubelet.registry.delete(info, self.namespace, self.name, grace=0)
        self.kubelet.worker_done(self)


class Kubelet(Worker[WatchEvent]):
    """The kubelets of every node (and the scheduler), driven by store events."""

    def __init__(
        self,
        registry: Registry,
        logbook: LogBook,
        faults: Faults,
        runtime: ContainerRuntime,
        nodes: list[Node],
        grace_cap: float = 2.0,
        backoff_base: float = 0.2,
        backoff_cap: float = 1.6,
        pull_delay: float = 0.01,
        image_users: dict[str, str] | None = None,
        private_images: dict[str, str] | None = None,
    ) -> None:
        super().__init__("fake-kubelet", 0.2)
        self.registry = registry
        self.logbook = logbook
        self.faults = faults
        self.runtime = runtime
        self.nodes = {n.name: n for n in nodes}
        self.grace_cap = grace_cap
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.pull_delay = pull_delay
        #: The images each node has pulled.
        self.images: dict[str, set[str]] = {n.name: set() for n in nodes}
        #: The user of each image's config (`USER`: "1000", "app", "1000:1000"); images not
        #: named run as root, as the stock framework images do.
        self.image_users = dict(image_users or {})
        #: Images a registry serves only with credentials: image -> the pull Secret's name.
        self.private_images = {normalize_image(k): v for k, v in (private_images or {}).items()}
        self.recorders = {n.name: EventRecorder(registry, "kubelet", n.name) for n in nodes}
        self.attach_recorder = EventRecorder(registry, "attachdetach-controller")
        self.volume_recorder = EventRecorder(registry, "persistentvolume-controller")
        self.scheduler = Scheduler(registry, nodes, faults)
        self.attachments = storage.Attachments()
        self._workers: dict[str, PodWorker] = {}
        self._lock = threading.Lock()
        self._started: set[str] = set()
        #: In-process programs of images (programs.py), by image repository.
        self.programs: dict[str, Program] = {}
        registry.store.add_listener(self._on_event)
        faults.on_change(self.wake)

    def add_program(self, image_repository: str, program: Program) -> None:
        """Run containers of this image (any tag) as `program` rather than a process."""
        self.programs[image_repository] = program

    def program_for(self, image: str) -> Program | None:
        return self.programs.get(repository(image)) if image else None

    def image_user(self, image: str) -> str:
        return self.image_users.get(image, self.image_users.get(normalize_image(image), ""))

    def denied(self, image: str, secrets: list[Obj]) -> str:
        """ "auth" when the registry refuses the pull: a private image, and no pull Secret of
        a docker config type with the name the cluster was told grants it."""
        needed = self.private_images.get(normalize_image(image))
        if needed is None:
            return ""
        granted = any(
            s["metadata"]["name"] == needed and gives_pull_credentials(s) for s in secrets
        )
        return "" if granted else "auth"

    def node_objects(self) -> list[Obj]:
        return [n.to_object() for n in self.nodes.values()]

    def lookup(self, plural: str, namespace: str, name: str) -> Obj | None:
        """What the kubelet reads from the API server (its secret, configmap and claim
        managers)."""
        return self.registry.store.get(plural, namespace, name)

    def start(self) -> None:
        self._write_services()
        super().start()

    def stop(self) -> None:
        super().stop()
        with self._lock:
            workers = list(self._workers.values())
        for w in workers:
            w.gone = True
            w.terminate(0, deleting=False)
        for w in workers:
            w.thread.join(10)

    def processes(self) -> dict[str, int]:
        with self._lock:
            workers = list(self._workers.values())
        out: dict[str, int] = {}
        for w in workers:
            out.update(w.processes())
        return out

    def worker_done(self, worker: PodWorker) -> None:
        with self._lock:
            if self._workers.get(worker.uid) is worker:
                del self._workers[worker.uid]
        self.wake()

    # -- volumes -------------------------------------------------------------------------
    def attach(self, pod: Obj, node: Node) -> tuple[bool, str]:
        """The attach/detach controller for the pod's claims: (blocked, why). A claim that
        is missing or unbound blocks silently (the volume manager waits); a single-node one
        attached to another node in use there is a Multi-Attach error."""
        namespace = pod["metadata"]["namespace"]
        for _, name, _ in storage.claim_volumes(pod):
            claim = self.lookup("persistentvolumeclaims", namespace, name)
            if claim is None or not storage.bound(claim):
                return True, ""
            if not storage.single_node(claim):
                continue

            def users(other_node: str, claim_name: str = name) -> list[Obj]:
                pods, _ = self.registry.store.list("pods", namespace)
                return [
                    p
                    for p in pods
                    if p["spec"].get("nodeName") == other_node
                    and not _terminal(p)
                    and p["metadata"]["uid"] != pod["metadata"]["uid"]
                    and any(c == claim_name for _, c, _ in storage.claim_volumes(p))
                ]

            volume = storage.volume_name(claim)
            holders = self.attachments.attach(volume, node.name, users)
            if holders:
                return True, storage.multi_attach_message(volume, pod, holders)
        return False, ""

    def _claim_event(self, ev: WatchEvent) -> None:
        """The PV controller's word on a claim it cannot bind; a deleted claim's volume goes
        (reclaimPolicy Delete)."""
        claim = ev.obj
        if ev.type == "DELETED":
            volume = storage.volume_name(claim)
            if volume:
                self.attachments.forget(volume)
                self.runtime.remove_volume(volume)
            return
        if ev.type == "ADDED":
            said = storage.unbound_event(claim)
            if said is not None:
                self.volume_recorder.event(claim, *said)

    # -- events --------------------------------------------------------------------------
    def _on_event(self, ev: WatchEvent) -> None:
        if ev.resource in ("pods", "services", "persistentvolumeclaims"):
            self._queue.put(ev)

    def handle(self, ev: WatchEvent) -> None:
        if ev.resource == "services":
            self._write_services()
        elif ev.resource == "persistentvolumeclaims":
            self._claim_event(ev)
        else:
            self._pod_event(ev)

    def tick(self) -> None:
        """Scheduling: pending pods onto the nodes, as they free up."""
        self.scheduler.schedule_pending()

    def _write_services(self) -> None:
        """Cluster DNS: service names -> their pods, pod names under headless services."""
        services, _ = self.registry.store.list("services")
        pods, _ = self.registry.store.list("pods")
        self.runtime.write_services(dns_records(services, pods))

    def _pod_event(self, ev: WatchEvent) -> None:
        pod = ev.obj
        meta = pod["metadata"]
        if ev.type == "DELETED" or _dns_key(pod) != _dns_key(ev.old):
            self._write_services()  # its DNS names, before its containers start
        uid = meta["uid"]
        with self._lock:
            worker = self._workers.get(uid)
        if ev.type == "DELETED":
            self.scheduler.forget(uid)
            if worker is not None:
                worker.gone = True
                worker.terminate(0, deleting=False)
                threading.Thread(target=self._cleanup_after, args=(worker,), daemon=True).start()
            else:
                self.logbook.drop_pod(uid)
                self.runtime.remove_sandbox(uid)
            return
        node_name = (pod.get("spec") or {}).get("nodeName")
        if not node_name:
            if ev.type == "ADDED":
                self.scheduler.schedule_pending()
            return
        node = self.nodes.get(node_name)
        if node is None:
            return  # bound to a node that is not this cluster's: no kubelet runs it
        if meta.get("deletionTimestamp"):
            if worker is not None:
                worker.terminate(float(meta.get("deletionGracePeriodSeconds", 0)))
            elif meta.get("deletionGracePeriodSeconds", 0) > 0:
                with contextlib.suppress(E.StatusError):
                    self.registry.delete(
                        self.registry.by_plural("pods"), meta["namespace"], meta["name"], grace=0
                    )
            return
        if worker is None and not _terminal(pod) and uid not in self._started:
            self._started.add(uid)
            worker = PodWorker(self, pod, node)
            with self._lock:
                self._workers[uid] = worker
            worker.thread.start()

    def _cleanup_after(self, worker: PodWorker) -> None:
        worker.thread.join(30)
        self.logbook.drop_pod(worker.uid)
        self.runtime.remove_sandbox(worker.uid)

    # -- logs ----------------------------------------------------------------------------
    def container_log(self, pod: Obj, container: str, previous: bool) -> ContainerLog:
        """kubelet validateContainerLogStatus: which instance, or the reason there is none."""
        status = pod.get("status") or {}
        name = pod["metadata"]["name"]
        statuses = (status.get("containerStatuses") or []) + (
            status.get("initContainerStatuses") or []
        )
        cs = next((s for s in statuses if s.get("name") == container), None)
        if cs is None:
            raise E.bad_request(f'container "{container}" in pod "{name}" is not available')
        last = (cs.get("lastState") or {}).get("terminated")
        state = cs.get("state") or {}
        prefix = f'container "{container}" in pod "{name}"'
        if previous:
            if not last or not last.get("containerID"):
                raise E.bad_request(
                    f'previous terminated container "{container}" in pod "{name}" not found'
                )
            cid = last["containerID"]
        elif "running" in state:
            cid = cs.get("containerID", "")
        elif "terminated" in state:
            cid = state["terminated"].get("containerID") or (last or {}).get("containerID")
            if not cid:
                raise E.bad_request(f"{prefix} is terminated")
        elif last:
            cid = last.get("containerID", "")
        elif "waiting" in state:
            reason = state["waiting"].get("reason", "")
            detail = {
                "ErrImagePull": "image can't be pulled",
                "ImagePullBackOff": "trying and failing to pull image",
            }.get(reason, reason)
            raise E.bad_request(f"{prefix} is waiting to start: {detail}")
        else:
            raise E.bad_request(f"{prefix} is waiting to start - no logs yet")
        log = self.logbook.get(cid)
        if log is None:
            raise E.bad_request(f"{prefix} is not available")
        return log
