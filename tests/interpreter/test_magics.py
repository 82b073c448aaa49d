"""The magic grammar, as a specification: what a cell's magic lines mean, and every error."""

from __future__ import annotations

import re
import subprocess
import sys
import traceback
from html import unescape

import pytest
from cells import VALID_CELLS

from ciao.errors import MagicError, MagicErrors
from ciao.interpreter.magics import MAGICS, MagicInterpreter, help_text
from ciao.interpreter.types import (
    ConfigCommand,
    HelpCommand,
    Interpreter,
    JobCommand,
    JobsCommand,
    LogsCommand,
    MetricsCommand,
    Parameter,
    Resources,
)

DEFAULT = Resources(cpu="500m", memory="1Gi")
DEFAULTS = {"ps": DEFAULT, "worker": DEFAULT, "master": DEFAULT}


@pytest.fixture
def interp() -> MagicInterpreter:
    return MagicInterpreter(DEFAULTS, name_factory=lambda: "ciao-test")


def errors_of(interp: MagicInterpreter, code: str) -> list[MagicError]:
    with pytest.raises(MagicErrors) as caught:
        interp.preprocess(code)
    return caught.value.errors


def only_error(interp: MagicInterpreter, code: str) -> MagicError:
    errors = errors_of(interp, code)
    assert len(errors) == 1, [str(e) for e in errors]
    return errors[0]


def assert_error(error: MagicError, line: int, magic: str, *words: str) -> None:
    """The error points at the line and the magic, and its text names what is allowed."""
    assert (error.line, error.magic) == (line, magic), str(error)
    assert str(error).startswith(f"line {line}: {magic}: ")
    for word in words:
        assert word in error.message, (word, error.message)


def test_is_an_interpreter() -> None:
    interp: Interpreter = MagicInterpreter()
    assert interp.preprocessed_code("x = 1") == "x = 1"


# --- The original Go parser's ten cases (pkg/interpreter/simple/simple_test.go) ---------------


def test_go_case_1_tensorflow_ps_and_worker_get_default_resources(interp) -> None:
    p = interp.preprocess("%framework=tensorflow\n%ps=1\n%worker=1\nsome code here.\n")
    assert p.framework == "tensorflow"
    assert (p.count("ps"), p.count("worker"), p.count("master")) == (1, 1, 0)
    assert p.resources("ps") == p.resources("worker") == DEFAULT
    assert p.clean_policy is None


@pytest.mark.parametrize(
    "code", ["%framework=tensorflow\n%ps=1\nsome code here.\n", "%framework=tensorflow\n%ps=1"]
)
def test_go_cases_2_3_tensorflow_ps_only_gets_a_worker_to_run_the_code(interp, code) -> None:
    # The Go parser returned PS 1 and no worker: a TFJob that never finishes. The code
    # needs a replica that runs it, so a TF cell naming no chief/master/worker gets one worker.
    p = interp.preprocess(code)
    assert p.framework == "tensorflow"
    assert p.count("ps") == 1
    assert p.count("worker") == 1
    assert p.resources("ps") == DEFAULT


@pytest.mark.parametrize(
    ("value", "policy"), [("running", "Running"), ("all", "All"), ("none", "None")]
)
def test_go_cases_4_to_6_clean_policy_is_sent_capitalised(interp, value, policy) -> None:
    p = interp.preprocess(f"%framework=tensorflow\n%cleanPolicy={value}")
    assert p.framework == "tensorflow"
    assert p.clean_policy == policy
    assert p.effective_clean_policy == policy


def test_go_case_7_unknown_clean_policy_is_an_error_naming_the_allowed_values(interp) -> None:
    error = only_error(interp, "%framework=tensorflow\n%cleanPolicy=test")
    assert_error(error, 2, "%cleanPolicy", "'test'", "all", "running", "none")


def test_go_case_8_ps_resources_on_its_line_others_default(interp) -> None:
    p = interp.preprocess("%framework=tensorflow\n%ps=1;%cpu=100m;%memory=100Mi")
    assert p.count("ps") == 1
    assert p.resources("ps") == Resources(cpu="100m", memory="100Mi")
    assert p.resources("worker") == DEFAULT


