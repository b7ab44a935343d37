"""The Keras backend and the environment the lessons run in.

`keras_backend` reads which backend was chosen, `check_backend` checks that its package is
installed, `lesson_env` is the environment of a lesson's kernel or script, and `environment_info`
asks a fresh Python which Keras, backend and device a lesson will see.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

BACKENDS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}  # backend -> the package it imports
_INSTALL = {"tensorflow": "pip install tensorflow", "jax": 'pip install "jax[cpu]"', "torch": "pip install torch"}
# What Keras accepts in keras.json (keras/src/backend/config.py); it stops at import on anything else.
_KERAS_CONFIG_CHOICES = {
    "floatx": ("float16", "float32", "float64"),
    "image_data_format": ("channels_last", "channels_first"),
}


class BackendError(ValueError):
    """The requested Keras backend is unknown or not installed, or keras.json unusable (a usage error)."""


def lesson_env(quick=False):
    """Return the environment of a lesson's kernel or script: this process's with CNN_COURSE_DATA and
    KERAS_HOME made absolute (lessons run in their own folder), MPLBACKEND removed (figures inline),
    TensorFlow's C++ log turned down, and with `quick` CNN_COURSE_QUICK=1."""
    env = dict(os.environ)
    for name in ("CNN_COURSE_DATA", "KERAS_HOME"):
        if env.get(name, "").strip():
            env[name] = os.path.abspath(os.path.expanduser(env[name]))
    if quick:
        env["CNN_COURSE_QUICK"] = "1"
    env.pop("MPLBACKEND", None)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    return env


def keras_config():
    """Return the settings in ``$KERAS_HOME/keras.json`` (else ``~/.keras/keras.json``), {} without one.
    Raises BackendError, one line naming the file, when Keras could not use it."""
    home = os.environ.get("KERAS_HOME", "").strip()
    path = Path(os.path.abspath(os.path.expanduser(home)) if home else Path.home() / ".keras") / "keras.json"
    if not os.path.exists(path):  # what Keras checks (a dangling link counts as none)
        return {}
    problem, config = None, None
    if not path.is_file():
        problem = "is not a regular file"
    else:
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            problem = f"cannot be read ({exc.strerror or exc})"
        except ValueError as exc:  # not JSON, or not UTF-8
            problem = f"is not JSON ({str(exc).splitlines()[0]})"
    if problem is None and not isinstance(config, dict):
        problem = f'holds a JSON {type(config).__name__}, not an object such as {{"backend": "tensorflow"}}'
    if problem is None:
        wrong = [
            f"{k}={config[k]!r}"
            for k, allowed in _KERAS_CONFIG_CHOICES.items()
            if config.get(k, allowed[0]) not in allowed
        ]
        if "epsilon" in config and not isinstance(config["epsilon"], float):
            wrong.append(f"epsilon={config['epsilon']!r}")
        if "backend" in config and not (isinstance(config["backend"], str) and config["backend"]):
            wrong.append(f"backend={config['backend']!r}")
        problem = wrong and f"has settings Keras refuses ({', '.join(wrong)})"
    if problem:
        raise BackendError(f"the Keras config file {path} {problem}; fix it or delete it (Keras writes a new one)")
    return config


def keras_backend(choice=None):
    """Return the backend lessons will run on, in Keras's order: `choice`, $KERAS_BACKEND, keras.json's,
    "tensorflow" (not checked: `check_backend`). Raises BackendError for a keras.json Keras refuses."""
    configured = keras_config().get("backend")
    return choice or os.environ.get("KERAS_BACKEND") or configured or "tensorflow"


def installed_backends():
    """Return the backends whose package is installed (a tuple, in BACKENDS order), importing none."""
    return tuple(name for name, module in BACKENDS.items() if importlib.util.find_spec(module) is not None)


def check_backend(name):
    """Return `name` when it is a Keras backend whose package is installed, else raise BackendError."""
    if name not in BACKENDS:
        raise BackendError(
            f"{name!r} is not a Keras backend the lessons train on; choose one of "
            f"{', '.join(BACKENDS)} (--backend or the environment variable KERAS_BACKEND)"
        )
    if name not in installed_backends():
        raise BackendError(
            f"the Keras backend {name!r} is not installed in this Python ({sys.executable}); "
            f'install it ({_INSTALL[name]}, or see README.md, "Keras backends and GPUs") or choose another'
        )
    return name


_PROBE = """import json
try:
    from cnn_course.speed import describe_machine
    info = describe_machine()
except Exception as exc:
    info = {"error": f"{type(exc).__name__}: {exc}"}
print(json.dumps(info))
"""
_INFO_KEYS = ("python", "platform", "keras", "backend", "backend_version", "device", "error")


def environment_info(timeout=120):
    """Return what a lesson will see (`speed.describe_machine` in a fresh Python): python, platform,
    keras, backend, backend_version, device; "?" where unknown, and "error" saying why. Never raises."""
    info = {"python": platform.python_version(), "platform": platform.platform(terse=True)}
    env = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false", **lesson_env()}  # JAX: do not grab the GPU's memory
    package = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), package) if p)  # fakes in tests first
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE],
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        lines = done.stdout.strip().splitlines()
        if not lines:
            raise RuntimeError((done.stderr.strip().splitlines() or ["no output"])[-1])
        info.update(json.loads(lines[-1]))
    except Exception as exc:
        info["error"] = f"{type(exc).__name__}: {exc}"
    return {key: "?" for key in _INFO_KEYS[2:6]} | {k: v for k, v in info.items() if k in _INFO_KEYS}
