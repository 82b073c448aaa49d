"""How much IOPub output a cell may send: a sliding window, counted as Jupyter Server counts.

Jupyter Server (`jupyter_server/services/kernels/connection/channels.py`) drops every IOPub
message while, over the last `rate_limit_window` (3 s), the kernel sent more than
`iopub_data_rate_limit` (1,000,000 bytes/s of `stream` messages, all their frames) or
`iopub_msg_rate_limit` (1,000 messages/s of any type but status, comm_open and
execute_input); its counters restart when the kernel goes idle. Staying under a budget below
those limits is what keeps every message the cell sends on the user's screen.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

#: The server's window, seconds.
WINDOW = 3.0
#: Bytes a stream message takes on the wire besides its text (header, parent header, ids,
#: signature): about 450 in practice; counted generously.
MESSAGE_OVERHEAD = 600


class OutputBudget:
    """What was sent in the last WINDOW seconds, and whether a message more fits."""

    def __init__(
        self,
        bytes_per_second: int,
        messages_per_second: int,
        window: float = WINDOW,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_bytes = int(bytes_per_second * window)  # 0: unlimited
        self.max_messages = int(messages_per_second * window)
        self.window = window
        self._clock = clock
        self._sent: deque[tuple[float, int]] = deque()
        self._bytes = 0

    @property
    def unlimited(self) -> bool:
        return not self.max_bytes and not self.max_messages

    def fits(self, nbytes: int = 0) -> bool:
        """Whether a message of `nbytes` of stream text (0: not a stream) may go now."""
        return self.wait_for(nbytes) == 0.0

    def wait_for(self, nbytes: int = 0) -> float:
        """Seconds until a message of `nbytes` fits (0.0: now). A message larger than the
        whole window's bytes fits once nothing else is in the window."""
        if self.unlimited:
            return 0.0
        now = self._clock()
        self._expire(now)
        cost = nbytes + MESSAGE_OVERHEAD if nbytes else 0
        over_messages = self.max_messages and len(self._sent) + 1 > self.max_messages
        over_bytes = self.max_bytes and cost and self._bytes + cost > self.max_bytes
        if not over_messages and not over_bytes:
            return 0.0
        if not self._sent:
            return 0.0
        # the earliest moment enough of the window has expired
        freed_bytes, needed = 0, self._bytes + cost - self.max_bytes if over_bytes else 0
        count_needed = len(self._sent) + 1 - self.max_messages if over_messages else 0
        for index, (sent_at, size) in enumerate(self._sent):
            freed_bytes += size
            if freed_bytes >= needed and index + 1 >= count_needed:
                return max(0.0, sent_at + self.window - now)
        return max(0.0, self._sent[-1][0] + self.window - now)

    def spend(self, nbytes: int = 0) -> None:
        """A message was sent (`nbytes` of stream text; 0 for any other message)."""
        if self.unlimited:
            return
        cost = nbytes + MESSAGE_OVERHEAD if nbytes else 0
        self._sent.append((self._clock(), cost))
        self._bytes += cost

    def _expire(self, now: float) -> None:
        sent = self._sent
        while sent and sent[0][0] + self.window <= now:
            self._bytes -= sent.popleft()[1]
