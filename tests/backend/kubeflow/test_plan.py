"""A Kubeflow plan: what `%dryrun` shows and `exec_code` sends, built once from the cell and
its shipment; a taken name gives a renamed plan, never an edited one."""

from __future__ import annotations

from ciao.backend.kubeflow.manifests import PodSecurity
from ciao.backend.kubeflow.plan import Target, plan_job
from ciao.interpreter.magics import MagicInterpreter
from ciao.s2i.types import Shipment

CODE_BESIDE = Shipment(
    "pytorch/pytorch:2.5.1",
    command=("python", "-u", "/opt/ciao/code.py"),
    files={"code.py": "print(1)\n"},
)
BUILT = Shipment("registry.test/team/ciao:0123456789abcdef", build={"build": "s2i"})


def parameter(cell: str = "%framework=pytorch\n%master=1\n%worker=1\nprint(1)"):
    return MagicInterpreter(name_factory=lambda: "ciao-first").preprocess(cell)


def containers(job: dict) -> list[dict]:
    specs = job["spec"]["pytorchReplicaSpecs"].values()
    return [c for spec in specs for c in spec["template"]["spec"]["containers"]]


def test_files_beside_the_image_make_a_configmap_sent_before_the_job():
    plan = plan_job(parameter(), CODE_BESIDE, "team")

    (config_map,) = plan.objects
    assert config_map["kind"] == "ConfigMap"
    assert config_map["metadata"]["name"] == plan.config_map == "ciao-first-code"
    assert config_map["data"] == {"code.py": "print(1)\n"}
    assert plan.name == "ciao-first" and plan.kind.kind == "PyTorchJob"
    assert plan.documents() == [config_map, plan.job]


def test_a_built_image_needs_no_configmap_and_its_build_is_shown_first():
    plan = plan_job(parameter(), BUILT, "team")

    assert plan.objects == () and plan.config_map == ""
    assert plan.documents() == [{"build": "s2i"}, plan.job]
    assert {c["image"] for c in containers(plan.job)} == {BUILT.image}


def test_a_renamed_plan_renames_the_job_its_configmap_and_every_reference_to_them():
    plan = plan_job(parameter(), CODE_BESIDE, "team")

    renamed = plan.renamed("ciao-other")

    assert renamed.name == "ciao-other" and renamed.config_map == "ciao-other-code"
    assert renamed.objects[0]["data"] == plan.objects[0]["data"]
    for spec in renamed.job["spec"]["pytorchReplicaSpecs"].values():
        (volume, _home) = spec["template"]["spec"]["volumes"]
        assert volume == {"name": "ciao-code", "configMap": {"name": "ciao-other-code"}}
    for container in containers(renamed.job):
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["CIAO_JOB_NAME"] == "ciao-other"
    assert "ciao-first" not in repr((renamed.job, renamed.objects))
    assert plan.name == "ciao-first" and plan.config_map == "ciao-first-code", "not edited"
    assert plan.parameter.generate_name == "ciao-first"


def test_a_queue_labels_the_job_for_kueue_but_not_its_pods():
    """Kueue reads the job's label; on a pod it would take the pod for one of its own."""
    plan = plan_job(parameter(), CODE_BESIDE, "team", Target("v1", queue="team-gpus"))

    assert plan.job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-gpus"
    for spec in plan.job["spec"]["pytorchReplicaSpecs"].values():
        assert "kueue.x-k8s.io/queue-name" not in spec["template"]["metadata"]["labels"]
    assert "queued in team-gpus (Kueue)" in plan.description
    assert plan.renamed("ciao-other").job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"]
    unqueued = plan_job(parameter(), CODE_BESIDE, "team")
    assert "kueue.x-k8s.io/queue-name" not in unqueued.job["metadata"]["labels"]


def test_the_plan_says_who_the_pods_run_as_and_a_renamed_plan_keeps_it():
    plan = plan_job(parameter(), CODE_BESIDE, "team")
    assert "pods run as uid 1000 (Pod Security restricted)" in plan.description
    own = Target("v1", security=PodSecurity(True, None))
    assert "pods run as the image's user (Pod Security restricted)" in (
        plan_job(parameter(), CODE_BESIDE, "team", own).description
    )
    off = plan_job(parameter(), CODE_BESIDE, "team", Target("v1", security=PodSecurity(False)))
    assert "with no securityContext" in off.description
    renamed = off.renamed("ciao-other")
    for spec in renamed.job["spec"]["pytorchReplicaSpecs"].values():
        assert "securityContext" not in spec["template"]["spec"]
