"""PyTorch cells as Kubeflow Trainer v2 TrainJobs, through the kernel, on the test cluster
(its trainer controller: TrainJob -> JobSet -> indexed Jobs -> pods), for the v2.1 and v2.3
pod-override fields.

The releases differ only in that field of the TrainJob Ciao writes (v2.1
podTemplateOverrides, v2.3 runtimePatches), which carries the code's ConfigMap mount, Ciao's
pod labels and the no-sidecar annotation to the pods. The tests that check what it carries
(the pods run the shipped code and have the annotation; %dryrun shows the field) run on both
releases; a test marked `one_release` checks what happens once the pods exist or before any
TrainJob is made (following, verdicts, job commands, queues, refusals), which no release
changes, so it runs on v2.3 only.
"""

from __future__ import annotations

import os
import re
import time

import kernel_client
import pytest
from fakecluster import FakeCluster
from fakecluster.jobs import torch_runtime
from kernel_client import (
    by_replica,
    interrupt_after,
    iopub_until_idle,
    kubeflow_env,
    needs_torchrun,
    process_lines,
    running_kernel,
    stream_text,
    streamed_until,
)

pytestmark = pytest.mark.timeout(300)

#: kubeflow.no_pods_after of the queued job's cell: how long Ciao waits for a pod (10 s by
#: default) before it says none appeared, which a suspended job must never be told.
NO_PODS_AFTER = 2


@pytest.fixture(scope="module", params=["v2.1", "v2.3"])
def release(request):
    return request.param


#: What the test checks does not depend on the pod-override field (see the module's
#: docstring): it runs on the newest release only, with that release's cluster and kernel.
one_release = pytest.mark.parametrize("release", ["v2.3"], indirect=True)


@pytest.fixture(scope="module")
def cluster(release):
    """The stock runtime, but a node's Job gives up after two restarts, not the default six:
    a failing node is still restarted (and its verdict is still given after the restarts),
    without four more torchrun starts of a second each."""
    with FakeCluster(
        namespaces=("team",),
        kubeflow=("v2",),
        trainer_release=release,
        runtimes=[torch_runtime(backoff_limit=2)],
    ) as fake:
        yield fake


@pytest.fixture(scope="module")
def home(cluster, tmp_path_factory):
    home = tmp_path_factory.mktemp("v2")
    kubeflow_env(cluster, home, extra=f"local: {{run_dir: {home / 'runs'}}}\n")
    return home


def kernel_env(home) -> dict[str, str]:
    return dict(os.environ, CIAO_CONFIG=str(home / "config.yaml"))


@pytest.fixture(scope="module")
def kernel(home):
    with running_kernel(env=kernel_env(home)) as (km, kc):
        yield km, kc


@pytest.fixture
def kc(kernel, cluster):
    cluster.clear_faults()
    for job in cluster.list("trainjobs", "team"):  # finished jobs stay: start each test empty
        cluster.delete("trainjobs", "team", job["metadata"]["name"], propagation="Foreground")
    nothing_left(cluster)
    yield kernel[1]
    cluster.clear_faults()


def run(kc, code: str, timeout: float = 120) -> tuple[dict, list[dict]]:
    return kernel_client.run(kc, code, timeout)


def condition(job: dict | None, kind: str) -> dict:
    """The TrainJob's condition of this type ({} when it has none)."""
    conditions = ((job or {}).get("status") or {}).get("conditions", [])
    return next((c for c in conditions if c["type"] == kind), {})


def wait_until_true(cluster, name: str, kind: str, timeout: float) -> None:
    """Until the TrainJob `name` has condition `kind` True."""

    def true() -> bool:
        return condition(cluster.get("trainjobs", "team", name), kind).get("status") == "True"

    cluster.wait_for(true, timeout, f"{kind} on {name}")


def nothing_left(cluster) -> None:
    cluster.wait_for(
        lambda: (
            not any(cluster.list(kind, "team") for kind in ("trainjobs", "jobsets", "jobs", "pods"))
        ),
        60,
        "no TrainJob, JobSet, Job or pod left",
    )
    assert [
        c["metadata"]["name"]
        for c in cluster.list("configmaps", "team")
        if c["metadata"]["name"].endswith("-code")
    ] == []


