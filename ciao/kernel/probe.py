"""Runs inside the Python session (sent as text, never imported there): describes the
names a job cell needs and pickles the values among them.

For each name: missing; a module (it travels as an import line); or a value, pickled with
cloudpickle into `<out>/<n>.pkl`, whose size is counted to the end but whose bytes stop
being written past the cap, so a 200 MB DataFrame costs the session no second copy and
the disk no file. The answer is written to `<out>/probe.json` for the kernel to read.
"""

from __future__ import annotations

import json
import os
import types
from typing import IO, Any


class _Capped:
    """A file that counts every byte written and keeps them only up to `cap`."""

    def __init__(self, path: str, cap: int) -> None:
        self.path, self.cap, self.size = path, cap, 0
        self.handle: IO[bytes] | None = open(path, "wb")  # noqa: SIM115 - closed in finish()

    def write(self, data: bytes) -> int:
        self.size += len(data)
        if self.handle is not None:
            if self.size > self.cap:
                self.handle.close()
                os.unlink(self.path)
                self.handle = None
            else:
                self.handle.write(data)
        return len(data)

    def finish(self) -> None:
        if self.handle is not None:
            self.handle.close()


def dump(value: Any, sink: Any, namespace: dict[str, Any], by_reference: list[str]) -> set[str]:
    """cloudpickle `value` into `sink`; the notebook's functions and classes named in
    `by_reference` (they travel as source) by reference, `__main__.Net`, so a value of a
    carried class is an instance of the carried class itself in the replica. Returns the
    top-level modules whose classes and functions the pickle refers to (a module beside
    the notebook among them must travel too)."""
    import cloudpickle

    carried = {id(namespace[n]) for n in by_reference if n in namespace}
    modules: set[str] = set()

    class Pickler(cloudpickle.CloudPickler):
        def reducer_override(self, obj: Any) -> Any:
            owner = obj if isinstance(obj, type | types.FunctionType) else type(obj)
            modules.add(str(getattr(owner, "__module__", "") or "").split(".")[0])
            if id(obj) in carried and isinstance(obj, type | types.FunctionType):
                return NotImplemented  # pickle's own save_global: by reference
            return super().reducer_override(obj)

    Pickler(sink, protocol=4).dump(value)
    return modules - {"", "__main__", "builtins"}


def _describe(
    namespace: dict[str, Any],
    name: str,
    out: str,
    index: int,
    cap: int,
    by_reference: list[str],
) -> dict[str, Any]:
    if name not in namespace:
        return {"kind": "missing"}
    value = namespace[name]
    if isinstance(value, types.ModuleType):
        return {"kind": "module", "module": value.__name__}
    path = os.path.join(out, f"{index}.pkl")
    sink = _Capped(path, cap)
    try:
        modules = dump(value, sink, namespace, by_reference)
    except Exception as exc:  # a lock, a socket, a generator: it cannot travel
        sink.finish()
        if os.path.exists(path):
            os.unlink(path)
        return {"kind": "unpicklable", "error": f"{type(exc).__name__}: {exc}"}
    sink.finish()
    described: dict[str, Any] = {
        "kind": "value",
        "size": sink.size,
        "type": type(value).__name__,
        "modules": sorted(modules),
    }
    if sink.size <= cap:
        described["file"] = path
    return described


def probe(
    namespace: dict[str, Any],
    names: list[str],
    out: str,
    cap: int,
    by_reference: dict[str, list[str]],
) -> None:
    """Describe `names` of `namespace` into `out`/probe.json; `by_reference[name]`: the
    carried functions and classes defined before that value is loaded."""
    answer: dict[str, dict[str, Any]] = {}
    for index, name in enumerate(names):
        answer[name] = _describe(namespace, name, out, index, cap, by_reference.get(name, []))
    with open(os.path.join(out, "probe.json"), "w", encoding="utf-8") as handle:
        json.dump(answer, handle)


def call(names: list[str], out: str, cap: int, by_reference: dict[str, list[str]]) -> str:
    """The code the kernel sends: this file's text, then a call in a private namespace."""
    with open(__file__, encoding="utf-8") as handle:
        source = handle.read()
    arguments = f"get_ipython().user_ns, {list(names)!r}, {out!r}, {cap!r}, {by_reference!r}"
    return (
        "def _ciao_probe():\n"
        "    namespace = {}\n"
        f"    exec(compile({source!r}, '<ciao probe>', 'exec'), namespace)\n"
        f"    namespace['probe']({arguments})\n"
        "_ciao_probe()\n"
        "del _ciao_probe\n"
    )
