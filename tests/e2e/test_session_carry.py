"""The notebook of issue 21, end to end: a session cell defines a model and a helper, another
makes a small dataset in the session, and a DDP job cell trains the model on it, with no
marking; locally, on the test cluster's operator v1 and on its Trainer v2. What only the
session holds travels by value; what cannot travel is refused before anything is created.
"""

from __future__ import annotations

import re

import pytest
from kernel_client import (
    HAS_TORCH,
    by_replica,
    everything_said,
    kernel_on,
    run,
    stream_text,
)

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(not HAS_TORCH, reason="the notebook trains a torch model"),
]

MODEL = """\
import torch
from torch import nn
import torch.distributed as dist

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(4, 1)

    def forward(self, x):
        return self.layer(x)

def check(batch):
    if batch.shape[1] != 4:
        raise ValueError(f"expected 4 features, got {batch.shape[1]}")
    return batch
"""

DATA = """\
torch.manual_seed(0)
features = torch.randn(32, 4)
targets = features.sum(dim=1, keepdim=True)
print(features.shape)
"""

TRAIN = """\
%framework=pytorch
%master=1
%worker=1
dist.init_process_group("gloo")
rank = dist.get_rank()
model = nn.parallel.DistributedDataParallel(Net())
optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
shard = check(features[rank::2])
for step in range(20):
    optimizer.zero_grad()
    loss = ((model(shard) - targets[rank::2]) ** 2).mean()
    loss.backward()
    optimizer.step()
print(f"rank {rank} trained: {loss.item() < 5}")
dist.barrier()
dist.destroy_process_group()
"""


@pytest.fixture(scope="module", params=["local", "v1", "v2"])
def kc(request, tmp_path_factory):
    home = tmp_path_factory.mktemp(f"session-{request.param}")
    with kernel_on(request.param, home) as (client, _):
        yield client


def test_a_model_and_data_from_the_session_train_in_a_ddp_job(kc):
    model, _ = run(kc, MODEL)
    data, messages = run(kc, DATA)
    assert (model["status"], data["status"]) == ("ok", "ok")
    assert "torch.Size([32, 4])" in stream_text(messages)

    content, messages = run(kc, TRAIN)

    out = stream_text(messages)
    assert content["status"] == "ok", (content, out)
    carried = re.search(r"carried: (.*)", out)
    assert carried, out
    assert "Net, check (In [" in carried.group(1) and "features, targets (In [" in carried.group(1)
    lines = [line for replica in by_replica(out).values() for line in replica]
    assert sorted(line for line in lines if "trained" in line) == [
        "rank 0 trained: True",
        "rank 1 trained: True",
    ]


def test_an_exception_in_a_carried_helper_names_its_cell_and_line(kc):
    model, _ = run(kc, MODEL)
    run(kc, "wide = torch.randn(2, 5)")

    content, messages = run(kc, "%framework=pytorch\n%master=1\ncheck(wide)\n")

    assert content["status"] == "error"
    text = everything_said(content, messages)
    assert f"In [{model['execution_count']}], line 15, in check" in text, text
    assert "ValueError: expected 4 features, got 5" in text


# refused before anything is planned: the backend does not matter
@pytest.mark.parametrize("kc", ["local"], indirect=True)
def test_a_value_too_large_to_travel_is_refused_naming_it_and_its_size(kc):
    made, _ = run(kc, "huge = bytes(200 * 1024 * 1024)")

    content, _ = run(kc, "%framework=pytorch\n%master=1\nprint(len(huge))\n")

    assert content["status"] == "error"
    message = content["evalue"]
    assert f"huge (made in In [{made['execution_count']}]) is 200.0 MiB" in message, message
    assert "%files" in message and "volume" in message
    run(kc, "del huge")


# refused before anything is planned: the backend does not matter
@pytest.mark.parametrize("kc", ["local"], indirect=True)
def test_a_value_the_session_cannot_pickle_is_refused_naming_it(kc):
    run(kc, "import threading\nlock = threading.Lock()")

    content, _ = run(kc, "%framework=pytorch\n%master=1\nprint(lock)\n")

    assert content["status"] == "error"
    assert "lock (made in In [" in content["evalue"] and "cannot be pickled" in content["evalue"]