def printed(lines: list[str], word: str) -> list[str]:
    """A node's lines that the cell printed, each starting with `word`: the node's log is
    torchrun's too, whose agent may add a warning of its own when the node hosting its
    rendezvous store ends first (c10d's `recvValueWithTimeout failed`)."""
    return [line for line in lines if line.startswith(word + " ")]


COUNT = (
    "import os\n"
    "rank = os.environ['RANK']\n"
    "print('env', rank, os.environ['WORLD_SIZE'], os.environ['LOCAL_RANK'], flush=True)\n"
    "for i in range(200):\n"
    "    print(f'line {i}', flush=True)\n"
)


@one_release
def test_an_unschedulable_node_is_explained(kernel, kc, cluster):
    cluster.inject("unschedulable", pod="*-node-0-1-*", resource="nvidia.com/gpu")
    cell = "%framework=pytorch\n%nodes=2;%gpu=1\nprint(1)"
    _, seen = interrupt_after(kc, kernel[0], cell, "FailedScheduling", timeout=60)
    assert re.search(r"\[node-\d\] FailedScheduling: ", seen) and "lower %gpu" in seen
    nothing_left(cluster)


@needs_torchrun
def test_a_3_node_cell_runs_under_torchrun_and_every_line_of_every_node_arrives_once(kc, cluster):
    cluster.inject("log_cut", pod="*-node-0-1-*", after_bytes=300)
    content, messages = run(kc, "%framework=pytorch\n%nodes=3\n" + COUNT)
    assert content["status"] == "ok", content
    lines = by_replica(stream_text(messages))
    assert sorted(lines) == ["node-0", "node-1", "node-2"]
    ranks = set()
    for node, got in lines.items():
        env = got[0].split()
        assert env[0] == "env" and env[2] == "3" and env[3] == "0"
        ranks.add(env[1])
        assert printed(got, "line") == [f"line {i}" for i in range(200)], node
    assert ranks == {"0", "1", "2"}
    (job,) = cluster.list("trainjobs", "team")
    assert job["spec"]["trainer"]["numNodes"] == 3
    assert job["spec"]["trainer"]["command"][0] == "torchrun"
    pods = cluster.list("pods", "team")
    assert len(pods) == 3
    assert all(p["metadata"]["annotations"]["sidecar.istio.io/inject"] == "false" for p in pods)


@one_release
@needs_torchrun
def test_a_failing_node_is_named_with_its_processs_exit_code_and_its_own_last_lines(kc, cluster):
    """The node's container is torchrun, whose report of the failed process (30-odd lines)
    ends its log: the verdict shows the process's exit code and the lines before it."""
    cell = (
        "%framework=pytorch\n%nodes=2\nimport os, sys, time\n"
        "print('starting', os.environ['RANK'], flush=True)\n"
        "if os.environ['RANK'] == '1':\n"
        "    print('shard 7 is corrupt', file=sys.stderr, flush=True)\n"
        "    sys.exit(4)\n"
        "time.sleep(60)\n"
    )
    content, messages = run(kc, cell, timeout=180)
    assert content["status"] == "error" and content["ename"] == "JobFailed", content
    (job,) = cluster.list("trainjobs", "team")
    first = f"job {job['metadata']['name']} failed: node-1 exited with code 1 (torchrun: "
    assert content["evalue"].startswith(first), content["evalue"]
    assert content["evalue"].endswith("; Kubeflow says: " + condition(job, "Failed")["message"])
    assert "its process of local rank 0 exited with 4)" in content["evalue"]
    # the process's own last lines (before torchrun's report) were streamed: pointed at
    assert "node-1's last lines are above, marked [node-1]" in "\n".join(content["traceback"])
    assert "shard 7 is corrupt" in stream_text(messages, "stderr") + stream_text(messages)


@one_release
@needs_torchrun
def test_procs_start_that_many_processes_per_node_with_torchruns_ranks(kc, cluster):
    cell = (
        "%framework=pytorch\n%nodes=2\n%procs=2\nimport os\n"
        "print('rank', os.environ['RANK'], os.environ['LOCAL_RANK'], os.environ['WORLD_SIZE'],"
        " flush=True)\n"
    )
    content, messages = run(kc, cell, timeout=180)
    assert content["status"] == "ok", content
    assert process_lines(by_replica(stream_text(messages))) == {
        "node-0": ["[default0]:rank 0 0 4", "[default1]:rank 1 1 4"],
        "node-1": ["[default0]:rank 2 0 4", "[default1]:rank 3 1 4"],
    }, "whole lines, each marked with its process's local rank (torchrun --tee 3)"
    (job,) = cluster.list("trainjobs", "team")
    assert job["spec"]["trainer"]["numProcPerNode"] == 2


