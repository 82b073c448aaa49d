"""Tuning on a cluster with Katib, through the kernel, on the test cluster's Katib v0.19.0:
a `%tune` cell is a Katib Experiment whose trialSpec is the job Ciao plans for the cell; the
study's table follows its Trials and `status.currentOptimalTrial`, each trial's lines
stream as `[#3 master-0]`; `%dryrun` shows an Experiment Katib's webhook takes; a
namespace without Katib's label is refused before anything is made, saying how to fix it;
an interrupt deletes the Experiment and everything it made; `%study`, `%best`, `%jobs`,
`%logs`, `%attach`, `%delete` read the study from the cluster."""

from __future__ import annotations

import copy
import json
import re

import pytest
from fakecluster import FakeCluster, validate_experiment
from kernel_client import (
    interrupt_after,
    kubeflow_env,
    needs_torchrun,
    of_type,
    run,
    running_kernel,
    stream_text,
)

pytestmark = pytest.mark.timeout(300)

LABEL = "katib.kubeflow.org/metrics-collector-injection"
JOB = "%framework=pytorch\n%master=1\n"
CODE = 'import ciao.hp\nx = ciao.hp.float("x")\nprint(f"loss={(x - 2) ** 2}")\n'
STUDY = "%tune x=uniform(-10,10)\n%objective=minimize:loss\n%trials=6;%parallel=2;%seed=1\n"
QUADRATIC = STUDY + "%algorithm=tpe\n" + JOB + CODE


@pytest.fixture(scope="module")
def cluster():
    with FakeCluster(namespaces=("team", "bare"), kubeflow=("v1", "katib")) as cluster:
        cluster.label_namespace("team", {LABEL: "enabled"})
        yield cluster


@pytest.fixture(scope="module")
def kernel(cluster, tmp_path_factory):
    with running_kernel(env=kubeflow_env(cluster, tmp_path_factory.mktemp("katib"))) as (km, kc):
        yield km, kc


def final_view(messages: list[dict]) -> str:
    views = of_type(messages, "display_data") + of_type(messages, "update_display_data")
    return views[-1]["content"]["data"]["text/plain"]


def table_rows(view: str) -> list[str]:
    return [line for line in view.splitlines() if re.match(r"#\d+ ", line)]


def study_name(text: str) -> str:
    return re.search(r"ciao-[a-z]{5}", text).group(0)  # type: ignore[union-attr]


def left_of(cluster: FakeCluster, namespace: str, prefix: str = "ciao-") -> dict[str, list[str]]:
    """What is left in `namespace` of Ciao's studies: Experiments, Trials, their jobs and
    pods, the code's ConfigMaps (named from the study's name)."""
    return {
        resource: [
            o["metadata"]["name"]
            for o in cluster.list(resource, namespace)
            if o["metadata"]["name"].startswith(prefix)
        ]
        for resource in ("experiments", "trials", "pytorchjobs", "pods", "configmaps")
    }


NOTHING = {r: [] for r in ("experiments", "trials", "pytorchjobs", "pods", "configmaps")}