def test_go_case_9_each_role_line_sets_its_own_resources(interp) -> None:
    p = interp.preprocess(
        "%framework=tensorflow\n%ps=1;%cpu=100m;%memory=100Mi\n%worker=2;%cpu=10m;%memory=10Mi"
    )
    assert (p.count("ps"), p.count("worker")) == (1, 2)
    assert p.resources("ps") == Resources(cpu="100m", memory="100Mi")
    assert p.resources("worker") == Resources(cpu="10m", memory="10Mi")


def test_go_case_10_pytorch_master_and_workers(interp) -> None:
    p = interp.preprocess(
        "%framework=pytorch\n%master=1;%cpu=100m;%memory=100Mi\n%worker=2;%cpu=10m;%memory=10Mi"
    )
    assert p.framework == "pytorch"
    assert (p.count("master"), p.count("worker"), p.count("ps")) == (1, 2, 0)
    assert p.resources("master") == Resources(cpu="100m", memory="100Mi")
    assert p.resources("worker") == Resources(cpu="10m", memory="10Mi")


def test_go_preprocessed_code_keeps_blank_lines(interp) -> None:
    # The Go kernel returned "\nsome code here." (lines dropped); ours keeps every line.
    code = "%framework=tensorflow\n%ps=1\n%worker=1\nsome code here.\n"
    assert interp.preprocessed_code(code) == "\n\n\nsome code here.\n"


# --- What a valid cell means ------------------------------------------------------------------


def test_the_parameter_carries_name_code_and_roles_in_operator_order(interp) -> None:
    code = "%worker=2\n%cleanPolicy=All\n%master=1\nprint('hi')"
    p = interp.preprocess(code)
    assert isinstance(p, Parameter)
    assert p.generate_name == "ciao-test"
    assert p.code == interp.preprocessed_code(code) == "\n\n\nprint('hi')"
    assert list(p.roles) == ["master", "worker"]
    assert p.replica_names() == ["master-0", "worker-0", "worker-1"]


def test_default_names_are_ciao_and_five_lower_case_letters() -> None:
    names = {MagicInterpreter().preprocess("x = 1").generate_name for _ in range(20)}
    assert all(re.fullmatch(r"ciao-[a-z]{5}", name) for name in names)
    assert len(names) > 1


def test_a_cell_without_magics_runs_as_one_replica_of_the_main_role(interp) -> None:
    p = interp.preprocess("print('hello')")
    assert p.framework == "pytorch"
    assert {r: s.count for r, s in p.roles.items()} == {"master": 1}
    assert p.resources("master") == DEFAULT
    tf = MagicInterpreter(DEFAULTS, default_framework="tensorflow").preprocess("x = 1")
    assert tf.framework == "tensorflow"
    assert {r: s.count for r, s in tf.roles.items()} == {"worker": 1}


def test_framework_defaults_to_the_interpreter_default_and_is_case_insensitive() -> None:
    interp = MagicInterpreter(default_framework="TensorFlow")
    assert interp.preprocess("%ps=1\n%worker=1").framework == "tensorflow"
    assert interp.preprocess("%framework=PyTorch\n%master=1").framework == "pytorch"


def test_unknown_default_framework_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="mxnet"):
        MagicInterpreter(default_framework="mxnet")


def test_magic_names_are_case_insensitive(interp) -> None:
    p = interp.preprocess("%FrameWork=tensorflow\n%Worker=2;%CPU=1\n%CLEANPOLICY=RUNNING")
    assert p.count("worker") == 2
    assert p.resources("worker").cpu == "1"
    assert p.clean_policy == "Running"


def test_whitespace_is_tolerated_everywhere(interp) -> None:
    p = interp.preprocess("%master=1\n  % worker = 2 ; %cpu= 500m ;%memory =2Gi;  \n")
    assert p.count("worker") == 2
    assert p.resources("worker") == Resources(cpu="500m", memory="2Gi")
    # The Go parser failed on the space after `;`.
    assert interp.preprocess("%framework=tensorflow\n%ps=1; %cpu=1").resources("ps").cpu == "1"


def test_a_resource_magic_overrides_only_itself(interp) -> None:
    p = interp.preprocess("%master=1;%cpu=2\n%worker=1;%memory=4Gi")
    assert p.resources("master") == Resources(cpu="2", memory="1Gi")
    assert p.resources("worker") == Resources(cpu="500m", memory="4Gi")


