"""Helpers for tests that talk to the installed kernel through jupyter_client."""

from __future__ import annotations

import importlib.util
import os
import re
import select
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.manager import start_new_kernel

TIMEOUT = 60
#: The tests' private HOME (tests/conftest.py sets it before any test module is imported):
#: the kernels' run records are under it.
TEST_HOME = Path(os.environ["HOME"])
#: Cells under `torchrun` (every Trainer v2 node, `%procs`) run only where torch is
#: installed: the test cluster's images have torchrun only then.
HAS_TORCH = importlib.util.find_spec("torch") is not None
needs_torchrun = pytest.mark.skipif(
    not HAS_TORCH, reason="the cell runs under torchrun: pip install torch (.ci/run does)"
)


@contextmanager
def running_kernel(**kwargs: Any):
    """A kernel started from the installed `ciao` kernelspec, and a ready client; in a
    notebook folder of its own unless `cwd` says otherwise (local replicas run in the
    notebook's folder, and what they write lands there, not in the checkout)."""
    if "cwd" not in kwargs:
        kwargs["cwd"] = tempfile.mkdtemp(prefix="notebook-", dir=os.environ.get("HOME"))
    km, kc = _started(kwargs)
    try:
        yield km, kc
    finally:
        kc.stop_channels()
        if km.has_kernel:
            km.shutdown_kernel(now=not km.is_alive())


def _started(kwargs: dict[str, Any], attempts: int = 3) -> tuple[Any, Any]:
    """A started kernel and its ready client. jupyter_client picks free ports, then the
    kernel binds them: in between another process may take one (the kernel then exits,
    `Address already in use`), so a kernel that dies before its first reply is started
    again, on new ports; one that dies every time still fails the test."""
    for attempt in range(attempts):
        try:
            return start_new_kernel(kernel_name="ciao", startup_timeout=TIMEOUT, **kwargs)
        except RuntimeError as exc:
            if "died before replying" not in str(exc) or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


@contextmanager
def kernel_with_runs(runs: Path):
    """A kernel whose config (written in `runs`) keeps its jobs' records in `runs`; the
    manager, the client and the config file."""
    config = runs / "config.yaml"
    config.write_text(f"local: {{run_dir: {runs}}}\n")
    with running_kernel(env=dict(os.environ, CIAO_CONFIG=str(config))) as (km, kc):
        yield km, kc, config


def drain_iopub(kc, timeout: float = 0.3) -> list[dict]:
    messages = []
    while True:
        try:
            messages.append(kc.get_iopub_msg(timeout=timeout))
        except Exception:
            return messages


def iopub_until_idle(kc, msg_id: str, timeout: float = TIMEOUT) -> list[dict]:
    """Every IOPub message of request `msg_id`, up to and including its `idle`."""
    messages = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = kc.get_iopub_msg(timeout=deadline - time.monotonic())
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        messages.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return messages
    raise TimeoutError(f"no idle for {msg_id}")


def execute(kc, code: str, timeout: float = TIMEOUT, **kwargs: Any) -> tuple[dict, list[dict]]:
    """Run a cell; its execute_reply and its IOPub messages (busy ... idle)."""
    msg_id = kc.execute(code, **kwargs)
    reply = kc.get_shell_msg(timeout=timeout)
    while reply["parent_header"].get("msg_id") != msg_id:
        reply = kc.get_shell_msg(timeout=timeout)
    return reply, iopub_until_idle(kc, msg_id, timeout)


def run(kc, code: str, timeout: float = 90) -> tuple[dict, list[dict]]:
    """Run a cell; its reply's content and its IOPub messages."""
    reply, messages = execute(kc, code, timeout)
    return reply["content"], messages


def kubeflow_env(cluster: Any, directory: Path, namespace: str = "team", extra: str = "") -> dict:
    """The environment of a kernel whose config sends cells to `cluster` (a FakeCluster)."""
    kubeconfig = cluster.write_kubeconfig(directory / "kubeconfig", namespace=namespace)
    config = directory / "config.yaml"
    config.write_text(f"backend: kubeflow\nkubeconfig: {kubeconfig}\n{extra}")
    return dict(os.environ, CIAO_CONFIG=str(config))