def test_a_seeded_study_completes_as_an_experiment_whose_best_is_the_cells(cluster, kernel):
    _, kc = kernel
    content, messages = run(kc, QUADRATIC, timeout=180)

    assert content["status"] == "ok", content
    view = final_view(messages)
    name = study_name(view)
    assert view.startswith(f"{name}  study of 6 trials, tpe, minimize loss  Succeeded")
    rows = table_rows(view)
    assert len(rows) == 6 and all(" Succeeded " in row for row in rows)
    text = stream_text(messages)
    assert len(re.findall(r"^\[#\d+ master-0\] loss=", text, re.M)) == 6

    experiment = cluster.get("experiments", "team", name)
    conditions = {c["type"]: c["status"] for c in experiment["status"]["conditions"]}
    assert conditions["Succeeded"] == "True"
    code = cluster.get("configmaps", "team", f"{name}-code")
    (owner,) = code["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["uid"]) == ("Experiment", experiment["metadata"]["uid"])
    optimal = experiment["status"]["currentOptimalTrial"]
    best_x = float(optimal["parameterAssignments"][0]["value"])
    best_loss = float(optimal["observation"]["metrics"][0]["min"])
    (marked,) = [row for row in rows if re.match(r"#\d+ +\* ", row)]
    assert f"x={best_x:.4g}" in marked and f" {best_loss:.4g} " in marked
    assert f"[ciao] best: #{marked.split()[0][1:]} x={best_x:.4g}: loss={best_loss:.4g}" in text

    content, messages = run(kc, f"%best {name}")
    (result,) = of_type(messages, "execute_result")
    assert result["content"]["data"]["application/vnd.ciao.best+json"] == {"x": best_x}


def test_the_study_commands_read_it_from_the_cluster(cluster, kernel):
    _, kc = kernel
    content, messages = run(kc, QUADRATIC.replace("%trials=6;%parallel=2", "%trials=2;%parallel=2"))
    assert content["status"] == "ok", content
    name = study_name(final_view(messages))
    before = copy.deepcopy(cluster.get("experiments", "team", name))

    for command in (f"%study {name}", f"%status {name}"):
        content, messages = run(kc, command)
        (table,) = of_type(messages, "execute_result")
        assert len(table_rows(table["content"]["data"]["text/plain"])) == 2, command
    content, messages = run(kc, "%jobs")
    jobs = of_type(messages, "execute_result")[0]["content"]["data"]["text/plain"]
    found = [line for line in jobs.splitlines() if line.startswith(name)]
    assert len(found) == 1, (jobs, stream_text(messages, "stderr"))
    row = found[0]
    assert "Study" in row and "Succeeded" in row
    assert not re.search(rf"^{name}-", jobs, re.M), "a trial's job is listed beside its study"
    content, messages = run(kc, f"%logs {name}")
    assert len(re.findall(r"^\[#[01] master-0\] loss=", stream_text(messages), re.M)) == 2
    content, messages = run(kc, f"%attach {name}")
    assert content["status"] == "ok", content
    assert final_view(messages).startswith(
        f"{name}  study of 2 trials, tpe, minimize loss  Succeeded"
    )
    assert cluster.get("experiments", "team", name) == before, "reading changed the Experiment"

    content, messages = run(kc, f"%delete {name}")
    assert content["status"] == "ok", content
    assert cluster.get("experiments", "team", name) is None
    assert not [t for t in cluster.list("trials", "team") if t["metadata"]["name"].startswith(name)]


def test_config_says_a_study_runs_on_katib_and_why(kernel):
    _, kc = kernel
    content, messages = run(kc, "%config")
    (result,) = of_type(messages, "execute_result")
    tune = result["content"]["data"]["application/vnd.ciao.config+json"]["tune"]
    assert tune == {
        "engine": "auto",
        "chosen": "katib (tune.engine: auto; the cluster serves experiments.kubeflow.org "
        "(Katib): the study is an Experiment)",
    }


def test_dryrun_shows_an_experiment_katib_takes_whose_trial_spec_is_the_cells_job(cluster, kernel):
    _, kc = kernel
    content, messages = run(kc, "%dryrun\n" + QUADRATIC)
    assert content["status"] == "ok", content
    (result,) = of_type(messages, "execute_result")
    plan = result["content"]["data"]["application/vnd.ciao.plan+json"]
    text = result["content"]["data"]["text/plain"]
    assert "engine katib (tune.engine: auto; the cluster serves experiments.kubeflow.org" in text
    experiment = plan["experiment"]
    assert validate_experiment(experiment) == []
    assert [o["kind"] for o in plan["objects"]] == ["ConfigMap"]
    name = experiment["metadata"]["name"]

    content, messages = run(kc, "%dryrun\n" + JOB + CODE)
    (alone,) = of_type(messages, "execute_result")
    job = alone["content"]["data"]["application/vnd.ciao.plan+json"]["job"]
    trial_spec = experiment["spec"]["trialTemplate"]["trialSpec"]
    assert normalized(trial_spec, name) == normalized(job, job["metadata"]["name"])
    assert not cluster.list("experiments", "team") or all(
        e["metadata"]["name"] != name for e in cluster.list("experiments", "team")
    )


def normalized(job: dict, name: str) -> dict:
    """A job without what sets two cells' jobs apart: its name (and the names made from
    it), namespace, the owner labels (kernel, cell, study) and the study's variables."""
    job = json.loads(json.dumps(job).replace(name, "<name>"))
    job["metadata"].pop("name", None)
    job["metadata"].pop("namespace", None)
    for metadata in [job["metadata"]] + [
        role["template"]["metadata"] for role in job["spec"]["pytorchReplicaSpecs"].values()
    ]:
        metadata["labels"] = {
            k: v for k, v in metadata["labels"].items() if not k.startswith("ciao.kubeflow.org/")
        }
    for role in job["spec"]["pytorchReplicaSpecs"].values():
        for container in role["template"]["spec"]["containers"]:
            container["env"] = [
                e
                for e in container["env"]
                if not e["name"].startswith(("CIAO_HP_", "KUBEFLOW_TRAINER_OPT_"))
            ]
    return job


def test_a_namespace_without_katibs_label_is_refused_before_anything_is_made(
    cluster, tmp_path_factory
):
    env = kubeflow_env(cluster, tmp_path_factory.mktemp("bare"), namespace="bare")
    fix = f"kubectl label namespace bare {LABEL}=enabled"
    with running_kernel(env=env) as (_, kc):
        content, _ = run(kc, QUADRATIC)
        assert content["status"] == "error"
        assert content["evalue"].endswith(fix), content["evalue"]
        # without `get namespaces`, Katib's own refusal says it, and Ciao the command
        rule = cluster.deny("get", "namespaces")
        try:
            content, _ = run(kc, QUADRATIC)
        finally:
            cluster.allow(rule)
        assert content["status"] == "error"
        assert (
            'the namespace lacks label "katib.kubeflow.org/metrics-collector-injection'
            in (content["evalue"])
        )
        assert fix in content["evalue"]
    assert left_of(cluster, "bare") == NOTHING


def test_a_trial_without_the_metric_is_explained_and_the_study_fails(cluster, kernel):
    _, kc = kernel
    cell = STUDY.replace("%trials=6", "%trials=2") + JOB + 'print("no metric here")\n'
    content, messages = run(kc, cell, timeout=120)
    assert content["status"] == "error"
    assert "failed" in content["evalue"], content["evalue"]
    view = final_view(messages)
    assert "Failed" in view.splitlines()[0] and "max failed count has reached" in view
    # Katib counts a MetricsUnavailable trial as failed, but not as completed when it asks
    # for more (experiment_controller.go), so it may run more trials than %trials
    rows = table_rows(view)
    assert len(rows) >= 2 and all(" Failed " in row for row in rows), view
    assert all("MetricsUnavailable: Katib's File collector found no loss" in r for r in rows), rows


def test_an_interrupt_deletes_the_experiment_and_everything_it_made(cluster, kernel):
    km, kc = kernel
    cell = STUDY + JOB + 'import time\nprint("up", flush=True)\ntime.sleep(120)\n'
    reply, seen = interrupt_after(kc, km, cell, "] up", timeout=90)
    assert reply["status"] == "error"
    assert "cancelled" in reply["evalue"], reply
    assert left_of(cluster, "team", study_name(reply["evalue"])) == NOTHING


def test_a_detached_study_runs_on_its_own_and_is_deleted_by_name(cluster, kernel):
    _, kc = kernel
    content, messages = run(kc, "%detach\n" + QUADRATIC)
    assert content["status"] == "ok", content
    text = stream_text(messages)
    name = study_name(text)
    assert text.startswith(f"Started study {name} (katib (tune.engine: auto;")
    assert cluster.get("experiments", "team", name) is not None
    content, _ = run(kc, f"%delete {name}")
    assert content["status"] == "ok", content
    assert left_of(cluster, "team", name) == NOTHING


def test_on_interrupt_detach_leaves_the_study_running_and_attach_follows_it(cluster, kernel):
    km, kc = kernel
    up = 'import time\nprint("up", flush=True)\ntime.sleep(120)\n'
    cell = "%onInterrupt=detach\n" + STUDY.replace("%trials=6", "%trials=2") + JOB + up
    reply, _ = interrupt_after(kc, km, cell, "] up", timeout=90)
    assert reply["status"] == "error"
    assert "stopped following study" in reply["evalue"], reply
    name = study_name(reply["evalue"])
    experiment = cluster.get("experiments", "team", name)
    assert experiment is not None
    assert not {"Succeeded", "Failed"} & {
        c["type"] for c in experiment["status"]["conditions"] if c["status"] == "True"
    }

    reply, seen = interrupt_after(kc, km, f"%attach {name}", "going on after", timeout=60)
    assert reply["status"] == "error" and "stopped following study" in reply["evalue"]
    assert "] up" not in seen, "%attach repeated lines this notebook had shown"
    assert cluster.get("experiments", "team", name) is not None

    content, _ = run(kc, f"%delete {name}")
    assert content["status"] == "ok", content
    assert left_of(cluster, "team", name) == NOTHING


@needs_torchrun
def test_on_kubeflow_trainer_v2_the_trials_are_trainjobs_read_from_node_0(tmp_path):
    nodes = "%framework=pytorch\n%nodes=2\nimport os\n" + CODE.replace(
        'print(f"', "print(f\"rank {os.environ['RANK']} "
    )
    cell = STUDY.replace("%trials=6", "%trials=2") + nodes
    with FakeCluster(namespaces=("team",), kubeflow=("v2", "katib")) as cluster:
        cluster.label_namespace("team", {LABEL: "enabled"})
        with running_kernel(env=kubeflow_env(cluster, tmp_path)) as (_, kc):
            content, messages = run(kc, cell, timeout=180)
            assert content["status"] == "ok", content
            name = study_name(final_view(messages))
            experiment = cluster.get("experiments", "team", name)
            template = experiment["spec"]["trialTemplate"]
            assert template["trialSpec"]["kind"] == "TrainJob"
            assert template["primaryContainerName"] == "node"
            rows = table_rows(final_view(messages))
            assert len(rows) == 2 and all(row.endswith(" 2 Succeeded") for row in rows)
            text = stream_text(messages)
            assert len(re.findall(r"^\[#\d node-[01]\] rank [01] loss=", text, re.M)) == 4
            best = experiment["status"]["currentOptimalTrial"]["parameterAssignments"][0]
            (marked,) = [row for row in rows if re.match(r"#\d+ +\* ", row)]
            assert f"x={float(best['value']):.4g}" in marked
