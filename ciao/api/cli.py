"""`ciao submit`, `ciao jobs`, `ciao status`, `ciao logs`, `ciao attach`, `ciao delete`:
the CLI face of the API, with exit codes a CI job can use (0: the job succeeded; else
the failed replica's exit code, 1 when it has none) and `--json` for programs."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ciao.api.job import Job

from ciao.api.keywords import RESOURCES, ROLES

#: `ciao submit` options that are job magics taking one value (`--queue NAME`).
VALUED = ("framework", "backend", "procs", "runtime", "queue", "profile", "image", "shm")

JSON_HELP = "the job's lines on stderr, its verdict as JSON on stdout"


def add_commands(sub: Any) -> None:
    """The API's subcommands, on `python -m ciao`'s parser."""
    submit = sub.add_parser("submit", help="run a script as a job and follow it")
    submit.add_argument("script")
    submit.add_argument("args", nargs="*", help="the script's arguments, after --")
    for name in (*ROLES, *RESOURCES, *VALUED):
        submit.add_argument(f"--{name}", metavar="VALUE")
    submit.add_argument("--requirements", metavar="A,B", help="as %%requirements=")
    submit.add_argument("--files", metavar="A,B", help="as %%files=")
    for name in ("env", "volume", "toleration", "nodeSelector"):
        submit.add_argument(f"--{name}", action="append", metavar="VALUE", help="repeatable")
    submit.add_argument("--detach", action="store_true", help="submit and exit at once")
    submit.add_argument("--dry-run", action="store_true", help="print the plan, submit nothing")
    submit.add_argument("--json", action="store_true", help=JSON_HELP)

    jobs = sub.add_parser("jobs", help="every backend's jobs, newest first")
    jobs.add_argument("--json", action="store_true")
    status = sub.add_parser("status", help="a job's state and its replicas")
    status.add_argument("name")
    status.add_argument("--json", action="store_true")
    logs = sub.add_parser("logs", help="a job's log (one replica's), or --follow it")
    logs.add_argument("name")
    logs.add_argument("replica", nargs="?")
    logs.add_argument("--tail", type=int)
    logs.add_argument("--follow", "-f", action="store_true")
    attach = sub.add_parser("attach", help="follow a job to its end; its exit code")
    attach.add_argument("name")
    attach.add_argument("--json", action="store_true", help=JSON_HELP)
    delete = sub.add_parser("delete", help="stop a job and delete what it made")
    delete.add_argument("name")


COMMANDS = ("submit", "jobs", "status", "logs", "attach", "delete")


def main(args: argparse.Namespace) -> int:
    """Run one subcommand; a CiaoError is one line on stderr and exit code 2."""
    from ciao.errors import CiaoError

    try:
        return int(globals()[f"_{args.command}"](args))
    except CiaoError as exc:
        print(f"ciao {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `ciao jobs --json | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0


def _submit(args: argparse.Namespace) -> int:
    from ciao.api.calls import plan, submit

    script_args = args.args
    magics: dict[str, Any] = {
        name: getattr(args, name) for name in (*ROLES, *RESOURCES, *VALUED) if getattr(args, name)
    }
    for name in ("requirements", "files"):
        if getattr(args, name):
            magics[name] = getattr(args, name).split(",")
    for name in ("env", "volume", "toleration", "nodeSelector"):
        if getattr(args, name):
            magics[name] = getattr(args, name)
    if args.dry_run:
        planned = plan(args.script, None, script_args, **magics)
        print(json.dumps(planned.documents(), indent=2) if args.json else planned)
        return 0
    job = submit(args.script, None, script_args, detach=args.detach, **magics)
    if args.detach:
        print(json.dumps({"name": job.name}) if args.json else job.name)
        return 0
    return _exit_code(job, args.json)


def _exit_code(job: Job, as_json: bool = False) -> int:
    """Follow the job to its end; its verdict (with `as_json`, on stdout as JSON, the
    job's own lines going to stderr so stdout stays one document)."""
    if as_json:
        with contextlib.redirect_stdout(sys.stderr):
            state = job.wait(check=False)
    else:
        state = job.wait(check=False)
    done = job.done
    if as_json:
        verdict = dataclasses.asdict(done) if done is not None else {}
        print(json.dumps({"name": job.name, "state": state, **verdict}, indent=2))
    if state == "Succeeded" or done is None:
        return 0
    code = done.exit_code if done.exit_code else 1
    where = f"replica {done.failed_replica} exited with code {code}" if done.failed_replica else ""
    why = done.message or done.reason
    print(f"ciao: job {job.name} {state.lower()}: {where or why}", file=sys.stderr)
    if where and why and why not in where:
        print(f"ciao: {why}", file=sys.stderr)
    return code


def _jobs(args: argparse.Namespace) -> int:
    from ciao.api import engine

    found, problems = engine.manager().jobs(engine.config())
    for problem in problems:
        print(f"ciao jobs: could not list jobs of {problem}", file=sys.stderr)
    if args.json:
        print(json.dumps([dataclasses.asdict(job) for job in found], indent=2))
        return 0
    rows = [("NAME", "STATE", "BACKEND", "REPLICAS", "CREATED")]
    for job in found:
        replicas = ",".join(f"{role}={n}" for role, n in job.replicas.items())
        created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(job.created))
        rows.append((job.name, job.state, job.backend, replicas, created))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _status(args: argparse.Namespace) -> int:
    from ciao.api import engine

    info, events = engine.manager().status(engine.config(), args.name)
    if args.json:
        data = dataclasses.asdict(info)
        data["replicas_now"] = [dataclasses.asdict(e) for e in events]
        print(json.dumps(data, indent=2, default=str))
        return 0
    print(f"{info.name}  {info.state}  {info.backend}  {info.message}".rstrip())
    from ciao.backend.types import ReplicaState

    latest = {e.replica: e for e in events if isinstance(e, ReplicaState)}
    for state in latest.values():
        where = f"  ({state.where})" if state.where else ""
        print(f"  {state.replica}  {state.phase}  {state.reason}{where}".rstrip())
    return 0


def _logs(args: argparse.Namespace) -> int:
    from ciao.api.job import Job

    for line in Job(args.name).logs(args.replica, args.tail, follow=args.follow):
        out = sys.stderr if line.stream == "stderr" else sys.stdout
        print(f"[{line.replica}] {line.text}", file=out, flush=True)
    return 0


def _attach(args: argparse.Namespace) -> int:
    from ciao.api.job import Job

    return _exit_code(Job(args.name), args.json)


def _delete(args: argparse.Namespace) -> int:
    from ciao.api import engine

    engine.manager().delete(engine.config(), args.name)
    print(f"Deleted job {args.name} and what it created.")
    return 0
