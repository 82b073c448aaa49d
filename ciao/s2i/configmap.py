"""The `configmap` provider: no image build; the code rides in a ConfigMap mounted into
the stock framework image (or the cell's `%image`), and the container runs it with
`python -u`. The cell's
`%requirements` go in the same ConfigMap (requirements.txt), and the container
pip-installs them before it runs the code.

Nothing is sent from here: the Shipment names the files, and the Kubeflow backend creates
their ConfigMap with the job (before it, so pods mount it at start; owned by it, so it goes
with it).
"""

from __future__ import annotations

from collections.abc import Mapping

from ciao.constants import CODE_DIR, CODE_FILE, REQUIREMENTS_FILE
from ciao.errors import BackendError
from ciao.interpreter.types import Parameter
from ciao.s2i.bundle import FILES_ARCHIVE, Bundle, bundle_of, size_text
from ciao.s2i.files import largest
from ciao.s2i.image import cell_image
from ciao.s2i.requirements import requirements_text
from ciao.s2i.types import LineCallback, Shipment

#: What one ConfigMap may hold (the API server's limit is 1 MiB, metadata included).
MAX_CODE_BYTES = 1024 * 1024 - 16 * 1024
#: With requirements, the container installs them and then runs the code. A fixed script:
#: the requirements reach pip only through the file, never through the command line.
#: As a non-root uid (Pod Security `restricted`: the stock images' site-packages belong to
#: root) pip installs into the user site by itself ("Defaulting to user installation
#: because normal site-packages is not writeable"), under PYTHONUSERBASE, which the Kubeflow
#: backend points at the pod's own writable HOME (an emptyDir), and the code then imports
#: from there. Not `--user`: pip refuses it in a virtualenv, which an image may use.
INSTALL = (
    "python -m pip install --no-cache-dir --disable-pip-version-check "
    f"-r {CODE_DIR}/{REQUIREMENTS_FILE}"
)


INSTALL_AND_RUN = f"{INSTALL} && exec python -u {CODE_DIR}/{CODE_FILE}"


def code_command(
    with_requirements: bool, entry: str = CODE_FILE, wrapped: bool = False
) -> tuple[str, ...]:
    """The container command that runs the mounted code (`python -u`; main.py when the
    cell carries things from the notebook), after a `pip install -r requirements.txt`
    when the cell has `%requirements` (then the shell `exec`s Python, unless the command
    is `wrapped` in another that must go on after it: a Katib trial's)."""
    if with_requirements:
        run = "" if wrapped else "exec "
        return ("sh", "-c", f"{INSTALL} && {run}python -u {CODE_DIR}/{entry}")
    return ("python", "-u", f"{CODE_DIR}/{entry}")


class ConfigMapCode:
    """S2IClient that ships the code in a ConfigMap and runs it in the stock image."""

    def __init__(self, images: Mapping[str, str]) -> None:
        self.images = images

    def plan(self, parameter: Parameter) -> Shipment:
        """The ConfigMap's files and the command; refused when they cannot fit in one
        (checked on the files' sizes, before any is read)."""
        bundle = bundle_of(parameter)
        wrapped = bool(parameter.metrics_file)  # Katib wraps a trial's command
        requirements = bundle.requirements(parameter.requirements)
        texts = dict(bundle.texts)
        if requirements:
            texts[REQUIREMENTS_FILE] = requirements_text(requirements)
        sizes = {**bundle.sizes(), **{n: len(t.encode("utf-8")) for n, t in texts.items()}}
        if sum(sizes.values()) > MAX_CODE_BYTES:  # refused before reading a byte of it
            raise BackendError(too_large(parameter, bundle, sizes))
        files = {**bundle.payload(pack_files=True), **texts}
        shipped = {n: len(v.encode("utf-8") if isinstance(v, str) else v) for n, v in files.items()}
        if sum(shipped.values()) > MAX_CODE_BYTES:  # the archive's headers tipped it over
            raise BackendError(too_large(parameter, bundle, {**sizes, **shipped}))
        return Shipment(
            image=cell_image(parameter, self.images[parameter.framework]),
            command=code_command(bool(requirements), bundle.entry, wrapped),
            files=files,
            script=f"{CODE_DIR}/{bundle.entry}",
            setup=INSTALL if requirements else "",
            travels=bundle.describe() if bundle.carries else {},
            travels_line=bundle.summary(),
            wrapped=wrapped,
        )

    def source_to_image(
        self, shipment: Shipment, parameter: Parameter, progress: LineCallback | None = None
    ) -> Shipment:
        """Nothing to make: the backend creates the ConfigMap with the job."""
        if shipment.travels_line and progress is not None:
            progress(f"[ciao] {shipment.travels_line}")
        return shipment

    def cancel(self) -> None:
        """Nothing to stop: nothing is built."""


def too_large(parameter: Parameter, bundle: Bundle, sizes: dict[str, int]) -> str:
    """Why the cell cannot travel in a ConfigMap: what is largest, and what to do."""
    total = sum(sizes.values())
    if not bundle.carries:
        what = "code and requirements are" if parameter.requirements else "code is"
        return (
            f"the cell's {what} {total} bytes, more than a ConfigMap holds "
            f"({MAX_CODE_BYTES} bytes): ship it in an image with `s2i: {{provider: s2i}}`, "
            "or load large data from storage instead of embedding it"
        )
    head = (
        f"the cell's code and what it takes along are {total:,} bytes ({size_text(total)}), "
        f"more than a ConfigMap holds ({MAX_CODE_BYTES:,} bytes)"
    )
    parts = []
    if bundle.files:
        shown = ", ".join(f"{f.path} ({size_text(f.size)})" for f in largest(bundle.files))
        parts.append(
            f"files: {len(bundle.files)} file(s), {size_text(sizes[FILES_ARCHIVE])}; "
            f"the largest: {shown}"
        )
    if bundle.carried is not None and bundle.carried.values:
        shown = ", ".join(
            f"{v.name} from {v.label} ({size_text(v.size)})"
            for v in sorted(bundle.carried.values, key=lambda v: -v.size)[:5]
        )
        parts.append(f"values carried from the session: {shown}")
    code = sizes.get(CODE_FILE, 0)
    if code > MAX_CODE_BYTES // 2:
        parts.append(f"the code itself: {size_text(code)}")
    return (
        head
        + "".join(f"\n  {part}" for part in parts)
        + "\nShip them in an image instead (s2i: {provider: img}, or s2i), put large data "
        "on a volume, or load it inside the job."
    )
