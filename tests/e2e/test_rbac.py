"""deploy/rbac.yaml grants what Ciao uses and nothing more: every API call of a session that
does everything a user can (submit, follow, fail, interrupt, detach, status, logs, jobs,
attach, delete, dryrun; a study on Katib and the commands on it) is allowed by its rules,
and every verb it grants was used."""

from __future__ import annotations

import re
from pathlib import Path

import kernel_client
import pytest
import yaml
from fakecluster import FakeCluster
from kernel_client import HAS_TORCH, interrupt_after, kubeflow_env, running_kernel, stream_text

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
    content, messages = kernel_client.run(kc, code, timeout)
    return content, stream_text(messages)


Calls = set[tuple[str, str, str, bool]]  # (verb, group, resource, namespaced)


def session(cluster: FakeCluster, tmp_path: Path, script) -> Calls:
    """Every API call a kernel on `cluster` makes while `script(km, kc)` runs."""
    with running_kernel(env=kubeflow_env(cluster, tmp_path)) as (km, kc):
        script(km, kc)
    return set(cluster.authorizer.calls)


#: A job that says it is up, then runs until it is stopped.
UP = "import time\nprint('up', flush=True)\ntime.sleep(120)"


def interrupted(km, kc, code: str) -> None:
    """Interrupt the cell once its job's first line arrived: the job runs and is followed."""
    interrupt_after(kc, km, code, "up", timeout=60)


def everything_on_v1(km, kc) -> None:
    content, _ = run(kc, "%framework=pytorch\n%master=1\n%worker=1\nprint('hi')")
    assert content["status"] == "ok", content
    content, _ = run(kc, "%framework=tensorflow\n%worker=1\nimport sys\nsys.exit(3)")
    assert content["status"] == "error"
    content, _ = run(kc, "%dryrun\n%framework=pytorch\n%master=1\nprint(1)")
    assert content["status"] == "ok"
    detached_job_commands(km, kc, "%framework=pytorch\n%master=1")
    content, text = run(kc, f"%detach\n%framework=tensorflow\n%worker=1\n{UP}")
    content, _ = run(kc, f"%delete {re.search(r'ciao-[a-z]{5}', text).group(0)}")
    assert content["status"] == "ok", content
    # cancels: deletes the job and its ConfigMap
    interrupted(km, kc, f"%framework=pytorch\n%master=1\n{UP}")


def everything_on_v2(km, kc) -> None:
    content, _ = run(kc, "%framework=pytorch\n%nodes=2\nprint('hi')")
    assert content["status"] == ("ok" if HAS_TORCH else "error"), content
    content, _ = run(kc, "%framework=pytorch\n%nodes=1\n%runtime=no-such\nprint(1)")
    assert "no training runtime 'no-such'" in content["evalue"], content
    content, _ = run(kc, "%dryrun\n%framework=pytorch\n%nodes=2\nprint(1)")
    assert content["status"] == "ok"
    detached_job_commands(km, kc, "%framework=pytorch\n%nodes=2")
    interrupted(km, kc, f"%framework=pytorch\n%nodes=2\n{UP}")


#: A study of two quick trials on Katib (every trial prints the objective).
STUDY = (
    "%tune x=uniform(-1,1)\n%objective=minimize:loss\n%trials=2;%parallel=2;%seed=1\n"
    "%framework=pytorch\n%master=1\nimport ciao.hp\nprint(f'loss={ciao.hp.float(\"x\")}')"
)


def everything_on_katib(km, kc) -> None:
    content, _ = run(kc, "%config")
    assert content["status"] == "ok", content
    content, _ = run(kc, f"%dryrun\n{STUDY}")
    assert content["status"] == "ok", content
    content, text = run(kc, STUDY)
    assert content["status"] == "ok", content
    name = re.search(r"ciao-[a-z]{5}", text).group(0)
    for command in (f"%study {name}", f"%best {name}", f"%logs {name}", "%jobs"):
        content, _ = run(kc, command)
        assert content["status"] == "ok", (command, content)
    content, _ = run(kc, f"%attach {name}")
    assert content["status"] == "ok", content
    content, _ = run(kc, f"%delete {name}")
    assert content["status"] == "ok", content
    # cancels: deletes the Experiment (and with it its Trials, their jobs, pods) and the
    # code's ConfigMap
    interrupted(km, kc, STUDY.replace("print(", f"{UP}\nprint("))


def detached_job_commands(km, kc, magics: str) -> None:
    """A detached job seen through every job command, attached, then deleted."""
    content, text = run(kc, f"%detach\n{magics}\n{UP}")
    name = re.search(r"ciao-[a-z]{5}", text).group(0)
    for command in (f"%status {name}", f"%logs {name}", "%jobs"):
        content, _ = run(kc, command)
        assert content["status"] == "ok", (command, content)
    interrupted(km, kc, f"%attach {name}")  # after %attach an interrupt detaches
    content, _ = run(kc, f"%delete {name}")
    assert content["status"] == "ok", content


@pytest.fixture(scope="module")
def v1_calls(tmp_path_factory) -> Calls:
    with FakeCluster(namespaces=("team",)) as cluster:
        return session(cluster, tmp_path_factory.mktemp("v1"), everything_on_v1)


@pytest.fixture(scope="module")
def v2_calls(tmp_path_factory) -> Calls:
    with FakeCluster(namespaces=("team",), kubeflow=("v2",)) as cluster:
        return session(cluster, tmp_path_factory.mktemp("v2"), everything_on_v2)


@pytest.fixture(scope="module")
def katib_calls(tmp_path_factory) -> Calls:
    with FakeCluster(namespaces=("team",), kubeflow=("v1", "katib")) as cluster:
        cluster.label_namespace(
            "team", {"katib.kubeflow.org/metrics-collector-injection": "enabled"}
        )
        return session(cluster, tmp_path_factory.mktemp("katib"), everything_on_katib)


def namespaced(call: tuple[str, str, str, bool]) -> bool:
    """Whether a Role can allow the call: a namespaced one, or the get of a namespace by
    name, which Kubernetes authorizes in that namespace (RequestInfo takes the name of
    `/api/v1/namespaces/<name>` as the request's namespace)."""
    verb, group, resource, in_namespace = call
    return in_namespace or (group, resource, verb) == ("", "namespaces", "get")


def not_granted(calls: Calls) -> list[tuple[str, str, str, bool]]:
    namespaced_rules, cluster_wide = granted()
    return sorted(
        call
        for call in calls
        if (call[1], call[2], call[0])
        not in (namespaced_rules if namespaced(call) else cluster_wide)
    )


def test_the_rules_allow_every_call_ciao_makes_on_training_operator_v1(v1_calls):
    assert not not_granted(v1_calls), "calls the RBAC rules do not allow"


def test_the_rules_allow_every_call_ciao_makes_on_kubeflow_trainer_v2(v2_calls):
    assert not not_granted(v2_calls), "calls the RBAC rules do not allow"


def test_the_rules_allow_every_call_ciao_makes_for_a_study_on_katib(katib_calls):
    assert not not_granted(katib_calls), "calls the RBAC rules do not allow"


def test_the_rules_grant_no_verb_ciao_does_not_use(v1_calls, v2_calls, katib_calls):
    calls = v1_calls | v2_calls | katib_calls
    used = {(group, resource, verb) for verb, group, resource, _ in calls}
    namespaced, cluster_wide = granted()
    assert sorted((namespaced | cluster_wide) - used) == [], "granted but never used"
