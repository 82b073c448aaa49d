"""What a cell's pod settings mean for local processes, and what they cannot mean.

`%env` values reach the replicas; a `hostPath` volume is a folder of this machine, so the
replica is told where it is (`CIAO_VOLUME_<PATH>`, the mount path on a cluster). The rest
(claims, Secrets, tolerations, ...) only a cluster has: the cell lists them once, so none
is dropped silently.
"""

from __future__ import annotations

import os

from ciao.errors import BackendError
from ciao.interpreter.pod import PodSettings, as_magics, volume_env_name
from ciao.interpreter.types import Parameter


def local_environment(settings: PodSettings) -> dict[str, str]:
    """The variables `settings` give a local replica: `%env` values (a Secret's key is the
    cluster's to read) and where each host folder is."""
    env = {var.name: var.value for var in settings.env if not var.ref_kind}
    for volume in settings.volumes:
        if volume.kind == "hostPath":
            env[volume_env_name(volume.path)] = os.path.expanduser(volume.source)
    return env


def check_folders(parameter: Parameter) -> None:
    """Every host folder a role mounts exists here, before anything runs."""
    for role in parameter.roles:
        for volume in parameter.pod_of(role).volumes:
            folder = os.path.expanduser(volume.source)
            if volume.kind == "hostPath" and not os.path.isdir(folder):
                where = parameter.pod_of(role).origin("volume", volume.describe())
                raise BackendError(
                    f"%volume=hostPath:{volume.source}:{volume.path} ({where}): {folder} is "
                    "not a folder on this machine"
                )


def _applies_locally(magic: str, text: str) -> bool:
    if magic == "env":
        return "=secret:" not in text and "=configMap:" not in text
    return magic == "volume" and text.startswith("hostPath:")


def cluster_only(parameter: Parameter) -> list[str]:
    """The settings that do not apply to local processes, as magics (`%shm=8Gi`), each
    once; a role's own ones say which role (`%toleration=... (worker)`)."""
    job = [(m, t) for m, t in as_magics(parameter.pod) if not _applies_locally(m, t)]
    said = [f"%{magic}={text}" for magic, text in job]
    for role in parameter.roles:
        for magic, text in as_magics(parameter.pod_of(role)):
            if (magic, text) not in job and not _applies_locally(magic, text):
                said.append(f"%{magic}={text} ({role})")
    return list(dict.fromkeys(said))


def settings_note(parameter: Parameter) -> str:
    """The one line a local cell shows for settings only a cluster applies, "" for none."""
    unapplied = cluster_only(parameter)
    if not unapplied:
        return ""
    return f"[ciao] note: {', '.join(unapplied)} apply on Kubernetes, not to local processes"