def test_gpu_is_per_role(interp) -> None:
    p = interp.preprocess("%master=1;%gpu=1\n%worker=3;%gpu=2;%cpu=4")
    assert p.resources("master") == Resources(cpu="500m", memory="1Gi", gpu=1)
    assert p.resources("worker") == Resources(cpu="4", memory="1Gi", gpu=2)


def test_roles_without_defaults_get_unset_resources() -> None:
    p = MagicInterpreter().preprocess("%framework=tensorflow\n%chief=1\n%evaluator=1;%cpu=1")
    assert p.resources("chief") == Resources()
    assert p.resources("evaluator") == Resources(cpu="1")


def test_tensorflow_chief_and_evaluator(interp) -> None:
    p = interp.preprocess(
        "%framework=tensorflow\n%evaluator=1\n%worker=2\n%ps=2\n%chief=1;%memory=2Gi"
    )
    assert list(p.roles) == ["chief", "ps", "worker", "evaluator"]
    assert (p.count("chief"), p.count("ps"), p.count("worker"), p.count("evaluator")) == (
        1,
        2,
        2,
        1,
    )
    assert p.resources("chief").memory == "2Gi"


def test_tensorflow_master_is_the_legacy_chief(interp) -> None:
    p = interp.preprocess("%framework=tensorflow\n%master=1\n%worker=1")
    assert list(p.roles) == ["master", "worker"]


def test_a_zero_count_leaves_the_role_out(interp) -> None:
    p = interp.preprocess("%framework=tensorflow\n%ps=0;%cpu=1\n%worker=2")
    assert list(p.roles) == ["worker"]
    assert p.count("ps") == 0


def test_clean_policy_stays_unset_when_the_cell_does_not_set_it(interp) -> None:
    p = interp.preprocess("%framework=tensorflow\n%ps=1\n%worker=1")
    assert p.clean_policy is None
    assert p.effective_clean_policy == "Running"


def test_quantities_the_kubernetes_parser_accepts(interp) -> None:
    p = interp.preprocess("%master=1;%cpu=0.5;%memory=1e9\n%worker=1;%cpu=2;%memory=512M")
    assert p.resources("master") == Resources(cpu="0.5", memory="1e9")
    assert p.resources("worker") == Resources(cpu="2", memory="512M")


# --- Line numbers: magic lines are emptied, nothing else moves --------------------------------


def test_magic_lines_become_empty_lines_and_the_rest_is_byte_identical(interp) -> None:
    code = "%framework=pytorch\n\nimport os\n  %master=1;%cpu=1\n\n\tx = 1  \n%worker=2\n"
    assert interp.preprocessed_code(code) == "\n\nimport os\n\n\n\tx = 1  \n\n"
    assert len(interp.preprocessed_code(code).split("\n")) == len(code.split("\n"))


def test_tracebacks_point_at_the_cell_line(interp) -> None:
    code = "%framework=pytorch\n%master=1\n\nx = 1\n\n%worker=1\ny = x / 0\n"
    p = interp.preprocess(code)
    with pytest.raises(ZeroDivisionError) as caught:
        exec(compile(p.code, "<cell>", "exec"), {})
    assert traceback.extract_tb(caught.value.__traceback__)[-1].lineno == 7
    assert code.split("\n")[6] == "y = x / 0"


def test_triple_quoted_strings_are_unchanged_even_with_percent_lines(interp) -> None:
    code = 'template = """\n\n%d items\n  %(name)s\n\n"""\n%master=1\nprint(template)'
    p = interp.preprocess(code)
    assert p.code == code.replace("%master=1", "")
    assert p.count("master") == 1


def test_percent_continuation_lines_are_code_not_magics(interp) -> None:
    code = 'msg = ("%d items"\n       % 3)\nn = 10 \\\n    % 4\n%master=1'
    assert interp.preprocessed_code(code) == code.removesuffix("%master=1")
    assert interp.preprocess(code).count("master") == 1


def test_windows_line_ends_are_kept(interp) -> None:
    assert interp.preprocessed_code("%master=1\r\nx = 1\r\n") == "\r\nx = 1\r\n"


# --- Errors: each names its line, its magic and what is allowed -------------------------------


def test_unknown_magic_suggests_the_closest_name(interp) -> None:
    error = only_error(interp, "%master=1\n%wroker=2")
    assert_error(error, 2, "%wroker", "unknown magic", "did you mean %worker?", "%cleanPolicy")