@one_release
@needs_torchrun
def test_a_gloo_allreduce_across_three_nodes(kc, cluster):
    cell = (
        "%framework=pytorch\n%nodes=3\n"
        "import torch, torch.distributed as dist\n"
        "dist.init_process_group('gloo')\n"
        "t = torch.tensor([dist.get_rank() + 1.0])\n"
        "dist.all_reduce(t)\n"
        "print('sum', int(t.item()), flush=True)\n"
        "dist.destroy_process_group()\n"
    )
    content, messages = run(kc, cell, timeout=240)
    assert content["status"] == "ok", content
    lines = by_replica(stream_text(messages))
    assert all(printed(lines[f"node-{i}"], "sum") == ["sum 6"] for i in range(3)), lines


@one_release
@needs_torchrun
def test_a_dropped_watch_loses_and_repeats_nothing(kc, cluster):
    msg_id = kc.execute("%framework=pytorch\n%nodes=2\nimport time\ntime.sleep(1.5)\n" + COUNT)
    cluster.wait_for(lambda: cluster.apiserver.open_watches() >= 3, 60)
    dropped = cluster.inject("watch_drop", after_events=0, abrupt=True)
    reply = kc.get_shell_msg(timeout=120)["content"]
    lines = by_replica(stream_text(iopub_until_idle(kc, msg_id)))
    assert reply["status"] == "ok", reply
    assert dropped.fired >= 1
    for node in ("node-0", "node-1"):
        assert printed(lines[node], "line") == [f"line {i}" for i in range(200)]


@one_release
@needs_torchrun
def test_interrupt_deletes_the_trainjob_its_pods_and_configmap(kernel, kc, cluster):
    cell = "%framework=pytorch\n%nodes=2\nimport time\nprint('up', flush=True)\ntime.sleep(300)"
    reply, _ = interrupt_after(kc, kernel[0], cell, "up", timeout=60)
    assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt"
    nothing_left(cluster)


@one_release
@needs_torchrun
def test_detach_restart_attach_resumes_with_nothing_lost_or_repeated(kc, cluster, home):
    cell = (
        "%detach\n%framework=pytorch\n%nodes=2\nimport time\n"
        "for i in range(40):\n    print(f'tick {i}', flush=True)\n    time.sleep(0.1)\n"
    )
    content, messages = run(kc, cell)
    name = re.search(r"ciao-[a-z]{5}", stream_text(messages)).group(0)
    with running_kernel(env=kernel_env(home)) as (_, other):
        content, messages = run(other, f"%attach {name}")
    assert content["status"] == "ok", content
    lines = by_replica(stream_text(messages))
    for node in ("node-0", "node-1"):
        assert printed(lines[node], "tick") == [f"tick {i}" for i in range(40)]


@one_release
def test_a_runtime_that_does_not_exist_is_named_with_those_that_do(kc, cluster):
    content, _ = run(kc, "%framework=pytorch\n%nodes=2\n%runtime=no-such-runtime\nprint(1)")
    assert content["status"] == "error"
    assert "no training runtime 'no-such-runtime'" in content["evalue"]
    assert "torch-distributed (ClusterTrainingRuntime)" in content["evalue"]
    nothing_left(cluster)


@one_release
def test_a_runtime_ciao_may_not_look_up_is_refused_by_the_webhook_leaving_nothing(kc, cluster):
    """Without the ClusterRole (a namespace-only install) Ciao cannot check the runtime
    first: Trainer's webhook refuses the TrainJob, the refusal is the cell's error, and the
    ConfigMap shipped for the job is not left behind."""
    rules = [
        cluster.deny("get", "clustertrainingruntimes"),
        cluster.deny("get", "trainingruntimes"),
    ]
    try:
        content, _ = run(kc, "%framework=pytorch\n%nodes=2\n%runtime=no-such-runtime\nprint(1)")
    finally:
        for rule in rules:
            cluster.allow(rule)
    assert content["status"] == "error"
    assert "Kubeflow Trainer's webhook rejected" in content["evalue"], content["evalue"]
    assert "%runtime=NAME" in content["evalue"] and "no-such-runtime" in content["evalue"]
    assert "create" in content["evalue"] and "trainjobs" in content["evalue"]
    nothing_left(cluster)


