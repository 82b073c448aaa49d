"""deploy/rbac.yaml grants what Ciao uses and nothing more: every API call of a session that
does everything a user can (submit, follow, fail, interrupt, detach, status, logs, jobs,
attach, delete, dryrun) is allowed by its rules, and every verb it grants was used."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
import yaml
from fakecluster import FakeCluster
from kernel_client import iopub_until_idle, running_kernel, stream_text

pytestmark = pytest.mark.timeout(300)

RBAC = Path(__file__).resolve().parents[2] / "deploy" / "rbac.yaml"


def granted() -> tuple[set[tuple[str, str, str]], set[tuple[str, str, str]]]:
    """(group, resource, verb) the Role grants, and those the ClusterRole grants."""
    namespaced, cluster_wide = set(), set()
    for doc in yaml.safe_load_all(RBAC.read_text()):
        if doc["kind"] not in ("Role", "ClusterRole"):
            continue
        target = namespaced if doc["kind"] == "Role" else cluster_wide
        for rule in doc["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        target.add((group, resource, verb))
    return namespaced, cluster_wide


def run(kc, code: str, timeout: float = 90) -> tuple[dict, str]:
    msg_id = kc.execute(code)
    reply = kc.get_shell_msg(timeout=timeout)
    return reply["content"], stream_text(iopub_until_idle(kc, msg_id, timeout))


def test_the_role_allows_every_call_ciao_makes_and_grants_no_verb_it_does_not_use(tmp_path):
    with FakeCluster(namespaces=("team",)) as cluster:
        kubeconfig = cluster.write_kubeconfig(tmp_path / "kubeconfig", namespace="team")
        config = tmp_path / "config.yaml"
        config.write_text(f"backend: kubeflow\nkubeconfig: {kubeconfig}\n")
        env = dict(os.environ, CIAO_CONFIG=str(config))
        with running_kernel(env=env) as (km, kc):
            content, _ = run(kc, "%framework=pytorch\n%master=1\n%worker=1\nprint('hi')")
            assert content["status"] == "ok", content
            content, _ = run(kc, "%framework=tensorflow\n%worker=1\nimport sys\nsys.exit(3)")
            assert content["status"] == "error"
            content, _ = run(kc, "%dryrun\n%framework=pytorch\n%master=1\nprint(1)")
            assert content["status"] == "ok"
            content, text = run(
                kc,
                "%detach\n%framework=pytorch\n%master=1\nimport time\ntime.sleep(120)",
            )
            name = re.search(r"ciao-[a-z]{5}", text).group(0)
            for command in (f"%status {name}", f"%logs {name}", "%jobs"):
                content, _ = run(kc, command)
                assert content["status"] == "ok", (command, content)
            msg_id = kc.execute(f"%attach {name}")
            time.sleep(2)
            km.interrupt_kernel()  # after %attach an interrupt detaches
            kc.get_shell_msg(timeout=60)
            iopub_until_idle(kc, msg_id)
            content, _ = run(kc, f"%delete {name}")
            assert content["status"] == "ok", content
            content, text = run(
                kc, "%detach\n%framework=tensorflow\n%worker=1\nimport time\ntime.sleep(120)"
            )
            content, _ = run(kc, f"%delete {re.search(r'ciao-[a-z]{5}', text).group(0)}")
            assert content["status"] == "ok", content
            msg_id = kc.execute("%framework=pytorch\n%master=1\nimport time\ntime.sleep(120)")
            time.sleep(2)
            km.interrupt_kernel()  # cancels: deletes the job and its ConfigMap
            kc.get_shell_msg(timeout=60)
            iopub_until_idle(kc, msg_id)
        calls = set(cluster.authorizer.calls)
    namespaced, cluster_wide = granted()
    not_granted = [
        call
        for call in calls
        if (call[1], call[2], call[0]) not in (namespaced if call[3] else cluster_wide)
    ]
    assert not not_granted, f"calls the RBAC rules do not allow: {sorted(not_granted)}"
    used = {(group, resource, verb) for verb, group, resource, _ in calls}
    v2_only = {"trainer.kubeflow.org"}  # exercised by tests/e2e/test_trainer_v2.py
    unused = sorted(rule for rule in namespaced if rule not in used and rule[0] not in v2_only)
    assert not unused, f"the Role grants verbs Ciao never used: {unused}"
