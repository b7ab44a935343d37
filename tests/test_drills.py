"""The shape drills (issue 22, part 2): conv-dims.py --quiz, pool-dims.py --quiz
and the notebooks' shape_quiz() and check_answer(), driven with scripted right,
wrong and malformed answers.

The right answers here come from the question's printed text, worked out with
the formulas of cnn_course.shapes (which test_shapes.py checks against Keras);
the quiz itself checks against Keras building the layer, so a quiz that asked
one layer and checked another would mark a right answer wrong. Runs with Keras
are subprocesses on each backend (KERAS_BACKEND); the rest use --no-keras or
the formulas and are quick.
"""

import json
import re
import signal
import subprocess
import sys
import time

import nbformat
import pytest

from cnn_course import drills, shapes
from test_dims_scripts import CONV, POOL, REPO, env, run  # noqa: F401

ON_EVERY_BACKEND = True  # the quiz checks answers with Keras, and Keras's layers differ by backend

QUESTION = re.compile(
    r"^(\d+)/(\d+)\. (Conv2D|MaxPooling2D|AveragePooling2D)\((.*)\) "
    r"on an input of (\d+) x (\d+) x (\d+) ",
    re.MULTILINE,
)
PROMPT = "output height width depth, parameters?"


def questions(text):
    """Return the questions printed in a quiz's output: [(layer name, its arguments, (H, W, D))]."""
    found = []
    for match in QUESTION.finditer(text):
        arguments = eval(f"dict({match.group(4)})")  # noqa: S307 - the quiz's own printed call
        found.append((match.group(3), arguments, tuple(int(g) for g in match.groups()[4:])))
    return found


def solve(question):
    """Return the right answer to a printed question as the student types it: "H W D PARAMS"."""
    name, arguments, input_shape = question
    if name == "Conv2D":
        shape = shapes.conv_output_shape(
            input_shape, arguments["kernel_size"], arguments["strides"], arguments["padding"], arguments["filters"]
        )
        params = shapes.conv_params(arguments["kernel_size"], input_shape[2], arguments["filters"])
    else:
        shape = shapes.pool_output_shape(
            input_shape, arguments["pool_size"], arguments.get("strides"), arguments["padding"]
        )
        params = 0
    return " ".join(map(str, shape)) + f" {params}"


def off_by_one_params(answer):
    """Return a typed answer with the right shape and a wrong parameter count."""
    *shape, params = answer.split()
    return " ".join([*shape, str(int(params) + 1)])


def scripted(answers):
    """Return a session for three questions: malformed twice then right, wrong, right."""
    return "\n".join(["abc", "1 2 3", answers[0], off_by_one_params(answers[1]), answers[2]]) + "\n"


def check_scored_session(out, asked):
    """Assert what a scripted() session prints: hints, the working for the wrong answer, 2/3."""
    assert questions(out) == asked, "the same seed asks the same layers, with Keras or without"
    assert out.count(PROMPT) == 5, "a malformed answer gets the same question again"
    assert "'abc' is not a whole number" in out and "3 numbers, not 4" in out
    assert out.count("Right:") == 2
    assert "Not quite: the parameter count is off" in out
    assert "parameters = " in out and "Output shape (None, " in out  # the working, filled in
    assert out.rstrip().endswith("Score: 2/3 right")


# ---- the scripts, through stdin -----------------------------------------------------


@pytest.fixture(scope="module")
def backend_env(env, keras_backend):
    """Return the scripts' environment on one Keras backend."""
    return dict(env, KERAS_BACKEND=keras_backend)