def test_a_runtime_gone_after_admission_is_explained_while_the_cell_waits(tmp_path):
    """The controller cannot build the JobSet and retries (no condition is set): the cell
    says why, and Ctrl-C leaves nothing."""
    with (
        FakeCluster(namespaces=("team",), kubeflow=("v2",), missing_runtime="admit") as fake,
        running_kernel(env=kubeflow_env(fake, tmp_path)) as (km, kc),
    ):
        fake.deny("get", "clustertrainingruntimes")
        cell = "%framework=pytorch\n%nodes=2\n%runtime=gone\nprint(1)"
        reply, seen = interrupt_after(kc, km, cell, "TrainJobResourcesCreationFailed", 60)
        assert reply["ename"] == "KeyboardInterrupt"
        assert "[job] TrainJobResourcesCreationFailed: " in seen, seen
        assert 'clustertrainingruntimes.trainer.kubeflow.org "gone" not found' in seen
        assert "%runtime=NAME" in seen
        nothing_left(fake)


@one_release
@needs_torchrun
def test_a_job_a_queue_holds_suspended_is_explained_and_runs_when_admitted(kc, cluster, home):
    """%queue labels the TrainJob for Kueue, whose webhook suspends a queued job at creation
    and whose controller resumes it on admission: the cell says why nothing starts, then
    streams the run as usual. Queued longer than Ciao waits for pods (kubeflow.no_pods_after,
    read for each cell: 2 s for this one, not 10), it never says that no pod appeared."""
    config = home / "config.yaml"
    usual = config.read_text()
    config.write_text(usual + f"kubeflow: {{no_pods_after: {NO_PODS_AFTER}}}\n")
    try:
        with cluster.kueue() as kueue:
            msg_id = kc.execute(
                "%framework=pytorch\n%nodes=2\n%queue=team-gpus\nprint('admitted', flush=True)"
            )
            seen = streamed_until(kc, msg_id, "Suspended")
    finally:
        config.write_text(usual)
    assert "[job] Suspended: the job is suspended" in seen and "Kueue" in seen, seen
    time.sleep(NO_PODS_AFTER + 1)  # queued longer than Ciao waits for pods to appear
    assert cluster.list("pods", "team") == []
    (queued,) = kueue.queued
    assert queued[0] == "trainjobs"
    kueue.admit(*queued)
    reply = kc.get_shell_msg(timeout=120)["content"]
    messages = iopub_until_idle(kc, msg_id)
    lines = by_replica(stream_text(messages))
    notices = seen + stream_text(messages, "stderr")
    assert reply["status"] == "ok", reply
    assert lines["node-0"] == ["admitted"] and lines["node-1"] == ["admitted"]
    assert "[job] Suspended is over: the job was resumed" in notices, notices
    assert "NoPods" not in notices


@one_release
def test_a_queued_detached_job_shows_as_suspended_in_jobs_and_status(kc, cluster):
    with cluster.kueue():
        _, messages = run(kc, "%detach\n%framework=pytorch\n%nodes=2\n%queue=team-gpus\nprint(1)")
    name = re.search(r"ciao-[a-z]{5}", stream_text(messages)).group(0)
    wait_until_true(cluster, name, "Suspended", 30)
    for command in ("%jobs", f"%status {name}"):
        _, messages = run(kc, command)
        (result,) = [m for m in messages if m["msg_type"] == "execute_result"]
        rows = [
            line for line in result["content"]["data"]["text/plain"].splitlines() if name in line
        ]
        assert rows and "Suspended" in rows[0], (command, rows, kernel_client.every_job(kc))
    content, _ = run(kc, f"%delete {name}")
    assert content["status"] == "ok", content
    nothing_left(cluster)


