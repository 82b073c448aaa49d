"""Job names: what the interpreter gives a new cell, and what a backend renames to on a clash."""

from __future__ import annotations

import re
import secrets
import string

#: A Kubernetes object name that must be a DNS-1035 label (a job, a runtime): lower-case
#: letters, digits and '-', starting with a letter, at most 63.
DNS_LABEL = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")


def random_name() -> str:
    """`ciao-` and 5 random lower-case letters: a DNS-1035 label, unique enough per user."""
    return "ciao-" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(5))


def label_value(value: str) -> str:
    """`value` as a Kubernetes label value can hold it (≤ 63 of [A-Za-z0-9._-], alphanumeric
    at both ends): how a job's owner (kernel id, notebook) is written on it, and so how it
    is compared when the job is read back."""
    cleaned = "".join(c if c.isalnum() or c in "._-" else "-" for c in str(value))[:63]
    return cleaned.strip("._-")
