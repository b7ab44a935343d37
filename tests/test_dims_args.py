"""conv-dims.py and pool-dims.py refuse, in one line with exit status 2,
what they could only get wrong (issue 26): sizes Keras cannot compute exactly
(low 12), and negative sizes that argparse used to take for an option (low 15).
Every refusal comes before Keras is imported, so these runs are quick."""

import subprocess
import sys

import pytest

from cnn_course import keras_check
from test_dims_scripts import CONV, POOL, REPO, env, run  # noqa: F401

HUGE = str(2**63)  # 9223372036854775808

REFUSED = [
    # sizes over 2**53: Keras's float arithmetic said "!!! MISMATCH ... please report this"
    (CONV, ["--input-shape", f"{HUGE},2,1"], "over 2**53 = 9,007,199,254,740,992"),
    (CONV, ["--input-shape", f"{2**53 + 2},2,1", "--strides", "2"], "over 2**53"),
    (CONV, ["--input-shape", f"{HUGE},2,1", "--stack", "pool:2"], "the stack has a size of 9,223,372,036,854,775,808"),
    (POOL, ["--input-shape", f"{HUGE},2,1"], "over 2**53"),
    (POOL, ["--input-shape", f"{HUGE},2,1", "--type", "global-average"], "over 2**53"),
    (POOL, ["--input-shape", f"{HUGE},2,1", "--stack", "pool:2"], "over 2**53"),
    # a value starting with '-': argparse said "expected one argument"
    (CONV, ["--kernel-size", "-1x3"], "--kernel-size -1x3: must be a positive integer"),
    (CONV, ["--strides", "-2x1"], "--strides -2x1: must be a positive integer"),
    (CONV, ["--filters", "-1e3"], "--filters -1e3: must be a positive integer"),
    (CONV, ["--input-shape", "-5,2,1"], "--input-shape -5,2,1: must be H,W,D"),
    (POOL, ["--pool-size", "-1x2"], "--pool-size -1x2: must be a positive integer"),
    (POOL, ["--strides", "-1x2"], "--strides -1x2: must be a positive integer"),
    (POOL, ["--input-shape", "-5,2,1"], "--input-shape -5,2,1: must be H,W,D"),
]


@pytest.mark.parametrize("script, args, message", REFUSED, ids=[" ".join([s, *a]) for s, a, _ in REFUSED])
def test_refused_in_one_line_with_exit_status_2(env, script, args, message):
    result = run(env, script, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{script}: error: "), result.stderr
    assert message in lines[0] and "expected one argument" not in lines[0]


def test_huge_sizes_still_get_the_exact_arithmetic(env):
    result = run(env, CONV, "--input-shape", f"{HUGE},2,1", "--no-keras")
    assert result.returncode == 0, result.stderr
    assert f"Output shape (None, {2**62}, 1, 16), 80 parameters" in result.stdout


def test_check_exact_allows_up_to_the_limit():
    keras_check.check_exact((keras_check.MAX_EXACT, 2, 1), [{"shape": (1, 1), "params": 5}])
    with pytest.raises(ValueError, match="over 2\\*\\*53"):
        keras_check.check_exact((2, 2, 1), [{"shape": (1, 1), "params": keras_check.MAX_EXACT + 1}])


# Keras installed without its backend (`pip install cnn-course` with no extra): one
# line naming what to install, not Keras's traceback. A `None` in sys.modules makes
# the backend's package look absent to Keras and to the check alike.
BLOCKED = (
    "import runpy, sys; sys.modules['tensorflow'] = None; sys.argv = sys.argv[1:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


@pytest.mark.parametrize("script", [CONV, POOL])
def test_keras_without_its_backend_is_one_line_saying_what_to_install(env, script):
    done = subprocess.run(
        [sys.executable, "-c", BLOCKED, script], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"{script}: error: the Keras backend 'tensorflow' is not installed in this Python ({sys.executable}); "
        'install it (pip install tensorflow, or see README.md, "Keras backends and GPUs") or choose another'
    ]
