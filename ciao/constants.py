"""Names that phase 2 and phase 3 must agree on, in one place."""

from __future__ import annotations

#: The cell's training code, as every provider ships it and every backend runs it.
CODE_FILE = "code.py"
#: The cell's `%requirements`, one per line, beside the code.
REQUIREMENTS_FILE = "requirements.txt"
#: Where the code lives in a replica's container (the ConfigMap's mount, the img layer).
CODE_DIR = "/opt/ciao"
#: Katib's default metrics filter (`pkg/metricscollector/v1beta1/common/const.go`,
#: DefaultFilter), verbatim: what a metric line is, for the kernel (backend/metrics.py) and
#: for a Katib trial's replicas (main.py appends the lines it finds for Katib's collector).
KATIB_FILTER = r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)"
