"""A job submitted from Python: its name, its state, its lines, its verdict, its metrics;
followed (live view and lines) through the same ActiveJob a kernel cell follows."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from ciao.api import engine
from ciao.api.view import Sink, View, sink_for
from ciao.backend.metrics import Metrics
from ciao.backend.record import viewer_of
from ciao.backend.types import Diagnosis, Event, JobDone, LogLine, LogLines
from ciao.errors import JobCancelled, JobFailed
from ciao.kernel.render import JobView
from ciao.manager import ActiveJob


@dataclass
class Job:
    """A job by name. `wait()` follows it to its end (lines and live view), `status()`,
    `logs()` and `metrics()` read it from wherever it ran, as %status, %logs, %metrics."""

    name: str
    active: ActiveJob | None = field(default=None, repr=False)
    #: The verdict once followed to its end here.
    done: JobDone | None = field(default=None, repr=False)

    def status(self) -> str:
        """Submitted, Pending, Running, Succeeded, Failed, Cancelled (as %jobs says)."""
        if self.done is not None:
            return self.done.state
        return engine.manager().status(engine.config(), self.name)[0].state

    def wait(self, check: bool = True) -> str:
        """Follow the job to its end (its lines and live view) and return its final
        status; with `check`, a failed job raises JobFailed (naming the replica, its exit
        code and last lines) and a cancelled one JobCancelled. Ctrl-C cancels a job this
        process submitted (not one it attached to: that one is only detached from)."""
        if self.done is None:
            active = self.active
            if active is None or active.detached:  # submitted detached, or followed before
                active = engine.manager().attach(engine.config(), self.name, _viewer())
            self.active = None
            self.done = follow(active)  # Ctrl-C: raised once cancelled (or detached)
            if self.done is None:
                raise JobFailed(f"job {self.name} ended without a final status")
        if check:
            verdict(self.name, self.done)
        return self.done.state

    def cancel(self) -> None:
        """Stop the job and delete what it created (its record stays: %logs reads it)."""
        if self.active is not None and not self.active.detached:
            self.active.cancel()
            self.active.wait_cancelled(30.0)
        else:
            backend = engine.manager().registry.backend_of(engine.config(), self.name)
            backend.attach(self.name, "").cancel()

    def logs(
        self, replica: str | None = None, tail: int | None = None, follow: bool = False
    ) -> Iterator[LogLine]:
        """Its lines so far (one replica's, the last `tail`), or with `follow` every line
        as it comes until the job ends."""
        if not follow:
            yield from engine.manager().logs(engine.config(), self.name, replica, tail)
            return
        active = engine.manager().attach(engine.config(), self.name, "")
        try:
            for event in active.events():
                if isinstance(event, LogLines) and replica in (None, event.replica):
                    for text in event.lines:
                        yield LogLine(event.replica, text, event.stream)
                elif isinstance(event, LogLine) and replica in (None, event.replica):
                    yield event
        finally:
            engine.manager().finished(active)

    def metrics(self) -> Metrics:
        """Its `name=value` lines as series per replica (as %metrics)."""
        return engine.manager().metrics(engine.config(), self.name)


def follow(active: ActiveJob, view: View | None = None) -> JobDone | None:
    """Show the job's events until it ends; None when it was detached from. Ctrl-C
    interrupts it as the kernel's interrupt does (cancel, or detach after an attach), and
    is raised again once the job is stopped."""
    view = view or JobView(active.job)
    sink = sink_for(view)
    done: JobDone | None = None
    interrupted = False
    try:
        while done is None:
            try:
                event = active.next_event()
                if event is not None:
                    view.apply(event)
                    _show(event, sink)
                    if isinstance(event, JobDone):
                        done = event
                sink.refresh(view)
            except StopIteration:
                break
            except KeyboardInterrupt:
                if interrupted:  # a second Ctrl-C: stop waiting for the cancel
                    raise
                interrupted = True
                active.interrupt()
    finally:
        sink.refresh(view, force=True)
        engine.manager().finished(active)
    if interrupted:
        raise KeyboardInterrupt
    return done


def _show(event: Event, sink: Sink) -> None:
    if isinstance(event, LogLines):
        for text in event.lines:
            sink.line(event.replica, text, event.stream)
    elif isinstance(event, LogLine):
        sink.line(event.replica, event.text, event.stream)
    elif isinstance(event, Diagnosis):
        over = " is over" if event.resolved else ""
        sink.notice(f"[{event.replica}] {event.reason}{over}: {event.hint}")


def verdict(name: str, done: JobDone) -> None:
    """Raise as a kernel cell would for a job that did not succeed."""
    if done.succeeded:
        return
    if done.reason == "Cancelled":
        raise JobCancelled(f"job {name} was cancelled: {done.message}")
    message = f"job {name} failed: {done.message or done.reason}"
    raise JobFailed(message, done.failed_replica, done.tail, job=name)


def _viewer() -> str:
    return viewer_of(engine.owner())
