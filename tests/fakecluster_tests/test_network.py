"""Pod addresses and cluster DNS: every pod has a loopback address of its own, and a
Service name answers the address of a pod its selector selects."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from fakecluster import FakeCluster
from fakecluster.jobs import pytorchjob
from fakecluster.testing import KF, conditions, finished, phase, pod

pytestmark = pytest.mark.timeout(90)

#: DDP over gloo (env://: MASTER_ADDR=<job>-master-0, MASTER_PORT=23456); rank 0 holds the
#: store open until the other job's rank 0 has one too, so both masters listen at once.
DDP = """
import os, pathlib, time
import torch, torch.distributed as dist
dist.init_process_group("gloo")
t = torch.ones(1)
dist.all_reduce(t)
if dist.get_rank() == 0:
    here = pathlib.Path({meeting!r})
    (here / {job!r}).touch()
    deadline = time.monotonic() + 60
    while len(list(here.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    print(sorted(p.name for p in here.iterdir()))
dist.barrier()
print(int(t.item()))
dist.destroy_process_group()
"""


def test_two_pytorchjobs_masters_listen_on_one_port_at_once(
    cluster: FakeCluster, kube: SimpleNamespace, tmp_path: Path
) -> None:
    pytest.importorskip("torch")
    meeting = tmp_path / "masters"
    meeting.mkdir()
    for job in ("left", "right"):
        command = ["python", "-u", "-c", DDP.format(meeting=str(meeting), job=job)]
        kube.custom.create_namespaced_custom_object(
            *KF, "default", "pytorchjobs", pytorchjob(job, command, workers=1)
        )
    for job in ("left", "right"):
        done = cluster.wait_for(lambda j=job: finished(cluster, "pytorchjobs", j), 60, job)
        assert "Succeeded" in conditions(done), conditions(done)
    masters = [kube.core.read_namespaced_pod(f"{j}-master-0", "default") for j in ("left", "right")]
    assert {m.spec.containers[0].ports[0].container_port for m in masters} == {23456}
    assert masters[0].status.pod_ip != masters[1].status.pod_ip
    for job in ("left", "right"):
        master_log = cluster.logs("default", f"{job}-master-0").splitlines()
        assert master_log == ["['left', 'right']", "2"]  # both stores were up together
        assert cluster.logs("default", f"{job}-worker-0").splitlines() == ["2"]


#: Serves one line on the pod's own address (its hostname resolves to it).
SERVE = [
    "python",
    "-u",
    "-c",
    "import socket\n"
    "me = socket.gethostbyname(socket.gethostname())\n"
    "with socket.create_server((me, 8080)) as s:\n"
    "    print('listening', me, flush=True)\n"
    "    conn, _ = s.accept()\n"
    "    conn.sendall(b'hello from ' + me.encode() + b'\\n')\n"
    "    conn.close()\n",
]
#: Resolves the Services, talks to `web` through its name, and tries the ones without pods.
CLIENT = [
    "python",
    "-u",
    "-c",
    "import socket\n"
    "print(socket.gethostbyname('web'))\n"
    "print(socket.gethostbyname('web-headless.default.svc.cluster.local'))\n"
    "with socket.create_connection(('web', 8080)) as c:\n"
    "    print(c.makefile().readline().strip())\n"
    "try:\n"
    "    socket.getaddrinfo('nobody-headless', 80)\n"
    "except socket.gaierror as e:\n"
    "    print('gaierror', e.errno == socket.EAI_NONAME)\n"
    "try:\n"
    "    socket.create_connection(('nobody', 80), timeout=10)\n"
    "except ConnectionRefusedError:\n"
    "    print('refused')\n",
]


def service(name: str, selector: dict[str, str], headless: bool = False) -> dict:
    spec: dict = {"selector": selector, "ports": [{"port": 8080, "targetPort": 8080}]}
    if headless:
        spec["clusterIP"] = "None"
    return {"metadata": {"name": name}, "spec": spec}


def test_a_service_name_resolves_to_the_pod_it_selects(
    cluster: FakeCluster, kube: SimpleNamespace
) -> None:
    for svc in (
        service("web", {"app": "web"}),
        service("web-headless", {"app": "web"}, headless=True),
        service("nobody", {"app": "nobody"}),
        service("nobody-headless", {"app": "nobody"}, headless=True),
    ):
        kube.core.create_namespaced_service("default", svc)
    web = pod("web", SERVE)
    web["metadata"]["labels"] = {"app": "web"}
    kube.core.create_namespaced_pod("default", web)
    cluster.wait_for(lambda: "listening" in cluster.logs("default", "web"), 30, "web to listen")
    kube.core.create_namespaced_pod("default", pod("client", CLIENT))
    cluster.wait_for(lambda: phase(cluster, "client") in ("Succeeded", "Failed"), 30, "client")
    address = kube.core.read_namespaced_pod("web", "default").status.pod_ip
    assert address.startswith("127.") and address != "127.0.0.1"
    assert cluster.logs("default", "web").splitlines() == [f"listening {address}"]
    assert cluster.logs("default", "client").splitlines() == [
        address,
        address,
        f"hello from {address}",
        "gaierror True",  # a headless Service selecting no pod: NXDOMAIN
        "refused",  # a ClusterIP Service without endpoints: kube-proxy rejects
    ]
    cluster.wait_for(lambda: phase(cluster, "web") == "Succeeded", 30, "web to finish")