@pytest.mark.parametrize("script, seed", [(CONV, "3"), (POOL, "11")])
def test_quiz_scores_right_wrong_and_malformed_answers_against_keras(backend_env, script, seed):
    first = subprocess.run(
        [sys.executable, script, "--quiz", "3", "--seed", seed, "--no-keras"],
        cwd=REPO,
        env=backend_env,
        input="0 0 0 0\n" * 3,
        capture_output=True,
        text=True,
        timeout=60,
    )
    asked = questions(first.stdout)
    assert len(asked) == 3, first.stdout + first.stderr
    expected = "Conv2D" if script == CONV else "Pooling2D"
    assert all(name.endswith(expected) for name, _, _ in asked)
    result = subprocess.run(
        [sys.executable, script, "--quiz", "3", "--seed", seed],
        cwd=REPO,
        env=backend_env,
        input=scripted([solve(q) for q in asked]),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    check_scored_session(result.stdout, asked)


def test_ctrl_d_ends_the_quiz_with_the_score_so_far(env):
    first = run(env, CONV, "--quiz", "3", "--seed", "5", "--no-keras")  # stdin empty: Ctrl-D at once
    assert first.returncode == 0 and first.stderr == ""
    assert first.stdout.rstrip().endswith("Score: 0/0 right (stopped after 0 of 3 questions)")
    answer = solve(questions(first.stdout)[0])
    result = subprocess.run(
        [sys.executable, CONV, "--quiz", "3", "--seed", "5", "--no-keras"],
        cwd=REPO,
        env=env,
        input=answer + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout.rstrip().endswith("Score: 1/1 right (stopped after 1 of 3 questions)")


def test_ctrl_c_ends_the_quiz_with_the_score_and_status_130(env):
    # a child of a background job starts with SIGINT ignored (as CI may run us): put it back
    proc = subprocess.Popen(
        [sys.executable, POOL, "--quiz", "4", "--no-keras"],
        cwd=REPO,
        env=env,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = ""
        deadline = time.monotonic() + 30
        while not QUESTION.match(line) and time.monotonic() < deadline:
            line = proc.stdout.readline()
        assert QUESTION.match(line), "no question asked"
        time.sleep(0.3)  # let it reach input()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert out.rstrip().endswith("Score: 0/0 right (stopped after 0 of 4 questions)")


USAGE_ERRORS = [
    (CONV, ["--quiz", "0"], "--quiz 0: must be a positive integer"),
    (CONV, ["--quiz", "-2"], "--quiz -2: must be a positive integer"),
    (CONV, ["--quiz", "two"], "--quiz two: must be a positive integer"),
    (CONV, ["--quiz", "--seed", "x"], "--seed x: must be a whole number"),
    (CONV, ["--seed", "3"], "--seed goes with --quiz"),
    (CONV, ["--quiz", "--filters", "8"], "--quiz draws its own layers; leave out --filters"),
    (CONV, ["--quiz", "--input-shape", "32,32,3"], "leave out --input-shape"),
    (POOL, ["--quiz", "--type", "average"], "leave out --type"),
    (POOL, ["--quiz", "--stack", "pool:2"], "leave out --stack"),
]


@pytest.mark.parametrize("script, args, message", USAGE_ERRORS, ids=[" ".join([s, *a]) for s, a, _ in USAGE_ERRORS])
def test_quiz_usage_errors_are_one_line_and_exit_status_2(env, script, args, message):
    result = run(env, script, *args)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{script}: error: ") and message in lines[0], result.stderr


def test_the_lessons_layer_is_still_the_default_without_quiz(env):
    result = run(env, CONV, "--no-keras")
    assert result.returncode == 0 and "Input H_in x W_in x D_in = 200 x 200 x 1" in result.stdout


# ---- the notebook function, with a patched input() --------------------------------------

NOTEBOOK_DRIVER = r"""
import builtins, contextlib, io, json, sys
sys.path.insert(0, "tests")
from test_drills import questions, scripted, solve
from cnn_course.drills import shape_quiz

builtins.input = lambda prompt="": "0 0 0 0"
with contextlib.redirect_stdout(io.StringIO()) as first:
    shape_quiz(3, seed=4)
asked = questions(first.getvalue())
lines = iter(scripted([solve(q) for q in asked]).splitlines())

def scripted_input(prompt=""):
    print(prompt, end="")
    return next(lines)

builtins.input = scripted_input
with contextlib.redirect_stdout(io.StringIO()) as second:
    shape_quiz(3, seed=4)
print(json.dumps({"asked": asked, "out": second.getvalue()}))
"""


def test_shape_quiz_in_a_notebook_reads_input_and_checks_with_keras(backend_env):
    result = subprocess.run(
        [sys.executable, "-c", NOTEBOOK_DRIVER],
        cwd=REPO,
        env=backend_env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.splitlines()[-1])
    asked = [tuple(q[:2]) + (tuple(q[2]),) for q in found["asked"]]
    assert len(asked) == 3
    check_scored_session(found["out"], asked)


def test_a_notebook_run_headless_ends_the_quiz_with_a_line_not_a_traceback(monkeypatch, capsys):
    from IPython.core.error import StdinNotImplementedError

    def no_keyboard(prompt=""):
        raise StdinNotImplementedError("raw_input was called, but this frontend does not support input requests.")

    monkeypatch.setattr("builtins.input", no_keyboard)
    assert drills.run_quiz(2, seed=1, use_keras=False) == (0, 0, "eof")
    out = capsys.readouterr().out
    assert "cannot read input() here" in out
    assert out.rstrip().endswith("Score: 0/0 right (stopped after 0 of 2 questions)")


def test_ctrl_c_in_a_notebook_ends_the_quiz_with_the_score(monkeypatch, capsys):
    def interrupted(prompt=""):
        raise KeyboardInterrupt

    monkeypatch.setattr("builtins.input", interrupted)
    assert drills.run_quiz(2, seed=1, use_keras=False) == (0, 0, "interrupted")
    assert capsys.readouterr().out.rstrip().endswith("Score: 0/0 right (stopped after 0 of 2 questions)")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("16 16 8 224", ((16, 16, 8), 224)),
        ("(None, 16, 16, 8), 224", ((16, 16, 8), 224)),
        ("16x16x8, 224", ((16, 16, 8), 224)),
    ],
)
def test_answers_are_read_in_the_forms_keras_prints(text, expected):
    assert drills.parse_answer(text) == expected


@pytest.mark.parametrize(
    "text, hint",
    [
        ("", "no answer"),
        ("sixteen 16 8 224", "'sixteen' is not a whole number"),
        ("-1 16 8 224", "is not a whole number"),
        ("16 16 8", "3 numbers, not 4"),
        ("16 16 8 1,024", "5 numbers, not 4"),
    ],
)
def test_malformed_answers_get_a_one_line_hint(text, hint):
    with pytest.raises(ValueError, match=re.escape(hint)) as error:
        drills.parse_answer(text)
    assert "\n" not in str(error.value) and "four whole numbers" in str(error.value)


def test_drawn_layers_fit_their_input_and_stay_small():
    rng = __import__("random").Random(0)
    for kind in drills.KINDS * 200:
        input_shape, layer = drills.draw_layer(kind, rng)
        row = shapes.trace_stack(input_shape, [layer])[0]  # raises if the layer does not fit
        assert min(row["shape"]) >= 1 and row["params"] < 10**6


# ---- check_answer ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def exercise_numbers():
    """Return each exercise number, worked out by building the layers with Keras."""
    from cnn_course.keras_check import import_keras

    keras = import_keras()

    def cifar10_cnn(kernel=2, first_pool=True):
        layers = [keras.Input((32, 32, 3))]
        for i, filters in enumerate((16, 32, 64)):
            layers.append(keras.layers.Conv2D(filters, kernel, padding="same", activation="relu"))
            if i or first_pool:
                layers.append(keras.layers.MaxPooling2D(2))
        layers += [keras.layers.Flatten(), keras.layers.Dense(500, activation="relu")]
        return keras.Sequential(layers)

    bigger, no_pool, lesson3 = cifar10_cnn(kernel=3), cifar10_cnn(first_pool=False), cifar10_cnn()
    edge = keras.Sequential([keras.Input((40, 60, 1)), keras.layers.Conv2D(1, 4, use_bias=False)])
    return {
        "conv1 params, kernel 3": bigger.layers[0].count_params(),
        "flatten size, no first pool": no_pool.layers[-2].output.shape[-1],
        "dense1 params, no first pool": no_pool.layers[-1].count_params(),
        "edge filter params": edge.count_params(),
        "conv3 map size": lesson3.layers[4].output.shape[1],
    }


def test_check_answer_knows_every_exercise_number(exercise_numbers):
    assert set(drills.answers()) == set(exercise_numbers)


@pytest.mark.parametrize("name", list(drills.answers()))
def test_check_answer_says_right_or_wrong_without_giving_the_answer(name, exercise_numbers, capsys):
    truth = exercise_numbers[name]
    assert drills.check_answer(name, truth) is None
    assert capsys.readouterr().out.strip() == f"{name}: {truth:,} is right."
    for wrong in (truth + 1, truth - 1, "a guess"):
        drills.check_answer(name, wrong)
        out = capsys.readouterr().out
        assert " is right." not in out and "Hint: " in out and len(out.strip().splitlines()) == 1
        assert not re.search(rf"(?<![\d,]){truth:,}(?![\d,])|(?<!\d){truth}(?!\d)", out), out


def test_check_answer_lists_the_names_for_an_unknown_one(capsys):
    drills.check_answer("conv9 params", 1)
    out = capsys.readouterr().out
    assert "No answer is kept under 'conv9 params'" in out and "'conv1 params, kernel 3'" in out


# ---- the lessons point to the drill ---------------------------------------------------------

LESSONS = {
    "cifar10-cnn": REPO / "cifar10-classification" / "cifar10_cnn.ipynb",
    "conv-visualization": REPO / "conv-visualization" / "conv_visualization.ipynb",
}


@pytest.mark.parametrize("lesson", list(LESSONS))
def test_lessons_exercises_point_to_the_drill_and_checks_that_exist(lesson):
    nb = nbformat.read(LESSONS[lesson], as_version=4)
    exercises = nb.cells[-1].source
    assert "shape_quiz(" in exercises and "--quiz" in exercises
    names = re.findall(r"check_answer\(\"([^\"]+)\"", exercises)
    assert names and set(names) <= set(drills.answers())
    imports = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert re.search(r"^from cnn_course\.drills import .*check_answer", imports, re.MULTILINE)
    assert re.search(r"^from cnn_course\.drills import .*shape_quiz", imports, re.MULTILINE)
