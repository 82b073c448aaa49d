"""Working out what a job cell carries, for a notebook of 200 cells (issue 21: <= 50 ms).

The history is a realistic notebook: imports, helper functions calling each other, a model
class, data cells assigning values, IPython magics and shell escapes, and earlier job
cells. Measured: the first job cell after 200 cells (every cell parsed once, cold), and the
next one (the per-cell parse is cached), with the files beside the notebook collected too
(a folder of 200 small files, `import utils`). Printed and written to
bench/results/carry.json; never asserted.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

from ciao.interpreter.carry import HistoryCell, cell_bindings, needed
from ciao.s2i.files import collect, imported_modules

CELLS = 200
RUNS = 7

TEMPLATES = [
    "import numpy as np\nimport torch\nfrom torch import nn\nimport pandas as pd\n",
    "def load_{i}(path):\n    frame = pd.read_csv(path)\n    return frame.to_numpy() * SCALE\n",
    "class Net{i}(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
    "        self.layer = nn.Linear(8, 1)\n\n    def forward(self, x):\n"
    "        return torch.relu(self.layer(x)) + helper_{j}(x)\n",
    "def helper_{i}(x):\n    return x * {i} + load_{j}\n",
    "SCALE = {i}\ndata_{i} = np.arange({i})\n%timeit data_{i}.sum()\n!ls\n",
    "%framework=pytorch\n%nodes=2\nimport os\nmodel = Net{j}()\nprint(os.environ['RANK'])\n",
    "frame_{i} = pd.DataFrame({{'a': range(10)}})\nframe_{i}.describe()\n",
]


def history() -> list[HistoryCell]:
    cells = []
    for i in range(1, CELLS + 1):
        template = TEMPLATES[i % len(TEMPLATES)]
        code = template.format(i=i, j=max(1, i - 7))
        cells.append(HistoryCell(i, code, in_session=not code.startswith("%framework")))
    return cells


JOB = (
    "%framework=pytorch\n%nodes=2\nimport utils\n"
    "model = Net{a}()\nprint(helper_{b}(data_{c}), utils.double(2))\n"
)


def latest(template: int, back: int) -> int:
    """The cell number of the `back`-th latest cell made from TEMPLATES[template]."""
    numbers = [i for i in range(1, CELLS + 1) if i % len(TEMPLATES) == template]
    return numbers[-1 - back]


def folder() -> Path:
    root = Path(tempfile.mkdtemp(prefix="ciao-bench-carry-"))
    (root / "utils.py").write_text("import helpers\n\ndef double(x):\n    return 2 * x\n")
    (root / "helpers.py").write_text("X = 1\n")
    (root / "data").mkdir()
    for n in range(200):
        (root / "data" / f"part-{n}.csv").write_text("a,b\n1,2\n")
    (root / ".gitignore").write_text("*.log\n")
    return root


def measure() -> dict[str, float]:
    cells = history()
    root = folder()
    cold, warm, with_files = [], [], []
    for run in range(RUNS):
        cell_bindings.cache_clear()
        job = JOB.format(a=latest(2, run), b=latest(3, run), c=latest(4, run))
        began = time.perf_counter()
        found = needed(job, cells)
        cold.append(time.perf_counter() - began)
        assert found.sources and found.imports and found.values, "the bench must carry"
        began = time.perf_counter()
        needed(job, cells)
        warm.append(time.perf_counter() - began)
        began = time.perf_counter()
        sources = [job, *(c.source for c in (*found.imports, *found.sources))]
        collect(root, ["data/"], imported_modules(sources))
        with_files.append(time.perf_counter() - began)
    return {
        "needed, first job cell after 200 cells (ms)": statistics.median(cold) * 1000,
        "needed, the next job cell (ms)": statistics.median(warm) * 1000,
        "files: %files=data/ (200 files) and import utils (ms)": statistics.median(with_files)
        * 1000,
    }


def main() -> None:
    results = measure()
    for label, value in results.items():
        print(f"{label:60} {value:8.2f}")
    out = Path(__file__).with_name("results") / "carry.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"cells": CELLS, "results": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
