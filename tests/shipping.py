"""Phase 2 as the Manager runs it, for tests of one S2I provider: plan, then ship exactly
the plan."""

from __future__ import annotations

from ciao.interpreter.types import Parameter
from ciao.s2i.types import LineCallback, S2IClient, Shipment


def ship(client: S2IClient, parameter: Parameter, progress: LineCallback | None = None) -> Shipment:
    """What `client` ships for the cell `parameter`, planned first as the Manager does."""
    return client.source_to_image(client.plan(parameter), parameter, progress)
