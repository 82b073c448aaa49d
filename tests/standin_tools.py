"""Stand-ins for the container tools (`s2i`, `docker`, `podman`), for tests of phase 2.

The real tools cannot be installed here. `StandinTools(tmp_path)` writes one small Python
script under each tool's name into a bin directory (put `tools.bin` first on PATH). Every
run appends a JSON record to `tools.log`: the tool, its argv (argv[0] as the bare name),
cwd, a few environment variables, and the files of the directory it was given (for
`s2i build <dir> ...` and `docker build ... <dir>`: text as text, binary files by size and
sha256, a .tar.gz also by its members). Each prints a few lines (stdout and
stderr), so the streaming into the cell can be checked.

They are told what to do through `tools.control(...)` (a JSON file they read at each run,
so a kernel that is already running obeys too), keyed by the tool's first two words
(`"s2i build"`, `"docker push"`):
    exit: the exit code;  lines: the lines to print instead of the usual ones;
    sleep: seconds to sleep after printing (with a child process in the same group that
    sleeps too; both pids are recorded as `pids`, to check that the group was killed);
    chatter: print a line every 10 ms, forever.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

SCRIPT = r"""#!{python}
import json, os, subprocess, sys, time
from pathlib import Path

LOG = {log!r}
CONTROL = {control!r}
tool = os.path.basename(sys.argv[0])
argv = [tool, *sys.argv[1:]]
key = " ".join(argv[:2])
try:
    control = json.loads(Path(CONTROL).read_text()).get(key, {{}})
except (OSError, ValueError):
    control = {{}}

def files_of(directory):
    # Text files as their text; others (pickles, archives) by size and hash, and an
    # archive by its members too, as a build context would hold them.
    import hashlib, tarfile
    found = {{}}
    for path in sorted(Path(directory).rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        try:
            found[str(path.relative_to(directory))] = data.decode("utf-8")
            continue
        except UnicodeDecodeError:
            pass
        entry = {{"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}}
        if path.name.endswith(".tar.gz"):
            with tarfile.open(path) as tar:
                entry["members"] = {{m.name: m.size for m in tar.getmembers()}}
        found[str(path.relative_to(directory))] = entry
    return found

record = {{
    "tool": tool,
    "argv": argv,
    "cwd": os.getcwd(),
    "env": {{k: os.environ.get(k) for k in ("HOME", "DOCKER_CONFIG", "STANDIN_MARK", "API_KEY")}},
    "pid": os.getpid(),
    "pgid": os.getpgid(0),
}}
if key == "s2i build" and len(argv) > 2 and os.path.isdir(argv[2]):
    record["files"] = files_of(argv[2])
elif argv[1:2] == ["build"] and os.path.isdir(argv[-1]):
    record["files"] = files_of(argv[-1])

if "lines" in control:
    lines = control["lines"]
elif key == "s2i build":
    lines = ["---> Installing application source ...", "!stderr: ---> Installing dependencies ...",
             "Build completed successfully"]
elif argv[1:2] == ["push"]:
    lines = ["The push refers to repository [" + argv[-1].rsplit(":", 1)[0] + "]",
             "!stderr: 5f70bf18a086: Pushed",
             argv[-1].rsplit(":", 1)[-1] + ": digest: sha256:" + "ab" * 32 + " size: 1234"]
elif argv[1:2] == ["build"]:
    lines = ["STEP 1/4: FROM base", "!stderr: STEP 2/4: COPY code.py /opt/ciao/code.py",
             "Successfully tagged " + argv[argv.index("-t") + 1]]
else:
    lines = []
if control.get("sleep"):
    nap = "import time; time.sleep(%d)" % control["sleep"]
    child = subprocess.Popen([sys.executable, "-c", nap])
    record["pids"] = [os.getpid(), child.pid]
with open(LOG, "a") as log:
    log.write(json.dumps(record) + "\n")
for line in lines:
    if line.startswith("!stderr: "):
        print(line[len("!stderr: "):], file=sys.stderr, flush=True)
    else:
        print(line, flush=True)
if control.get("sleep"):
    print("sleeping", flush=True)
    time.sleep(control["sleep"])
while control.get("chatter"):  # a tool that never stops printing
    print("still working", flush=True)
    time.sleep(0.01)
sys.exit(control.get("exit", 0))
"""


class StandinTools:
    """The stand-in tools of one test: `bin` (for PATH), `log`, and `control()`."""

    def __init__(self, root: Path, names: tuple[str, ...] = ("s2i", "docker", "podman")) -> None:
        self.root = Path(root)
        self.bin = self.root / "bin"
        self.bin.mkdir(parents=True, exist_ok=True)
        self.log_path = self.root / "tools.jsonl"
        self.control_path = self.root / "control.json"
        script = SCRIPT.format(
            python=sys.executable, log=str(self.log_path), control=str(self.control_path)
        )
        for name in names:
            path = self.bin / name
            path.write_text(script)
            path.chmod(0o755)

    def path_with_tools(self, path: str | None = None) -> str:
        """PATH with the stand-ins first (and the rest of `path`, else the current PATH)."""
        rest = os.environ.get("PATH", "") if path is None else path
        return f"{self.bin}{os.pathsep}{rest}" if rest else str(self.bin)

    def env(self, **extra: str) -> dict[str, str]:
        """The current environment with the stand-ins first on PATH."""
        return {**os.environ, "PATH": self.path_with_tools(), **extra}

    def control(self, **by_command: dict) -> None:
        """What the next runs do, keyed by `s2i_build`, `docker_push`... (`_` for space)."""
        data = {key.replace("_", " "): value for key, value in by_command.items()}
        self.control_path.write_text(json.dumps(data))

    def runs(self) -> list[dict]:
        """Every run recorded so far, in order."""
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line]

    def wait_for_runs(self, count: int, timeout: float = 20) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = self.runs()
            if len(runs) >= count:
                return runs
            time.sleep(0.02)
        raise AssertionError(f"expected {count} tool runs, got {self.runs()}")


def alive(pid: int) -> bool:
    """Whether a process with this pid still runs (a zombie counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
