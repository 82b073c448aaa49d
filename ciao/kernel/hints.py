"""What to do about the failures a newcomer meets first, said next to the verdict.

A replica's `ModuleNotFoundError` is the commonest: where the package must go depends on
where the replicas run (the kernel's Python locally, the image on a cluster), so the hint
names the exact command for that place.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable

from ciao.backend.local.packages import pip_argv

_MISSING = re.compile(r"ModuleNotFoundError: No module named '([A-Za-z_][\w.]*)'")

#: Modules whose pip package has another name.
PACKAGE_OF = {
    "sklearn": "scikit-learn",
    "cv2": "opencv-python",
    "PIL": "pillow",
    "yaml": "pyyaml",
    "skimage": "scikit-image",
    "bs4": "beautifulsoup4",
    "dateutil": "python-dateutil",
    "attr": "attrs",
    "google.protobuf": "protobuf",
    "tensorflow_datasets": "tensorflow-datasets",
}


def failure_hint(backend: str, lines: Iterable[str]) -> str:
    """A one-line hint for a failed replica's last lines, "" when there is none."""
    module = ""
    for line in lines:
        found = _MISSING.search(line)
        if found:
            module = found.group(1)
    if not module:
        return ""
    top = module.split(".")[0]
    package = PACKAGE_OF.get(module) or PACKAGE_OF.get(top) or top
    if backend == "local":
        command = shlex.join(pip_argv(["install", package]))
        return (
            f"{top} is not installed in the Python the local replicas run: `%pip install "
            f"{package}` in a cell installs it there (or `{command}` in a terminal)"
        )
    return (
        f"the replicas' image has no {top}: add %requirements={package} to the cell (pip "
        "installs it in every replica), or run an image that has it (images: in the config)"
    )