@one_release
def test_a_namespace_quota_that_refuses_the_pods_is_explained(kernel, kc, cluster):
    """No pod exists to be Pending: the Job controller's FailedCreate is the explanation."""
    quota = {"metadata": {"name": "gpus"}, "spec": {"hard": {"requests.nvidia.com/gpu": "1"}}}
    cluster.create("resourcequotas", quota, "team")
    try:
        cell = "%framework=pytorch\n%nodes=2;%gpu=2\nprint(1)"
        _, seen = interrupt_after(kc, kernel[0], cell, "exceeded quota", timeout=60)
    finally:
        cluster.delete("resourcequotas", "team", "gpus")
    assert "[job] FailedCreate: the namespace's ResourceQuota does not allow the pod" in seen
    assert "exceeded quota: gpus, requested: requests.nvidia.com/gpu=2" in seen, seen
    nothing_left(cluster)


def test_dryrun_shows_the_trainjob_and_why_v2(kc, cluster, release):
    content, messages = run(kc, "%dryrun\n%framework=pytorch\n%nodes=2\nprint(1)")
    assert content["status"] == "ok", content
    (result,) = [m for m in messages if m["msg_type"] == "execute_result"]
    text = result["content"]["data"]["text/plain"]
    assert "a TrainJob in namespace team" in text and "Kubeflow Trainer" in text
    field = "podTemplateOverrides" if release == "v2.1" else "runtimePatches"
    assert field in text
    assert cluster.list("trainjobs", "team") == []


@one_release
@needs_torchrun
def test_jobs_and_status_and_logs_and_delete(kc, cluster):
    content, messages = run(kc, "%detach\n%framework=pytorch\n%nodes=2\nprint('hello', flush=True)")
    name = re.search(r"ciao-[a-z]{5}", stream_text(messages)).group(0)
    wait_until_true(cluster, name, "Complete", 120)
    content, messages = run(kc, "%jobs")
    assert name in str(messages), (stream_text(messages, "stderr"), kernel_client.every_job(kc))
    content, messages = run(kc, f"%status {name}")
    assert "node-1" in str(messages)
    content, messages = run(kc, f"%logs {name}")
    assert "[node-0] hello" in stream_text(messages) and "[node-1] hello" in stream_text(messages)
    content, _ = run(kc, f"%delete {name}")
    assert content["status"] == "ok", content
    nothing_left(cluster)


@pytest.mark.parametrize(
    ("installed", "words"),
    [
        (("v1",), "PyTorchJob"),
        ((), "neither trainjobs.trainer.kubeflow.org"),
    ],
)
def test_auto_detection_picks_what_is_installed(tmp_path, installed, words):
    with (
        FakeCluster(namespaces=("team",), kubeflow=installed) as fake,
        running_kernel(env=kubeflow_env(fake, tmp_path)) as (_, kc),
    ):
        content, messages = run(kc, "%dryrun\n%framework=pytorch\n%master=1\nprint(1)")
    text = str(content) + str(messages)
    assert words in text


@one_release
@needs_torchrun
def test_a_running_detached_trainjob_is_listed_running(kc, cluster):
    """A TrainJob has no Running condition: %jobs and %status say Running from its
    jobsStatus (ready nodes), as the live view does from its pods, not Pending."""
    cell = (
        "%detach\n%framework=pytorch\n%nodes=2\nimport time\n"
        "for i in range(600):\n    print(i, flush=True)\n    time.sleep(0.1)"
    )
    _, messages = run(kc, cell)
    name = re.search(r"ciao-[a-z]{5}", stream_text(messages)).group(0)

    def ready() -> bool:
        status = (cluster.get("trainjobs", "team", name) or {}).get("status") or {}
        return any(job.get("ready", 0) > 0 for job in status.get("jobsStatus") or [])

    cluster.wait_for(ready, 60, f"a ready node of {name}")
    for command in ("%jobs", f"%status {name}"):
        _, messages = run(kc, command)
        (result,) = [m for m in messages if m["msg_type"] == "execute_result"]
        rows = [
            line for line in result["content"]["data"]["text/plain"].splitlines() if name in line
        ]
        assert rows and "Running" in rows[0] and "Pending" not in rows[0], (command, rows)
    content, _ = run(kc, f"%delete {name}")
    assert content["status"] == "ok", content
