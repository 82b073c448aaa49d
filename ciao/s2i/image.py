"""Which image a cell runs in: `%image` (or a profile's `image:`) over the config's
`images.<framework>`. The configmap provider runs the code in it; the img provider builds
the code on it; the s2i provider builds on its builder image, which `%image` cannot be."""

from __future__ import annotations

from ciao.errors import BackendError
from ciao.interpreter.types import Parameter


def cell_image(parameter: Parameter, default: str) -> str:
    """The cell's image, else `default`. One image for the whole job: every replica runs
    the one shipment (built once, or the one ConfigMap's code)."""
    by_role = {role: parameter.pod_of(role).image for role in parameter.roles}
    distinct = set(by_role.values()) or {parameter.pod.image}
    if len(distinct) > 1:
        role, image = next((r, i) for r, i in by_role.items() if i != parameter.pod.image)
        where = parameter.pod_of(role).origin("image")
        raise BackendError(
            f"%image={image or '(none)'} ({where}) would give the {role} replicas an image of "
            "their own, but every replica runs the cell's one image: give %image on its own "
            "line"
        )
    return distinct.pop() or default


def refuse_image(parameter: Parameter, provider: str, instead: str) -> None:
    """For a provider whose image is not the cell's to choose: say so, and what to do."""
    image = cell_image(parameter, "")
    if image:
        where = parameter.pod.origin("image")
        raise BackendError(f"%image={image} ({where}): s2i.provider {provider} {instead}")
