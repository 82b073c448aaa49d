"""Valid job cells, one per magic combination the interpreter accepts; shared by the
interpreter's tests (each parses) and the manifest tests (each manifest validates)."""

VALID_CELLS = {
    # the original Go parser's ten cases
    "go-1": "%framework=tensorflow\n%ps=1\n%worker=1\nsome code here.\n",
    "go-2": "%framework=tensorflow\n%ps=1\nsome code here.\n",
    "go-3": "%framework=tensorflow\n%ps=1",
    "go-4": "%framework=tensorflow\n%worker=1\n%cleanPolicy=running",
    "go-5": "%framework=tensorflow\n%worker=1\n%cleanPolicy=all",
    "go-6": "%framework=tensorflow\n%worker=1\n%cleanPolicy=none",
    "go-8": "%framework=tensorflow\n%ps=1;%cpu=100m;%memory=100Mi",
    "go-9": "%framework=tensorflow\n%ps=1\n%worker=2;%cpu=10m;%memory=10Mi",
    "go-10": (
        "%framework=pytorch\n%master=1;%cpu=100m;%memory=100Mi\n%worker=2;%cpu=10m;%memory=10Mi"
    ),
    # beyond the original
    "no-magics": "print('hello')",
    "pytorch-master-only": "%framework=pytorch\n%master=1\nprint(1)",
    "pytorch-gpu": "%framework=pytorch\n%master=1;%gpu=1\n%worker=4;%cpu=2;%memory=8Gi;%gpu=1",
    "tf-chief-evaluator": "%framework=tensorflow\n%chief=1\n%worker=2\n%evaluator=1\n%ps=2",
    "tf-master": "%framework=tensorflow\n%master=1;%cpu=1\n%worker=1;%gpu=2",
    "whitespace": "% framework = PyTorch\n%master = 1 ; %cpu= 500m\n%worker=2;  %memory =1Gi",
    "policy-case": "%framework=pytorch\n%master=1\n%cleanPolicy=ALL",
    "zero-ps": "%framework=tensorflow\n%worker=1\n%ps=0",
    "backend": "%backend=kubeflow\n%framework=pytorch\n%master=1\n%worker=1",
    "requirements": "%master=1\n%requirements=pandas==2.2,numpy>=1.26,<2\nimport pandas",
}


def pruned_study(pid_file: str) -> str:
    """A study the median rule prunes: grid with seed 5 runs x = 1, 2, 3, then 9 (three
    finished trials, then one reporting a worse loss every epoch, which writes its pid to
    `pid_file` and would run for hours unless stopped)."""
    return f"""%tune x=choice(1,2,3,9)
%objective=minimize:loss
%algorithm=grid;%seed=5;%earlyStopping=median
import os, time
import ciao.hp
x = ciao.hp.int("x")
if x == 9:
    open({pid_file!r}, "w").write(str(os.getpid()))
for epoch in range(5 if x < 9 else 100000):
    print(f"epoch={{epoch}} loss={{x * (10 - epoch)}}", flush=True)
    time.sleep(0.01 if x < 9 else 0.05)
"""