def test_unknown_magic_without_close_name_lists_them_all(interp) -> None:
    error = only_error(interp, "%conda install torch")
    assert_error(error, 1, "%conda", "unknown magic", "%framework", "%worker", "%gpu")
    assert "did you mean" not in error.message


@pytest.mark.parametrize(
    ("line", "magic", "words"),
    [
        ("%worker", "%worker", ["missing value", "%worker=<count>"]),
        ("%worker 2", "%worker", ["expected %worker=<count>"]),
        ("%worker=", "%worker", ["empty value", "%worker=<count>"]),
        ("%framework =  ", "%framework", ["empty value", "tensorflow|pytorch"]),
        ("%=2", "%=2", ["expected %name=value"]),
        ("%master=1; worker=2", "worker=2", ["did you mean %worker=2?"]),
    ],
)
def test_malformed_tokens(interp, line, magic, words) -> None:
    errors = [e for e in errors_of(interp, f"x = 1\n{line}") if e.magic == magic]
    assert len(errors) == 1
    assert_error(errors[0], 2, magic, *words)


def test_unknown_framework(interp) -> None:
    error = only_error(interp, "x = 1\n%framework=mxnet\n%worker=2")
    assert_error(error, 2, "%framework", "'mxnet'", "tensorflow", "pytorch")


@pytest.mark.parametrize("role", ["ps", "chief", "evaluator"])
def test_pytorch_jobs_have_only_master_and_worker(interp, role) -> None:
    error = only_error(interp, f"%framework=pytorch\n%master=1\n%{role}=1")
    assert_error(
        error, 3, f"%{role}", "pytorch jobs have only master, worker and nodes", "tensorflow"
    )


@pytest.mark.parametrize("count", ["two", "-1", "1.5", "+2", ""])
def test_replica_counts_are_whole_numbers(interp, count) -> None:
    error = only_error(interp, f"%framework=tensorflow\n%worker={count}")
    words = ["%worker=<count>"] if not count else [repr(count), "whole number >= 0"]
    assert_error(error, 2, "%worker", *words)


def test_a_magic_given_twice_names_both_lines(interp) -> None:
    errors = errors_of(interp, "%framework=pytorch\n%master=1\n%worker=1\n%framework=pytorch")
    assert_error(errors[0], 4, "%framework", "given on lines 1 and 4")
    error = only_error(interp, "%master=1\n%worker=1\n\n%worker=2")
    assert_error(error, 4, "%worker", "given on lines 2 and 4")
    error = only_error(interp, "%master=1;%cpu=1;%cpu=2")
    assert_error(error, 1, "%cpu", "given twice on line 1")


@pytest.mark.parametrize("line", ["%cpu=1", "%gpu=1;%master=1", "%memory=1Gi"])
def test_resource_magics_go_after_a_role_on_their_line(interp, line) -> None:
    magic = line.split("=")[0]
    errors = [e for e in errors_of(interp, f"%worker=1\n{line}") if e.magic == magic]
    assert_error(errors[0], 2, magic, "after the role on its line", "%worker=2;")


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("abc", ["'abc' is not a Kubernetes quantity", "500m, 1 or 2.5"]),
        ("1 core", ["not a Kubernetes quantity"]),
        ("0", ["> 0", "'0'"]),
        ("-1", ["> 0"]),
        ("inf", ["> 0"]),
    ],
)
def test_cpu_must_be_a_positive_quantity(interp, value, words) -> None:
    error = only_error(interp, f"%master=1;%cpu={value}")
    assert_error(error, 1, "%cpu", *words)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("100m", ["less than one byte", "did you mean 100Mi?"]),
        ("0.5", ["less than one byte", "512Mi, 1Gi or 2G"]),
        ("1gb", ["not a Kubernetes quantity", "512Mi, 1Gi or 2G"]),
        ("0", ["> 0"]),
    ],
)
def test_memory_must_be_at_least_one_byte(interp, value, words) -> None:
    error = only_error(interp, f"%master=1\n%worker=1;%memory={value}")
    assert_error(error, 2, "%memory", *words)


@pytest.mark.parametrize("value", ["one", "-1", "0.5", "65"])
def test_gpu_is_a_whole_number(interp, value) -> None:
    error = only_error(interp, f"%master=1;%gpu={value}")
    assert_error(error, 1, "%gpu", "whole number from 0 to 64", repr(value))


