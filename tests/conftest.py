"""Test-suite wide guards: no test may reach the network or a real user cache.

Every download the course can attempt goes through urllib (keras.utils.get_file),
so pointing the proxy variables at a closed local port makes any attempt fail
at once, in this process and in every notebook kernel or script it starts.
Connections from this process to anything but loopback raise too, so a test
that tries to download fails loudly instead of hanging. The data folders, the
checkout's own data/ included, and the Keras home are empty session folders,
removed when pytest exits.
"""

import os
import shutil
import socket
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# ../shared/data beside the checkout; CNN_COURSE_SHARED_DATA names it for a checkout elsewhere
SHARED_DATA = Path(os.environ.get("CNN_COURSE_SHARED_DATA") or REPO.parent / "shared" / "data")

_CLOSED_PORT = "http://127.0.0.1:9"  # the discard port: nothing listens there
_session_home = Path(tempfile.mkdtemp(prefix="cnn-course-tests-"))

os.environ.update(
    CNN_COURSE_OFFLINE="1",
    KERAS_HOME=str(_session_home / "keras"),
    CNN_COURSE_DATA=str(_session_home / "data"),
    CNN_COURSE_REPO_DATA=str(_session_home / "repo-data"),  # not the checkout's data/: see data/lookup.py
    MPLBACKEND="Agg",
    TF_CPP_MIN_LOG_LEVEL="2",
    http_proxy=_CLOSED_PORT,
    https_proxy=_CLOSED_PORT,
    HTTP_PROXY=_CLOSED_PORT,
    HTTPS_PROXY=_CLOSED_PORT,
)
os.environ.pop("no_proxy", None)
os.environ.pop("NO_PROXY", None)
(_session_home / "keras").mkdir()
(_session_home / "data").mkdir()
(_session_home / "repo-data").mkdir()

_real_connect = socket.socket.connect


def _loopback_only(self, address):
    host = address[0] if isinstance(address, tuple) else address
    if isinstance(host, str) and host not in ("localhost", "::1") and not host.startswith("127."):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise RuntimeError(f"a test tried to reach the network ({address!r}); tests must stay offline")
    return _real_connect(self, address)


socket.socket.connect = _loopback_only


def pytest_unconfigure(config):
    """Remove the session's stand-in home (Keras cache, data folder) when pytest exits."""
    shutil.rmtree(_session_home, ignore_errors=True)


@pytest.fixture
def shared_data():
    """Path of ../shared/data; skips the test when the real data is not there."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


# --------------------------------------------------------------------------
# Every lesson on TensorFlow; on the other backends, what differs by backend

# TensorFlow and JAX are both installed by `make setup` (pyproject.toml's extras), so both are always tested
# (a missing one shows as skipped, never silently absent); PyTorch is tested
# where it happens to be installed (its registry wheel carries CUDA: README.md).
#
# Every lesson runs on TensorFlow, the default backend. On the others, a
# module runs only when it sets ON_EVERY_BACKEND = True: the code that differs
# by backend (the speed and data-parallel lessons, the device split, the
# dimension scripts) and lessons 1 and 3 as representatives. The same lessons
# on JAX would take CI past its time budget; CNN_COURSE_TEST_BACKENDS=all runs
# every lesson test on every backend (CONTRIBUTING.md).
from cnn_course import backends  # noqa: E402
from lesson_checks import only_on_tensorflow_by_default  # noqa: E402

LESSON_BACKENDS = ["tensorflow", "jax"] + [b for b in backends.installed_backends() if b == "torch"]


@pytest.fixture(scope="module", params=LESSON_BACKENDS)
def keras_backend(request):
    """Run the requesting module's notebooks and scripts on each Keras backend in turn.

    Sets KERAS_BACKEND, which the notebook kernels and scripts inherit, for
    the tests of one backend, and yields the backend's name. A lesson test
    opts in by requesting this fixture from the fixture that prepares its
    environment; module-scoped fixtures built on that are then built once per
    backend. Skips a backend whose package is not installed, and a backend
    other than TensorFlow for a module without ON_EVERY_BACKEND (see above).
    """
    if request.param not in backends.installed_backends():
        pytest.skip(f"the Keras backend {request.param!r} is not installed")
    if not getattr(request.module, "ON_EVERY_BACKEND", False):
        only_on_tensorflow_by_default(request.param, request.module.__name__)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KERAS_BACKEND", request.param)
        yield request.param


# --------------------------------------------------------------------------
# Markers that say what a test needs (registered in pyproject.toml), applied here
# from the test's module and fixtures so that no test file has to carry them:
#   pytest -m "not notebook"            the unit tests, in seconds to minutes
#   pytest -m "not real_data"           what a checkout without ../shared/data runs in full
#   pytest -m "backend and not notebook"

# Modules whose tests start a Jupyter kernel (a lesson or a fixture notebook) or a lesson script.
NOTEBOOK_MODULES = {"test_answers", "test_rerun_cells", "test_runner", "test_site", "test_wheel"}
# Modules that read ../shared/data without the shared_data fixture.
REAL_DATA_MODULES = {"test_data_real"}


def needs(item):
    """Return the markers `item` needs: notebook, real_data and backend, as a set of names."""
    module = item.module.__name__.rpartition(".")[2] if item.module else ""
    fixtures = set(getattr(item, "fixturenames", ()))
    marks = set()
    if module.startswith("test_lessons_") or module in NOTEBOOK_MODULES:
        marks.add("notebook")
    if "shared_data" in fixtures or module in REAL_DATA_MODULES or item.get_closest_marker("slow"):
        marks.add("real_data")
    if "keras_backend" in fixtures:
        marks.add("backend")
    return marks


def pytest_collection_modifyitems(config, items):
    for item in items:
        for name in sorted(needs(item)):
            item.add_marker(name)
