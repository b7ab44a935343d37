"""conv-dims.py and pool-dims.py, run the way a student runs them.

Runs that need Keras share one subprocess (TensorFlow is imported once, the
scripts are run in it with runpy); everything else is a plain, fast
`python <script> ...` subprocess.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cnn_course.shapes import CIFAR10_STACK

REPO = Path(__file__).resolve().parents[1]
ON_EVERY_BACKEND = True  # cheap, and Keras's errors differ by backend (conftest.py)
CONV, POOL = "conv-dims.py", "pool-dims.py"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Return an environment for the scripts: no network, Keras's home in a temp folder."""
    home = tmp_path_factory.mktemp("keras_home")
    env = {
        k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS", "PYTHONPATH")
    }
    env.update(
        KERAS_HOME=str(home),
        CNN_COURSE_DATA=str(home / "data"),
        CNN_COURSE_OFFLINE="1",
        KERAS_BACKEND="tensorflow",
        PYTHONPATH=str(REPO),
    )
    return env


def run(env, script, *args):
    """Return the finished `python script args...` process, run from the repo root."""
    return subprocess.run(
        [sys.executable, script, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


# ---- without Keras: fast subprocesses ---------------------------------------


def test_no_keras_default_conv_prints_the_lesson_working(env):
    result = run(env, CONV, "--no-keras")
    assert result.returncode == 0, result.stderr
    assert "ceil((200 - 2 + 1) / 2) = ceil(99.5) = 100" in result.stdout
    assert "16 x 2 x 2 x 1 + 16 = 80" in result.stdout
    assert "Output shape (None, 100, 100, 16), 80 parameters" in result.stdout


def test_no_keras_default_pool_prints_the_lesson_working(env):
    result = run(env, POOL, "--no-keras")
    assert result.returncode == 0, result.stderr
    assert "Output shape (None, 50, 50, 15), 0 parameters" in result.stdout


@pytest.mark.parametrize(
    "script, args, expected",
    [
        (
            CONV,
            ["--padding", "same", "--strides", "3", "--input-shape", "32,32,3"],
            ["ceil(H_in / S) = ceil(32 / 3) = ceil(10.6667) = 11", "(None, 11, 11, 16), 208 parameters"],
        ),
        (
            CONV,
            ["--kernel-size", "3x5", "--strides", "2x1", "--filters", "8", "--input-shape", "28,27,3"],
            [
                "K x F_h x F_w x D_in + K = 8 x 3 x 5 x 3 + 8 = 368",
                "ceil((W_in - F_w + 1) / S_w)",
                "(None, 13, 23, 8), 368 parameters",
            ],
        ),
        (
            POOL,
            ["--pool-size", "3x2", "--input-shape", "10,10,1"],
            ["strides S = 3x2", "(None, 3, 5, 1), 0 parameters"],
        ),
        (POOL, ["--type", "global-average", "--input-shape", "7,7,512"], ["Output shape (None, 512), 0 parameters"]),
    ],
)
def test_no_keras_flag_combinations(env, script, args, expected):
    result = run(env, script, *args, "--no-keras")
    assert result.returncode == 0, result.stderr
    for text in expected:
        assert text in result.stdout


@pytest.mark.parametrize("script", [CONV, POOL])
def test_no_keras_stack_traces_the_cifar10_cnn(env, script):
    result = run(env, script, "--input-shape", "32,32,3", "--stack", CIFAR10_STACK, "--no-keras")
    assert result.returncode == 0, result.stderr
    assert "(None, 1024)" in result.stdout
    assert "Total params: 528,054" in result.stdout


def test_help_documents_the_stack_with_the_cifar10_cnn(env):
    result = run(env, CONV, "--help")
    assert result.returncode == 0
    assert CIFAR10_STACK in result.stdout and "528,054" in result.stdout


@pytest.mark.parametrize("script", [CONV, POOL])
def test_no_keras_imports_no_tensorflow(env, script):
    # what makes --no-keras quick; how quick is the benchmarks' business, not a test's
    probe = (
        "import runpy, sys\n"
        f"sys.argv = [{script!r}, '--no-keras']\n"
        "try:\n"
        f"    runpy.run_path({script!r}, run_name='__main__')\n"
        "except SystemExit as exit:\n"
        "    assert not exit.code, exit.code\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "HEAVY []" in result.stdout


BAD_INPUTS = [
    (CONV, ["--kernel-size", "0"], "--kernel-size 0: must be a positive integer"),
    (CONV, ["--kernel-size=-3"], "--kernel-size -3: must be a positive integer"),
    (CONV, ["--kernel-size", "2.5"], "--kernel-size 2.5: must be a positive integer"),
    (CONV, ["--kernel-size", "3x"], "--kernel-size 3x: must be N or HxW"),
    (CONV, ["--strides", "0x2"], "--strides 0x2: must be a positive integer"),
    (CONV, ["--strides", "two"], "--strides two: must be N or HxW"),
    (CONV, ["--filters", "0"], "--filters 0: must be a positive integer"),
    (CONV, ["--filters", "1.5"], "--filters 1.5: must be a positive integer"),
    (CONV, ["--padding", "full"], "--padding full: must be valid or same"),
    (CONV, ["--input-shape", "32,32"], "--input-shape 32,32: must be H,W,D"),
    (CONV, ["--input-shape", "32,0,3"], "--input-shape 32,0,3: must be H,W,D"),
    (CONV, ["--input-shape", "a,b,c"], "--input-shape a,b,c: must be H,W,D"),
    (
        CONV,
        ["--kernel-size", "5", "--input-shape", "4,10,1"],
        "kernel_size 5x5 does not fit the 4x10 input with padding='valid'",
    ),
    (CONV, ["--activation", "re-lu"], "--activation re-lu: must be an activation name"),
    (CONV, ["--stack", "conv:16:2", "--filters", "8"], "leave out --filters"),
    (CONV, ["--stack", "conv:0:2"], "--stack layer 1 ('conv:0:2'): filters 0: must be a positive"),
    (CONV, ["--stack", "conv:8:3,bogus:2"], "--stack layer 2 ('bogus:2'): unknown layer 'bogus'"),
    (CONV, ["--stack", "conv:8:3:3:4"], "--stack layer 1 ('conv:8:3:3:4'): strides given twice"),
    (CONV, ["--stack", "flatten,pool:2"], "--stack layer 2 ('pool:2'): needs an H x W x D input"),
    (CONV, ["--stack", "conv:8:3,,pool:2"], "--stack layer 2: is empty"),
    (CONV, ["--stack", "pool:300"], "pool_size 300x300 does not fit the 200x200 input"),
    (CONV, ["--stack", "dropout:1.5"], "rate 1.5: must be a number from 0"),
    (POOL, ["--pool-size", "-2"], "--pool-size -2: must be a positive integer"),
    (POOL, ["--strides", "1.5"], "--strides 1.5: must be a positive integer"),
    (POOL, ["--padding", "causal"], "--padding causal: must be valid or same"),
    (POOL, ["--type", "min"], "--type min: must be max, average or global-average"),
    (POOL, ["--type", "global-average", "--strides", "2"], "--strides does not apply"),
    (POOL, ["--input-shape", "100,100"], "--input-shape 100,100: must be H,W,D"),
    (POOL, ["--pool-size", "3x101"], "pool_size 3x101 does not fit the 100x100 input"),
    (CONV, ["--activation", "glu"], "--activation glu: GLU halves the channels"),
    (CONV, ["--stack", "conv:3:2:glu"], "--stack layer 1 ('conv:3:2:glu'): activation glu: GLU halves"),
]

# Layers far too big for any machine's memory: refused before Keras starts
# (they used to end in a ResourceExhaustedError traceback or the OOM killer).
TOO_BIG = [
    (
        CONV,
        ["--filters", "100000", "--kernel-size", "100", "--input-shape", "200,200,1000"],
        "the layer has 1,000,000,100,000 parameters: building it with Keras needs about 11.8 TiB of memory",
        "Output shape (None, 51, 51, 100000), 1,000,000,100,000 parameters",
    ),
    (
        CONV,
        ["--input-shape", "200,200,1000", "--stack", "conv:16:1,flatten,dense:100000"],
        "the stack has 64,000,116,016 parameters: building it with Keras needs about 774.9 GiB",
        "Total params: 64,000,116,016",
    ),
    (
        POOL,
        ["--input-shape", "200,200,1000", "--stack", "pool:2,flatten,dense:1000000"],
        "the stack has 10,000,001,000,000 parameters",
        "Total params: 10,000,001,000,000",
    ),
]
BAD_INPUTS += [(script, args, message) for script, args, message, _ in TOO_BIG]


@pytest.mark.parametrize("script, args, message", BAD_INPUTS, ids=[" ".join([s, *a]) for s, a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_and_exit_status_2(env, script, args, message):
    result = run(env, script, *args)  # rejected before Keras is imported, so quick
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{script}: error: ")
    assert message in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("script, args, message, answer", TOO_BIG, ids=[" ".join([s, *a]) for s, a, _, _ in TOO_BIG])
def test_too_big_layers_still_get_the_arithmetic(env, script, args, message, answer):
    result = run(env, script, *args, "--no-keras")
    assert result.returncode == 0, result.stderr
    assert answer in result.stdout


def test_the_memory_refusal_gives_the_limit(env):
    result = run(env, *TOO_BIG[0][:1], *TOO_BIG[0][1])
    assert re.search(
        r"over the limit of [0-9.,]+ [GMT]i?B \(80% of the memory available now\); "
        r"--no-keras still prints the working$",
        result.stderr.strip(),
    ), result.stderr


# ---- with Keras: one shared subprocess ----------------------------------------

DRIVER = r"""
import contextlib, io, json, runpy, sys
from cnn_course import shapes

results = []
for case in json.load(sys.stdin):
    saved = {}
    if case.get("oom"):  # building the layer runs out of memory all the same
        import keras
        def oom(*args, **kwargs):
            raise MemoryError()
        keras.layers.Conv2D.build, saved_build = oom, keras.layers.Conv2D.build
    for name in case.get("break", []):  # make a formula wrong on purpose
        saved[name] = original = getattr(shapes, name)
        if name == "conv_params":
            setattr(shapes, name, lambda *a, _f=original: _f(*a) + 1)
        else:
            setattr(shapes, name, lambda *a, _f=original: tuple(n + 1 for n in _f(*a)))
    out, err, code = io.StringIO(), io.StringIO(), 0
    sys.argv = [case["script"], *case["args"]]
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            runpy.run_path(case["script"], run_name="__main__")
    except SystemExit as exit:
        code = exit.code or 0
    for name, function in saved.items():
        setattr(shapes, name, function)
    if case.get("oom"):
        keras.layers.Conv2D.build = saved_build
    results.append({"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()})
print("RESULTS " + json.dumps(results))
"""

KERAS_CASES = {
    "conv default": (CONV, []),
    "pool default": (POOL, []),
    "conv rectangular same": (
        CONV,
        [
            "--kernel-size",
            "3x5",
            "--strides",
            "2x1",
            "--padding",
            "same",
            "--filters",
            "8",
            "--input-shape",
            "28,27,3",
            "--activation",
            "sigmoid",
        ],
    ),
    "conv valid stride 3": (
        CONV,
        ["--kernel-size", "5", "--strides", "3", "--input-shape", "32,32,3", "--activation", "none"],
    ),
    "pool average same": (
        POOL,
        ["--type", "average", "--pool-size", "3", "--strides", "1", "--padding", "same", "--input-shape", "7,9,4"],
    ),
    "pool rectangular": (POOL, ["--pool-size", "3x2", "--input-shape", "10,10,1"]),
    "pool global": (POOL, ["--type", "global-average", "--input-shape", "7,7,512"]),
    "conv stack": (CONV, ["--input-shape", "32,32,3", "--stack", CIFAR10_STACK]),
    "pool stack": (POOL, ["--input-shape", "32,32,3", "--stack", "avgpool:3:1:same,gap,dense:4"]),
    "bad activation": (CONV, ["--activation", "relux"]),
    "bad stack activation": (CONV, ["--stack", "conv:4:2:relux"]),
    "conv formula broken": (CONV, [], ["conv_params"]),
    "pool formula broken": (POOL, [], ["pool_output_shape"]),
    "conv threshold": (CONV, ["--activation", "threshold"]),
    "stack threshold": (CONV, ["--stack", "conv:4:2,dense:3:threshold"]),
    "conv softmax": (CONV, ["--activation", "softmax", "--filters", "5"]),
    "conv out of memory": (CONV, [], [], True),
    "stack out of memory": (POOL, ["--stack", "conv:4:2,pool:2"], [], True),
}


@pytest.fixture(scope="module")
def keras_runs(env, keras_backend):
    """Return {case name: {'code', 'stdout', 'stderr'}} and the driver's own stderr, on each backend."""
    cases = [
        {"script": s, "args": a, "break": rest[0] if rest else [], "oom": rest[1:] == [True]}
        for s, a, *rest in KERAS_CASES.values()
    ]
    result = subprocess.run(
        [sys.executable, "-c", DRIVER],
        input=json.dumps(cases),
        cwd=REPO,
        env=dict(env, KERAS_BACKEND=keras_backend),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(out for out in result.stdout.splitlines() if out.startswith("RESULTS "))
    runs = json.loads(line[len("RESULTS ") :])
    return dict(zip(KERAS_CASES, runs)), result.stderr


def agreed(run):
    """Assert a run succeeded and Keras agreed with the formulas; return its stdout."""
    assert run["code"] == 0, run["stderr"]
    assert "Keras agrees" in run["stdout"] and "MISMATCH" not in run["stdout"]
    return run["stdout"]


def test_conv_default_is_the_lesson_layer(keras_runs):
    out = agreed(keras_runs[0]["conv default"])
    summary, working = out.split("The working:")
    assert "Conv2D" in summary and "(None, 100, 100, 16)" in summary and "80" in summary
    assert "16 x 2 x 2 x 1 + 16 = 80" in working
    assert "Keras agrees: output (None, 100, 100, 16), 80 parameters" in working


def test_pool_default_is_the_lesson_layer(keras_runs):
    out = agreed(keras_runs[0]["pool default"])
    summary, working = out.split("The working:")
    assert "MaxPooling2D" in summary and "(None, 50, 50, 15)" in summary
    assert "Keras agrees: output (None, 50, 50, 15), 0 parameters" in working


@pytest.mark.parametrize(
    "case, shape, params",
    [
        ("conv rectangular same", "(None, 14, 27, 8)", "368"),
        ("conv valid stride 3", "(None, 10, 10, 16)", "1,216"),
        ("pool average same", "(None, 7, 9, 4)", "0"),
        ("pool rectangular", "(None, 3, 5, 1)", "0"),
        ("pool global", "(None, 512)", "0"),
    ],
)
def test_flag_combinations_agree_with_keras(keras_runs, case, shape, params):
    out = agreed(keras_runs[0][case])
    assert f"Keras agrees: output {shape}, {params} parameters" in out


def test_stack_traces_the_cifar10_cnn_layer_by_layer(keras_runs):
    out = agreed(keras_runs[0]["conv stack"])
    for row in ["(None, 32, 32, 16)", "(None, 16, 16, 16)", "(None, 4, 4, 64)", "(None, 1024)", "512,500", "5,010"]:
        assert row in out
    assert "Total params: 528,054" in out
    assert "Keras agrees: every layer, 528,054 parameters in total" in out


def test_stack_with_average_and_global_pooling(keras_runs):
    out = agreed(keras_runs[0]["pool stack"])
    assert "(None, 32, 32, 3)" in out and "(None, 3)" in out and "(None, 4)" in out
    assert "Total params: 16" in out


@pytest.mark.parametrize(
    "case, message",
    [
        ("bad activation", "--activation relux: Keras has no activation of that name"),
        ("bad stack activation", "activation 'relux': Keras has no activation of that name"),
        ("conv threshold", "--activation threshold: Keras cannot apply it by name alone (TypeError: "),
        ("stack threshold", "--stack layer 2 ('dense:3:threshold'): activation 'threshold': Keras cannot apply"),
        ("conv out of memory", "conv-dims.py: error: the layer: Keras ran out of memory building it (MemoryError)"),
        ("stack out of memory", "pool-dims.py: error: the stack: Keras ran out of memory building it (MemoryError)"),
    ],
)
def test_refusals_with_keras_are_one_line_and_exit_status_2(keras_runs, case, message):
    run = keras_runs[0][case]
    assert run["code"] == 2
    lines = run["stderr"].strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in run["stderr"]


@pytest.mark.parametrize("case", ["conv formula broken", "pool formula broken"])
def test_a_wrong_formula_is_reported_loudly(keras_runs, case):
    run = keras_runs[0][case]
    assert run["code"] == 1
    assert "!!! MISMATCH" in run["stdout"] and "Keras agrees" not in run["stdout"]


def test_an_activation_that_keeps_the_shape_agrees(keras_runs):
    assert "Keras agrees: output (None, 100, 100, 5), 25 parameters" in agreed(keras_runs[0]["conv softmax"])


def test_tensorflow_start_up_noise_is_silenced(keras_runs):
    assert "oneDNN custom operations" not in keras_runs[1]