@pytest.mark.parametrize(
    ("magic", "words"),
    [
        ("%cpu=1e308", "more than 4096 cores"),
        ("%cpu=100000", "more than 4096 cores"),
        ("%memory=1Ei", "more than 64Ti"),
        ("%memory=512", "less than 1Mi; did you mean 512Mi?"),
    ],
)
def test_quantities_are_within_what_a_node_can_have(interp, magic, words) -> None:
    error = only_error(interp, f"%master=1;{magic}")
    assert words in error.message, error


def test_a_role_has_at_most_a_thousand_replicas(interp) -> None:
    error = only_error(interp, "%master=1\n%worker=10000")
    assert_error(error, 2, "%worker", "at most 1000 replicas of a role", "10000")


def test_pytorch_needs_exactly_one_master(interp) -> None:
    error = only_error(interp, "%framework=pytorch\n%master=2\n%worker=2")
    assert_error(error, 2, "%master", "exactly one master", "%master=1")
    error = only_error(interp, "%master=0\n%worker=2")
    assert_error(error, 1, "%master", "exactly one master")


def test_a_pytorch_cell_without_master_names_the_framework_line(interp) -> None:
    error = only_error(interp, "import os\n\n%framework=pytorch\n%worker=2")
    assert_error(error, 3, "%master", "needs %master=1")
    error = only_error(interp, "import os\n%worker=2")  # default framework: line 1
    assert_error(error, 1, "%master", "needs %master=1")


def test_tensorflow_has_at_most_one_chief(interp) -> None:
    error = only_error(interp, "%framework=tensorflow\n%chief=2\n%worker=1")
    assert_error(error, 2, "%chief", "at most one chief", "%chief=1")
    error = only_error(interp, "%framework=tensorflow\n%master=1\n%chief=1")
    assert_error(error, 3, "%chief", "%chief or %master, not both")


def test_tensorflow_needs_a_replica_that_runs_the_code(interp) -> None:
    error = only_error(interp, "%framework=tensorflow\n%ps=2\n%worker=0")
    assert_error(error, 3, "%worker", "chief, master or worker", "%worker=1")


def test_every_problem_is_reported_at_once_in_line_order(interp) -> None:
    code = (
        "%framework=pytorch\n"
        "%master=1;%cpu=lots\n"
        "import torch\n"
        "%worker=-2;%memory=100m\n"
        "%cleanPolicy=sometimes\n"
        "%ps=1\n"
    )
    with pytest.raises(MagicErrors) as caught:
        interp.preprocess(code)
    errors = caught.value.errors
    assert [(e.line, e.magic) for e in errors] == [
        (2, "%cpu"),
        (4, "%worker"),
        (4, "%memory"),
        (5, "%cleanPolicy"),
        (6, "%ps"),
    ]
    assert str(caught.value).startswith("5 problems in the cell's magics: line 2: %cpu: ")
    assert caught.value.lines()[0].startswith("MagicError: line 2: %cpu:")


# --- Kernel commands --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "command"),
    [
        ("%help", HelpCommand()),
        ("\n  %help  \n\n", HelpCommand()),
        ("%help worker", HelpCommand("worker")),
        ("%help %CleanPolicy", HelpCommand("cleanPolicy")),
        ("%config", ConfigCommand()),
    ],
)
def test_a_cell_of_one_command_is_a_command(interp, code, command) -> None:
    assert interp.parse(code) == command


def test_parse_returns_a_parameter_for_jobs(interp) -> None:
    assert isinstance(interp.parse("%master=1\nx = 1"), Parameter)


@pytest.mark.parametrize("code", ["%help\n%master=1", "x = 1\n%config", "%help;%master=1"])
def test_commands_mixed_with_a_job_are_errors(interp, code) -> None:
    with pytest.raises(MagicErrors) as caught:
        interp.parse(code)
    (error,) = [e for e in caught.value.errors if e.magic in ("%help", "%config")]
    assert "alone in its cell" in error.message


def test_command_arguments_are_checked(interp) -> None:
    with pytest.raises(MagicErrors) as caught:
        interp.parse("%help wrker")
    assert_error(caught.value.errors[0], 1, "%help", "did you mean %worker?")
    with pytest.raises(MagicErrors, match="takes no argument"):
        interp.parse("%config all")


def test_preprocess_refuses_a_command(interp) -> None:
    with pytest.raises(MagicErrors, match="kernel command"):
        interp.preprocess("%help")


# --- The reference ----------------------------------------------------------------------------


