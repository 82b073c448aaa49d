"""The `configmap` provider: no image build; the code rides in a ConfigMap mounted into
the stock framework image, and the container runs it with `python -u`. The cell's
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
from ciao.s2i.requirements import requirements_text
from ciao.s2i.types import Progress, Shipment

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


def code_command(with_requirements: bool) -> tuple[str, ...]:
    """The container command that runs the mounted code (`python -u`), after a
    `pip install -r requirements.txt` when the cell has `%requirements`."""
    if with_requirements:
        return ("sh", "-c", INSTALL_AND_RUN)
    return ("python", "-u", f"{CODE_DIR}/{CODE_FILE}")


class ConfigMapCode:
    """S2IClient that ships the code in a ConfigMap and runs it in the stock image."""

    def __init__(self, images: Mapping[str, str]) -> None:
        self.images = images

    def plan(self, parameter: Parameter) -> Shipment:
        """The ConfigMap's files and the command; refused when they cannot fit in one."""
        files = {CODE_FILE: parameter.code}
        if parameter.requirements:
            files[REQUIREMENTS_FILE] = requirements_text(parameter.requirements)
        size = sum(len(text.encode("utf-8")) for text in files.values())
        if size > MAX_CODE_BYTES:
            what = "code and requirements are" if parameter.requirements else "code is"
            raise BackendError(
                f"the cell's {what} {size} bytes, more than a ConfigMap holds "
                f"({MAX_CODE_BYTES} bytes): ship it in an image with `s2i: {{provider: s2i}}`, "
                "or load large data from storage instead of embedding it"
            )
        return Shipment(
            image=self.images[parameter.framework],
            command=code_command(bool(parameter.requirements)),
            files=files,
            script=f"{CODE_DIR}/{CODE_FILE}",
            setup=INSTALL if parameter.requirements else "",
        )

    def source_to_image(
        self, shipment: Shipment, parameter: Parameter, progress: Progress | None = None
    ) -> Shipment:
        """Nothing to make: the backend creates the ConfigMap with the job."""
        return shipment

    def cancel(self) -> None:
        """Nothing to stop: nothing is built."""
