"""Job names: what the interpreter gives a new cell, and what a backend renames to on a clash."""

from __future__ import annotations

import secrets
import string


def random_name() -> str:
    """`ciao-` and 5 random lower-case letters: a DNS-1035 label, unique enough per user."""
    return "ciao-" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(5))
