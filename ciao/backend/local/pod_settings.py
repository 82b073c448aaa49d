"""What a cell's pod settings mean for local processes, and what they cannot mean.

`%env` values reach the replicas; a `hostPath` volume is a folder of this machine, so the
replica is told where it is (`CIAO_VOLUME_<PATH>`, the mount path on a cluster). The rest
(claims, Secrets, tolerations, ...) only a cluster has: the cell lists them once, so none
is dropped silently.
"""

from __future__ import annotations

import os

from ciao.errors import BackendError
from ciao.interpreter.pod import OBJECT_KEYS, PodSettings, as_magics, volume_env_name
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
    """The settings that do not apply to local processes, as magics (`%shm=8Gi`), or as
    the config key of an object only the config sets (`securityContext (profile gpu)`),
    each once; a role's own ones say which role (`%toleration=... (worker)`)."""
    job = [(m, t) for m, t in as_magics(parameter.pod) if not _applies_locally(m, t)]
    said = [_said(parameter.pod, magic, text) for magic, text in job]
    for role in parameter.roles:
        settings = parameter.pod_of(role)
        for magic, text in as_magics(settings):
            if (magic, text) not in job and not _applies_locally(magic, text):
                said.append(f"{_said(settings, magic, text)} ({role})")
    return list(dict.fromkeys(said))


def _said(settings: PodSettings, magic: str, text: str) -> str:
    """`%shm=8Gi` as the magic writes it; a config-only object by its key and where it
    was given (its value is a Kubernetes object, not one line)."""
    if magic in OBJECT_KEYS:
        return f"{magic} ({settings.origin(magic)})"
    return f"%{magic}={text}"


def settings_note(parameter: Parameter) -> str:
    """The one line a local cell shows for settings only a cluster applies, "" for none."""
    unapplied = cluster_only(parameter)
    if not unapplied:
        return ""
    return f"[ciao] note: {', '.join(unapplied)} apply on Kubernetes, not to local processes"
