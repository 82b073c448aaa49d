"""Kubernetes quantities as a cell or the config writes them (`500m`, `2Gi`), checked
against what a replica may sensibly ask for."""

from __future__ import annotations

import re
from decimal import Decimal

from ciao.errors import excerpt

#: What a replica may ask for: less is a typo (`%memory=512` is 512 bytes), more is more
#: than any node has (`%cpu=1e308`).
QUANTITY_RANGES: dict[str, tuple[Decimal, Decimal, tuple[str, str]]] = {
    "cpu": (Decimal("0.001"), Decimal(4096), ("1m (a thousandth of a core)", "4096 cores")),
    "memory": (Decimal(1 << 20), Decimal(1 << 46), ("1Mi", "64Ti")),
}
#: Kubernetes' quantity grammar (apimachinery's resource.Quantity): a signed decimal in
#: ASCII digits and one suffix, binary (Ki..Ei), decimal (m, k, M..E) or an exponent.
_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_QUANTITY = re.compile(rf"[+-]?{_NUMBER}(?:[KMGTPE]i|[mkMGTPE]|[eE][+-]?{_NUMBER})?")
#: Longest quantity read (the longest sensible one is a few characters).
MAX_QUANTITY_CHARS = 64


def check_quantity(name: str, value: str) -> str | None:
    """Why `value` is not a usable cpu/memory quantity, or None when it is."""
    from kubernetes.utils.quantity import parse_quantity  # slow import: only when needed

    examples = "500m, 1 or 2.5" if name == "cpu" else "512Mi, 1Gi or 2G"
    if len(value) > MAX_QUANTITY_CHARS:
        return f"{excerpt(value)} is not a quantity such as {examples}"
    try:
        if not _QUANTITY.fullmatch(value):
            raise ValueError(value)
        amount: Decimal = parse_quantity(value)
    except (ValueError, ArithmeticError):
        return (
            f"{excerpt(value)} is not a Kubernetes quantity; use a quantity > 0 such as {examples}"
        )
    if not amount.is_finite() or amount <= 0:
        return f"must be a quantity > 0 such as {examples}, got {excerpt(value)}"
    if name == "memory" and amount < 1:
        hint = f"did you mean {value[:-1]}Mi?" if value.endswith("m") else f"use e.g. {examples}"
        return f"{excerpt(value)} is less than one byte (memory is in bytes, m means milli); {hint}"
    low, high, words = QUANTITY_RANGES[name]
    if amount < low:
        hint = f"; did you mean {value}Mi?" if name == "memory" and value.isdigit() else ""
        return f"{excerpt(value)} is less than {words[0]}{hint}"
    if amount > high:
        return f"{excerpt(value)} is more than {words[1]}: no node has that much"
    return None
