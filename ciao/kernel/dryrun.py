"""What `%dryrun` shows of a planned cell: its documents as YAML, under a note saying
where it would run and what travels with it. One text for the kernel's `%dryrun` and for
`ciao.run(..., dry_run=True)`."""

from __future__ import annotations

from typing import Any

from ciao.manager import CellPlan


def dryrun_text(cell: CellPlan) -> tuple[str, dict[str, Any]]:
    """The text (note, then the documents) and the same as data (objects, job, travels)."""
    import yaml

    plan = cell.job.plan
    documents = plan.documents()
    text = "\n---\n".join(yaml.safe_dump(d, sort_keys=False).rstrip() for d in documents)
    note = f"# %dryrun on {plan.backend}: {plan.description}\n# nothing was built or submitted\n"
    travels = dict(cell.shipment.travels)
    if travels:
        carried = yaml.safe_dump({"travels": travels}, sort_keys=False).rstrip()
        note += f"# {cell.shipment.travels_line}\n{carried}\n---\n"
    data = {"objects": documents[:-1], "job": documents[-1], "travels": travels}
    return note + text, data
