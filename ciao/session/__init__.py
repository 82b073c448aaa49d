"""The Python session: cells without job magics run in a persistent namespace, in an
ipykernel child process of the kernel (started by the first such cell), relayed.

`Session` (session.py) is the kernel's handle on it; child.py starts and stops the
process; pump.py carries what it publishes. Importing this package is cheap: the child's
modules (jupyter_client) load when the first session starts.
"""

from ciao.session.session import Relay, Session, Stdin

__all__ = ["Relay", "Session", "Stdin"]
