"""Names that phase 2 and phase 3 must agree on, in one place."""

from __future__ import annotations

#: The cell's training code, as every provider ships it and every backend runs it.
CODE_FILE = "code.py"
#: The cell's `%requirements`, one per line, beside the code.
REQUIREMENTS_FILE = "requirements.txt"
#: Where the code lives in a replica's container (the ConfigMap's mount, the img layer).
CODE_DIR = "/opt/ciao"
