"""The engine the API drives: one Manager for the process, composed as the kernel's
(ciao.app.compose): the config loader, the registry over this environment, the magics'
interpreter. No second path to the backends."""

from __future__ import annotations

import os
import threading
import uuid
from functools import cache
from itertools import count

from ciao.config import Config, load_config
from ciao.manager import Manager, interpreter_for
from ciao.registry import Registry

#: Who submits from this process: its jobs' owner labels, as a kernel's are.
PROCESS_ID = f"python-{uuid.uuid4().hex[:12]}"
_calls = count(1)
_lock = threading.Lock()


@cache
def manager() -> Manager:
    from ciao.app import job_environment

    return Manager(load_config, Registry(environ=job_environment(os.environ)), interpreter_for)


def config() -> Config:
    return load_config()


def owner() -> dict[str, str]:
    """The labels of a job this process submits (a call number stands for the cell)."""
    with _lock:
        call = next(_calls)
    return {"kernel-id": PROCESS_ID, "session": PROCESS_ID[7:], "cell": str(call)}
