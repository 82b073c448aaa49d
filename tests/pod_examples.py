"""Pod settings as a cell (and a profile) give them, for the tests of where they land: the
issue's example (`%profile=gpu` + a dataset claim + a Secret's token + /dev/shm) and what
each lands as in a pod."""

from __future__ import annotations

import dataclasses

from ciao.interpreter.magics import MagicInterpreter
from ciao.interpreter.pod import SETTING_BY_MAGIC, PodSettings, settings_from
from ciao.interpreter.types import Parameter


def given(*magics: tuple[str, str, str]) -> PodSettings:
    """Settings as the magics (or a profile) give them: (magic, text, where)."""
    return settings_from(
        (SETTING_BY_MAGIC[magic], SETTING_BY_MAGIC[magic].read(text), where)
        for magic, text, where in magics
    )


#: The issue's example: `%profile=gpu` (a GPU node pool's label and taint), a read-only
#: dataset claim, a token from a Secret, and 8 GiB of /dev/shm for DataLoader workers.
GPU_PROFILE = given(
    ("nodeSelector", "nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3", "profile gpu"),
    ("toleration", "nvidia.com/gpu:NoSchedule", "profile gpu"),
)
CELL = given(
    ("volume", "pvc:datasets:/data:ro", "line 2"),
    ("env", "TOKEN=secret:hf/token", "line 3"),
    ("shm", "8Gi", "line 4"),
)
DONE_WHEN = CELL.with_defaults(GPU_PROFILE)


def cell(text: str, settings: PodSettings, **roles: PodSettings) -> Parameter:
    """The cell's job with `settings` for every role, and a role's own line's on top."""
    parameter = MagicInterpreter(name_factory=lambda: "ciao-abcde").preprocess(text)
    specs = {
        role: dataclasses.replace(
            spec, pod=roles[role].with_defaults(settings) if role in roles else settings
        )
        for role, spec in parameter.roles.items()
    }
    return dataclasses.replace(parameter, pod=settings, roles=specs)


DATA_VOLUME = {
    "name": "volume-data",
    "persistentVolumeClaim": {"claimName": "datasets", "readOnly": True},
}
DATA_MOUNT = {"name": "volume-data", "mountPath": "/data", "readOnly": True}
SHM_VOLUME = {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}}
SHM_MOUNT = {"name": "dshm", "mountPath": "/dev/shm"}
TOKEN = {"secretKeyRef": {"name": "hf", "key": "token"}}
GPU_NODES = {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
GPU_TAINT = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
