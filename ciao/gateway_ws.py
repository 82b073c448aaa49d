"""Remote mode helper: a Kernel Gateway websocket connection with Nagle's algorithm off.

Neither Jupyter Kernel Gateway nor jupyter_server sets TCP_NODELAY on the kernel
websocket, so every small message waits for the peer's delayed ACK: ~45 of the ~48 ms of
an execute round trip through the gateway (docs/jupyter-protocol.md).
`ciao gateway` (ciao/gateway.py, run by deploy/Dockerfile) selects it.
Imported only by the gateway process, never by the kernel.
"""

from __future__ import annotations

from typing import Any

from jupyter_server.services.kernels.connection.channels import ZMQChannelsWebsocketConnection


class NoDelayConnection(ZMQChannelsWebsocketConnection):
    """ZMQChannelsWebsocketConnection that sends each message as soon as it is written."""

    def connect(self) -> Any:
        self.websocket_handler.set_nodelay(True)
        return super().connect()