def test_the_table_documents_every_magic() -> None:
    kinds = {name: doc.kind for name, doc in MAGICS.items()}
    assert kinds == {
        "framework": "job",
        "files": "job",
        "chief": "role",
        "master": "role",
        "ps": "role",
        "worker": "role",
        "evaluator": "role",
        "nodes": "role",
        "cpu": "resource",
        "memory": "resource",
        "gpu": "resource",
        "cleanPolicy": "job",
        "backend": "job",
        "procs": "job",
        "runtime": "job",
        "queue": "job",
        "requirements": "job",
        "onInterrupt": "job",
        "profile": "job",
        "volume": "pod",
        "shm": "pod",
        "env": "pod",
        "envFrom": "pod",
        "nodeSelector": "pod",
        "toleration": "pod",
        "serviceAccount": "pod",
        "imagePullSecret": "pod",
        "priorityClass": "pod",
        "schedulerName": "pod",
        "image": "pod",
        "tune": "study",
        "objective": "study",
        "trials": "study",
        "parallel": "study",
        "algorithm": "study",
        "earlyStopping": "study",
        "seed": "study",
        "dryrun": "flag",
        "detach": "flag",
        "job": "flag",
        "jobs": "command",
        "status": "command",
        "logs": "command",
        "metrics": "command",
        "attach": "command",
        "delete": "command",
        "study": "command",
        "best": "command",
        "pip": "command",
        "help": "command",
        "config": "command",
    }
    assert MAGICS["framework"].values == ("tensorflow", "pytorch")
    assert MAGICS["cleanPolicy"].values == ("all", "running", "none")
    assert all(doc.summary and "Example" in doc.doc for doc in MAGICS.values())


def test_help_text_lists_every_magic_with_examples() -> None:
    text = help_text()
    for doc in MAGICS.values():
        assert doc.usage in text
    assert "%worker=2;%cpu=1;%memory=2Gi" in text
    assert "%framework=pytorch" in text


def test_help_text_of_one_magic() -> None:
    text = help_text("%Worker")
    assert text.startswith("%worker=<count>")
    assert "Example" in text
    assert "all, running, none" in help_text("cleanPolicy")


def test_every_magics_doc_fits_the_pager_and_the_tooltip() -> None:
    """Shift-Tab and %help show the doc as written: no line wider than the code's 88."""
    for doc in MAGICS.values():
        wide = [line for line in doc.doc.splitlines() if len(line) > 88]
        assert wide == [], (doc.name, wide)


def test_help_text_of_an_unknown_magic_is_an_error() -> None:
    with pytest.raises(MagicErrors, match="did you mean %memory"):
        help_text("memroy")


