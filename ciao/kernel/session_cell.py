"""Cells for the Python session: the kernel's side of ciao.session.

A session cell's messages are relayed to the notebook through the cell's Output (stream
text under its output budget, the rest as the session sent it), its `input()` goes to the
frontend on stdin, and its reply is the session's with the kernel's execution count.
"""

from __future__ import annotations

from typing import Any

from ciao.kernel.output import Output
from ciao.protocol.server import Request
from ciao.session import Session
from ciao.session.errors import SessionError


class CellRelay:
    """The session's messages for one cell, into its Output. Stream text over the output
    budget is not shown (Jupyter Server would drop it, and everything after it, for
    seconds); the cell says how much, where it resumes and at its end."""

    def __init__(self, out: Output) -> None:
        self.out = out
        self.held_bytes = 0

    def publish(
        self, msg_type: str, content: dict[str, Any], metadata: dict[str, Any], buffers: list[bytes]
    ) -> None:
        if msg_type != "stream":
            self.out.relay(msg_type, content, metadata, buffers)
            return
        name = "stderr" if content.get("name") == "stderr" else "stdout"
        text = str(content.get("text", ""))
        size = len(text.encode("utf-8", "replace"))
        if not self.out.budget.fits(size):
            self.held_bytes += size
            return
        self.close()
        self.out.stream(name, text)

    def close(self) -> None:
        """Say what was not shown, if anything was (before the next text, or at the end)."""
        if self.held_bytes:
            held, self.held_bytes = self.held_bytes, 0
            self.out.stream(
                "stderr",
                f"\n[ciao] {held:,} bytes of output not shown: over the output budget "
                "(output.max_bytes_per_second in the config; 0 turns it off)\n",
            )


class CommRelay:
    """What the session publishes in answer to a frontend's comm message."""

    def __init__(self, request: Request) -> None:
        self.request = request

    def publish(
        self, msg_type: str, content: dict[str, Any], metadata: dict[str, Any], buffers: list[bytes]
    ) -> None:
        self.request.publish(msg_type, content, metadata=metadata, buffers=buffers)


class FrontendStdin:
    """`input()` in the session asks the frontend that sent the cell, on stdin."""

    def __init__(self, request: Request) -> None:
        self.request = request

    def ask(self, content: dict[str, Any]) -> str:
        return self.request.ask_input(content)

    def answer(self, ask_id: str, timeout: float) -> dict[str, Any] | None:
        return self.request.server.input_reply(ask_id, timeout)

    def forget(self, ask_id: str) -> None:
        self.request.server.forget_input(ask_id)


class ValueRelay(CellRelay):
    """A value the kernel leaves in the session: its execute_result stays there (`_`,
    Out[n]) and is not shown, the kernel shows the value its own way; the rest (an error)
    is relayed."""

    def publish(
        self, msg_type: str, content: dict[str, Any], metadata: dict[str, Any], buffers: list[bytes]
    ) -> None:
        if msg_type != "execute_result":
            super().publish(msg_type, content, metadata, buffers)


def session_value(session: Session, code: str, out: Output, count: int) -> None:
    """Evaluate `code` in the session as cell `count` (starting the session if it is not
    running), so its value is `_` and Out[count] there; SessionError if it fails."""
    _announce(session.start(), out)
    relay = ValueRelay(out)
    try:
        reply = session.execute(code, relay, None, count=count, silent=False, store_history=True)
    finally:
        relay.close()
    if reply.get("status") == "error":
        raise SessionError(
            f"the session could not take the value: {reply.get('ename')}: {reply.get('evalue')}"
        )


def _announce(ended: str | None, out: Output) -> None:
    """Say that a fresh session started where the last one ended (its names are gone)."""
    if ended:
        out.stream(
            "stderr",
            f"[ciao] a fresh Python session started: the last one {ended}, and the names it "
            "held are gone\n",
        )


def run_session_cell(
    session: Session, code: str, request: Request, out: Output, count: int, store_history: bool
) -> dict[str, Any]:
    """Run a cell in the session (starting it, or a fresh one after a crash, announced);
    the execute_reply's fields. An error of the cell's code is in the reply (the session
    published it already); the session failing is a SessionError raised."""
    _announce(session.start(), out)
    relay = CellRelay(out)
    allowed = request.field("allow_stdin", bool, True) and not out.silent
    try:
        reply = session.execute(
            code,
            relay,
            FrontendStdin(request) if allowed else None,
            count=count,
            silent=out.silent,
            store_history=store_history,
            user_expressions=request.field("user_expressions", dict, {}),
        )
    finally:
        relay.close()
    if reply.get("status") == "error":
        return {
            "status": "error",
            "ename": str(reply.get("ename", "Error")),
            "evalue": str(reply.get("evalue", "")),
            "traceback": list(reply.get("traceback") or []),
        }
    return {
        "status": "ok",
        "payload": list(reply.get("payload") or []),
        "user_expressions": dict(reply.get("user_expressions") or {}),
    }
