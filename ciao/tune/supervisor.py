"""`python -m ciao.tune.supervisor <study record>`: the process that drives a study.

It lives in its own session, like a local job's supervisor, so a study outlives the kernel
that started it (`%onInterrupt=detach`, `%detach`, a kernel restart): `%attach STUDY` from
any kernel follows it, and starts a new driver for a study whose driver is gone (it goes
on from Optuna's journal). SIGTERM cancels the study: every running trial is cancelled
through the normal cancel path, then the study's verdict is written.
"""

from __future__ import annotations

import logging
import signal
import sys
import warnings
from pathlib import Path

from ciao.backend.record import RunDir


def main(argv: list[str] | None = None) -> int:
    from ciao.manager import Manager, interpreter_for
    from ciao.registry import Registry
    from ciao.tune.driver import StudyDriver
    from ciao.tune.record import StudyRecord

    argv = sys.argv[1:] if argv is None else argv
    path = Path(argv[0])
    record = StudyRecord(RunDir(path.parent, path.name))
    parameter, config = record.inputs()
    logging.basicConfig(
        level=logging.WARNING, format="[ciao %(levelname)s %(asctime)s] %(message)s"
    )
    quiet_optuna()
    manager = Manager(lambda: config, Registry(), interpreter_for)
    driver = StudyDriver(record, manager, parameter, config)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: driver.cancel())
    verdict = driver.run()
    return 0 if verdict.succeeded or verdict.reason == "Cancelled" else 1


def quiet_optuna() -> None:
    """Optuna's INFO line per trial and its experimental warnings would fill the driver's
    log; the study's record says what happened."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", message=".*is already reported.*")


if __name__ == "__main__":
    sys.exit(main())