def test_importing_the_interpreter_does_not_import_kubernetes() -> None:
    # Kernel start-up must not pay for the kubernetes client; quantities import it lazily.
    code = (
        "import sys, ciao.interpreter.magics, ciao.interpreter.assist\n"
        "assert 'kubernetes' not in sys.modules, 'kubernetes imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_backend_magic_chooses_where_one_cell_runs():
    parameter = MagicInterpreter().preprocess("%backend=Kubeflow\n%master=1\nprint(1)")
    assert parameter.backend == "kubeflow"
    assert MagicInterpreter().preprocess("print(1)").backend == ""
    with pytest.raises(MagicErrors) as info:
        MagicInterpreter().preprocess("%backend=slurm\nprint(1)")
    assert "line 1" in str(info.value) and "local" in str(info.value)


@pytest.mark.parametrize("name", sorted(VALID_CELLS))
def test_every_shared_valid_cell_parses(name):
    assert isinstance(MagicInterpreter().parse(VALID_CELLS[name]), Parameter)


def test_dryrun_and_detach_are_flags_and_oninterrupt_a_choice():
    parameter = MagicInterpreter().preprocess(
        "%dryrun\n%detach\n%onInterrupt=Detach\n%master=1\nprint(1)"
    )
    assert (parameter.dry_run, parameter.detach, parameter.on_interrupt) == (True, True, "detach")
    plain = MagicInterpreter().preprocess("print(1)")
    assert (plain.dry_run, plain.detach, plain.on_interrupt) == (False, False, "cancel")
    with pytest.raises(MagicErrors) as info:
        MagicInterpreter().preprocess("%dryrun=yes\n%onInterrupt=ignore\nprint(1)")
    text = str(info.value)
    assert "line 1: %dryrun: takes no value" in text
    assert "line 2: %onInterrupt" in text and "cancel, detach" in text


@pytest.mark.parametrize(
    "cell, command",
    [
        ("%jobs", JobsCommand()),
        ("%jobs --all", JobsCommand(everyone=True)),
        ("%jobs --limit 5 --all", JobsCommand(everyone=True, limit=5)),
        ("%status ciao-abcde", JobCommand("status", "ciao-abcde")),
        ("%attach ciao-abcde", JobCommand("attach", "ciao-abcde")),
        ("%delete ciao-abcde", JobCommand("delete", "ciao-abcde")),
        ("%logs ciao-abcde worker-1 --tail 5", LogsCommand("ciao-abcde", "worker-1", 5)),
        ("%logs ciao-abcde --tail 5", LogsCommand("ciao-abcde", None, 5)),
        ("%logs ciao-abcde", LogsCommand("ciao-abcde")),
        ("%metrics ciao-abcde", MetricsCommand("ciao-abcde")),
        ("%metrics ciao-abcde val-loss", MetricsCommand("ciao-abcde", "val-loss")),
    ],
)
def test_job_commands_parse(cell, command):
    assert MagicInterpreter().parse(cell) == command


@pytest.mark.parametrize(
    "cell, problem",
    [
        ("%status", "missing the job's name"),
        ("%attach Not_A_Name", "is not a job name"),
        ("%delete a b", "unexpected 'b'"),
        ("%logs ciao-abcde --tail x", "--tail needs a whole number"),
        ("%logs ciao-abcde worker", "a replica is like worker-0"),
        ("%jobs all", "unexpected 'all'; write %jobs [--all] [--limit N]"),
        ("%jobs --limit 0", "--limit needs a whole number >= 1"),
        ("%jobs --limit １", "--limit needs a whole number >= 1"),
        ("%logs ciao-abcde --tail 000", "--tail needs a whole number"),
        ("%config x", "takes no argument"),
        ("%metrics", "missing the job's name; write %metrics NAME [metric]"),
        ("%metrics ciao-abcde loss acc", "unexpected 'acc' (one metric at most)"),
        ("%metrics ciao-abcde val:loss", "'val:loss' is not a metric name"),
        ("%metrics ciao-abcde\nprint(1)", "a kernel command: run it alone in its cell"),
    ],
)
def test_job_commands_say_what_is_wrong_with_their_arguments(cell, problem):
    with pytest.raises(MagicErrors) as info:
        MagicInterpreter().parse(cell)
    assert problem in str(info.value) and "line 1" in str(info.value)


# --- Nodes, processes per node and runtimes (Kubeflow Trainer v2's terms) --------------------


def test_nodes_are_a_master_and_workers_with_the_same_resources(interp) -> None:
    p = interp.preprocess("%framework=pytorch\n%nodes=3;%cpu=2;%memory=4Gi\nprint(1)")
    assert p.replica_names() == ["master-0", "worker-0", "worker-1"]
    assert p.resources("master") == p.resources("worker")
    assert p.resources("worker").cpu == "2" and p.resources("worker").memory == "4Gi"


def test_one_node_is_a_master_alone(interp) -> None:
    assert interp.preprocess("%nodes=1\nx").replica_names() == ["master-0"]


@pytest.mark.parametrize(
    ("cell", "magic", "words"),
    [
        ("%nodes=2\n%master=1", "%nodes", "not both"),
        ("%nodes=0", "%nodes", "at least one node"),
        ("%framework=tensorflow\n%nodes=2", "%nodes", "pytorch role"),
        ("%procs=0", "%procs", "from 1 to 256"),
        ("%procs=1000", "%procs", "from 1 to 256"),
        ("%framework=tensorflow\n%procs=2", "%procs", "for PyTorch cells"),
        ("%framework=tensorflow\n%runtime=torch-distributed", "%runtime", "no TensorFlow"),
        ("%runtime=Torch_Distributed", "%runtime", "not a runtime name"),
        ("%queue=Team GPUs", "%queue", "not a queue name"),
    ],
)
def test_nodes_procs_and_runtime_are_checked_where_they_are_written(
    interp, cell, magic, words
) -> None:
    (error,) = errors_of(interp, cell)
    assert error.magic == magic and words in error.message, error


def test_procs_runtime_and_queue_reach_the_parameter(interp) -> None:
    p = interp.preprocess("%nodes=2\n%procs=4\n%runtime=my-torch\n%queue=team-gpus\nx")
    assert (p.procs_per_node, p.runtime, p.queue) == (4, "my-torch", "team-gpus")
    assert interp.preprocess("%framework=tensorflow\n%queue=q\nx").queue == "q"
    assert interp.preprocess("x").procs_per_node is None


@pytest.mark.parametrize(
    ("cell", "magic", "words"),
    [
        ("%framework=pytorch\n%master=1;%cpu=１", "%cpu", "not a Kubernetes quantity"),
        ("%framework=pytorch\n%master=1;%memory=１Gi", "%memory", "not a Kubernetes quantity"),
        ("%framework=pytorch\n%master=1;%memory=1 Gi", "%memory", "not a Kubernetes quantity"),
        ("%framework=pytorch\n%master=1;%cpu=0x10", "%cpu", "not a Kubernetes quantity"),
        ("%framework=pytorch\n%master=1;%cpu=1_000", "%cpu", "not a Kubernetes quantity"),
        ("%framework=pytorch\n%master=1\n%worker=" + "9" * 5000, "%worker", "5,000 characters"),
        ("%framework=pytorch\n%master=1;%gpu=" + "9" * 5000, "%gpu", "5,000 characters"),
        ("%framework=pytorch\n%master=1\n%procs=" + "9" * 5000, "%procs", "5,000 characters"),
        ("%framework=pytorch\n%master=1;%memory=" + "9" * 5000, "%memory", "5,000 characters"),
        ("%framework=pytorch\n%master=１", "%master", "whole number"),
    ],
)
def test_numbers_are_ascii_digits_and_long_ones_are_named_not_repeated(cell, magic, words):
    """Full-width digits pass str.isdigit() but no API server; thousands of digits would
    reach int() (which refuses over 4300) and be repeated whole in the error."""
    with pytest.raises(MagicErrors) as caught:
        MagicInterpreter().parse(cell)
    (error,) = [e for e in caught.value.errors if e.magic == magic]
    assert words in error.message, error.message
    assert len(str(caught.value)) < 1024


@pytest.mark.parametrize(
    "quantity", ["500m", "1", "2.5", "1Gi", "1.5Gi", "512Mi", "2G", "1e3", ".5"]
)
def test_kubernetes_quantities_are_accepted(quantity):
    cell = f"%framework=pytorch\n%master=1;%cpu=1;%memory=2Gi\n%worker=1;%cpu={quantity}"
    if quantity.endswith(("i", "G")):
        cell = f"%framework=pytorch\n%master=1;%memory={quantity}"
    assert MagicInterpreter().parse(cell)


def test_help_as_markdown_is_a_table_of_every_magic_and_each_page_has_its_example() -> None:
    """JupyterLab shows the pager as the cell's output and breaks plain text mid-word;
    Markdown wraps at words. Rendered, every usage is one cell of a table row."""
    mistune = pytest.importorskip("mistune")
    from ciao.interpreter.docs import help_markdown

    html = mistune.create_markdown(escape=False, plugins=["table"])(help_markdown())
    row = r"<tr>\s*<td[^>]*><code[^>]*>(.*?)</code></td>\s*<td[^>]*>(.*?)</td>\s*</tr>"
    cells = re.findall(row, html)
    shown = {unescape(usage): unescape(summary) for usage, summary in cells}
    assert shown == {doc.usage: doc.summary for doc in MAGICS.values()}
    assert "<pre><code>%framework=tensorflow\n%ps=1;%cpu=500m;%memory=1Gi" in html
    one = mistune.create_markdown(escape=False)(help_markdown("requirements"))
    assert "numpy&gt;=1.26,&lt;2 is one requirement" in one
    assert "<pre><code>%requirements=pandas==2.2,scikit-learn&gt;=1.4,numpy&gt;=1.26,&lt;2" in one
    with pytest.raises(MagicErrors, match="did you mean %memory"):
        help_markdown("memroy")


def test_endless_or_zero_padded_counts_read_as_what_they_say():
    interp = MagicInterpreter()
    assert interp.parse("%framework=pytorch\n%master=1\n%worker=0000000002").count("worker") == 2
    assert interp.parse("%jobs --limit " + "9" * 5000) == JobsCommand(limit=10**9)  # all