def streamed_until(kc, msg_id: str, needle: str, timeout: float = 60) -> str:
    """What the cell `msg_id` streamed until `needle` appeared (or `timeout` passed)."""
    deadline = time.monotonic() + timeout
    seen = ""
    while needle not in seen and time.monotonic() < deadline:
        msg = kc.get_iopub_msg(timeout=max(0.1, deadline - time.monotonic()))
        if msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "stream":
            seen += msg["content"]["text"]
    return seen


def interrupt_after(kc, km, code: str, needle: str, timeout: float = 30) -> tuple[dict, str]:
    """Run `code`, interrupt once `needle` appears in the cell's output; the reply's
    content and all the cell streamed."""
    msg_id = kc.execute(code)
    seen = streamed_until(kc, msg_id, needle, timeout)
    assert needle in seen, seen
    km.interrupt_kernel()
    reply = kc.get_shell_msg(timeout=60)["content"]
    seen += stream_text(iopub_until_idle(kc, msg_id))
    return reply, seen


def by_replica(text: str) -> dict[str, list[str]]:
    """A job's streamed lines by replica (`[worker-0] text`, `[node-1] text`)."""
    lines = defaultdict(list)
    for line in text.splitlines():
        match = re.match(r"\[([a-z]+-\d+)\] (.*)$", line)
        if match:
            lines[match.group(1)].append(match.group(2))
    return dict(lines)


def process_lines(lines: dict[str, list[str]]) -> dict[str, list[str]]:
    """Each replica's lines from its processes under `torchrun --tee 3`, which marks them
    `[default<local rank>]:`, in order of rank; torchrun's own lines are left out."""
    return {
        replica: sorted(line for line in got if line.startswith("[default"))
        for replica, got in lines.items()
    }


def stream_text(messages: list[dict], name: str = "stdout") -> str:
    return "".join(
        m["content"]["text"]
        for m in messages
        if m["msg_type"] == "stream" and m["content"]["name"] == name
    )


def of_type(messages: list[dict], msg_type: str) -> list[dict]:
    return [m for m in messages if m["msg_type"] == msg_type]


def ended(pid: int, timeout: float) -> bool:
    """Whether process `pid` ends within `timeout` seconds (waits on its pidfd)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([fd], [], [], timeout)[0])
    finally:
        os.close(fd)


def everything_said(content: dict, messages: list[dict]) -> str:
    """All a cell printed (stdout, stderr) and its error's traceback, as one text."""
    parts = [stream_text(messages), stream_text(messages, "stderr")]
    return "\n".join([*parts, *content.get("traceback", [])])


def every_job(kc) -> str:
    """`%jobs --all` as text, with what it said on stderr: for an assertion's message when
    a job is missing from `%jobs` (which notebook, which kernel the listing saw)."""
    _, messages = run(kc, "%jobs --all")
    results = [
        m["content"]["data"]["text/plain"] for m in messages if m["msg_type"] == "execute_result"
    ]
    return "\n".join([*results, stream_text(messages, "stderr")])


@contextmanager
def kernel_on(backend: str, home: Path, cwd: Path | None = None):
    """A kernel whose cells run on `backend` ("local", or the test cluster's "v1"
    operator or "v2" Trainer, in namespace team), its records under `home`; the client and
    the cluster (None locally). On v2 a failing node's Job gives up after two restarts,
    not the default six: the same traceback, four torchrun starts sooner."""
    where = {} if cwd is None else {"cwd": str(cwd)}
    if backend == "local":
        config = home / "config.yaml"
        config.write_text(f"local: {{run_dir: {home / 'runs'}}}\n")
        with running_kernel(env=dict(os.environ, CIAO_CONFIG=str(config)), **where) as (_, kc):
            yield kc, None
        return
    from fakecluster import FakeCluster
    from fakecluster.jobs import torch_runtime

    with (
        FakeCluster(
            namespaces=("team",),
            kubeflow=(backend,),
            trainer_release="v2.3",
            runtimes=[torch_runtime(backoff_limit=2)],
        ) as cluster,
        running_kernel(env=kubeflow_env(cluster, home), **where) as (_, kc),
    ):
        yield kc, cluster
