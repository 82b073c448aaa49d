"""Running a `%tune` cell and the study commands: Jupyter's side of a study.

The study's events become the live trial table (study_view.py), the running trials' lines
below it, prefixed by trial and replica (`[#3 master-0] loss=0.42`), and the reply's
status: ok when the study completed with a trial that succeeded, an error otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import yaml

from ciao.backend.types import JobDone
from ciao.config import Config
from ciao.errors import CiaoError, JobCancelled, JobDetached, JobFailed
from ciao.interpreter.types import StudyCommand
from ciao.kernel.logstream import LogStream
from ciao.kernel.output import LiveView, Output, readable_yaml
from ciao.kernel.pump import pump
from ciao.kernel.study_view import StudyView, best_bundle
from ciao.manager import ActiveJob, Manager, Prepared
from ciao.tune import studies
from ciao.tune.run import RunningStudy
from ciao.tune.state import StudyState, number_text, params_text


class StudyCell:
    """Runs `%tune` cells and the commands on studies through the Manager."""

    def __init__(self, manager: Manager, owner: Callable[[int], dict[str, str]]) -> None:
        self.manager = manager
        self.owner = owner

    def run(self, prepared: Prepared, out: Output, count: int) -> None:
        parameter = prepared.parameter
        assert parameter is not None
        if parameter.dry_run:
            self.dry_run(prepared, out, count)
            return
        run, plan = studies.start_study(self.manager, prepared, self.owner(count), out.progress)
        if plan.trial.shipment.travels_line:
            out.stream("stdout", f"[ciao] {plan.trial.shipment.travels_line}\n")
        active = self.manager.adopt(run, parameter.on_interrupt, follow=not parameter.detach)
        if parameter.detach:
            self.manager.finished(active)
            name = run.job.name
            out.stream(
                "stdout",
                f"Started study {name} ({plan.engine.describe()}), detached.\n"
                f"  %attach {name}   follow it here\n  %study {name}    its trials\n"
                f"  %best {name}     its best parameters\n  %delete {name}   stop it\n",
            )
            return
        self.follow(active, run, out, prepared.config)

    def attach(self, config: Config, name: str, out: Output, viewer: str) -> None:
        """%attach of a study: its table and lines again, from where this notebook left
        off; a study whose driver stopped goes on (an interrupt detaches again)."""
        run = studies.attach_study(self.manager, config, name, viewer)
        self.follow(self.manager.adopt(run, "detach"), run, out, config)

    def follow(self, active: ActiveJob, run: RunningStudy, out: Output, config: Config) -> None:
        """Stream the study's events (`run`, followed as `active`) into the cell until it
        ends; raise unless it completed with a trial that succeeded."""
        study = run.study
        state = StudyState.of(run.job.name, study)
        view = LiveView(StudyView(run.job, state, study), out)
        parallel = int(study.get("parallel") or 1)
        roles = run.roles
        stream = LogStream(
            out,
            run.job.name,
            parallel * max(1, sum(roles.values())),
            config.output.max_lines,
            logs_of=lambda label: trial_logs(run.job.name, label),
        )
        done: JobDone | None = None
        if run.job.resumed:
            stream.notice(
                f"[ciao] {run.job.name}: going on after the last line shown here "
                f"(%logs {run.job.name} shows every trial's lines)\n",
                "stdout",
            )
        try:
            done = pump(active, view, stream)
        finally:
            view.refresh(force=True)
            stream.close()
            self.manager.finished(active)
        self._verdict(active, done, state, out)

    def _verdict(
        self, active: ActiveJob, done: JobDone | None, state: StudyState, out: Output
    ) -> None:
        name = active.job.name
        if done is None and active.detached:
            raise JobDetached(
                f"stopped following study {name}; it is still running. %attach {name} "
                f"follows it again, %study {name} shows its trials, %delete {name} stops it"
            )
        if done is None:
            raise JobFailed(f"study {name} ended without a final status")
        best = state.best()
        if best is not None:
            out.stream(
                "stdout",
                f"[ciao] best: #{best.number} {params_text(best.params)}: {state.metric}="
                f"{number_text(best.value)} (%best {name}; %logs {best.job}: its log)\n",
            )
        if done.succeeded:
            return
        if active.cancel_requested or done.reason == "Cancelled":
            raise JobCancelled(f"study {name} was cancelled: {done.message}")
        raise JobFailed(f"study {name} failed: {done.message or done.reason}")

    # ---- %dryrun and the commands -------------------------------------------------------

    def dry_run(self, prepared: Prepared, out: Output, count: int) -> None:
        """The study (space, objective, algorithm, engine) and the plan of its trials: with
        Katib's engine, the ConfigMap and the Experiment it makes (the trials' job is its
        trialSpec)."""
        plan = studies.plan_study(self.manager, prepared, self.owner(count))
        trial = plan.trial.job.plan
        study = plan.study()
        travels = dict(plan.trial.shipment.travels)
        head = (
            f"# %dryrun of a study on {plan.backend}, engine {plan.engine.describe()}\n"
            "# nothing was built or submitted\n" + yaml.safe_dump(study, sort_keys=False).rstrip()
        )
        data: dict[str, object]
        if plan.katib is not None:
            documents = plan.katib.documents()
            what = f"\n---\n# {plan.katib.description}; passes Katib's webhook rules\n"
            data = {
                "study": study,
                "objects": documents[:-1],
                "experiment": documents[-1],
                "job": plan.katib.trial.job,
                "travels": travels,
            }
        else:
            documents = trial.documents()
            what = f"\n---\n# each trial: {trial.description}\n"
            data = {
                "study": study,
                "objects": documents[:-1],
                "job": documents[-1],
                "travels": travels,
            }
        text = (
            head
            + what
            + "\n---\n".join(yaml.safe_dump(d, sort_keys=False).rstrip() for d in documents)
        )
        out.result(count, readable_yaml(text, json.loads(json.dumps(data)), "plan"))

    def command(self, config: Config, command: StudyCommand, out: Output, count: int) -> None:
        if command.action == "best":
            best = studies.best_trial(self.manager, config, command.study)
            out.result(count, best_bundle(command.study, best))
            return
        out.result(count, self.table(config, command.study))

    def table(self, config: Config, name: str) -> dict[str, str]:
        """`%study NAME` (and `%status` of a study): every trial's row."""
        job, state, study = studies.study_view(self.manager, config, name)
        view = StudyView(job, state, study, limit=None)
        view.ended = view.submitted if state.done is not None else None
        return view.bundle()

    def logs(
        self, config: Config, name: str, replica: str | None, tail: int | None, out: Output
    ) -> None:
        """`%logs STUDY [replica]`: every trial's lines (or one replica's of each trial),
        prefixed by trial and replica."""
        stream = LogStream(out, name, 1, wait=30.0)
        for line in studies.study_lines(self.manager, config, name, replica, tail):
            stream.line(line.replica, line.text, line.stream)
            if stream.due_in() <= 0:
                stream.flush()
        stream.close()

    def delete(self, config: Config, name: str, out: Output) -> None:
        trials = studies.delete_study(self.manager, config, name)
        out.stream(
            "stdout", f"Deleted study {name}, its {len(trials)} trials' jobs and its record.\n"
        )


def trial_logs(study: str, label: str) -> str:
    """The `%logs` command of a trial's replica, `#3 master-0`: its own job's log."""
    number, _, replica = label.partition(" ")
    return f"%logs {study}-{number.lstrip('#')} {replica}"


def is_study(manager: Manager, config: Config, name: str) -> bool:
    try:
        return studies.is_study(manager, config, name)
    except CiaoError:
        return False
