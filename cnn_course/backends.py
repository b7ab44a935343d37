"""The Keras backend and the environment the lessons run in.

`keras_backend` reads which backend was chosen and `check_backend` checks that
its package is installed; `lesson_env` is the environment of a lesson's kernel
or script; `environment_info` asks a fresh Python which Keras, backend and
device a lesson will see.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

# Keras backend -> the package it needs (the name `import` uses) and how to install it.
BACKENDS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
_INSTALL = {"tensorflow": "pip install tensorflow", "jax": 'pip install "jax[cpu]"', "torch": "pip install torch"}
# What Keras accepts in keras.json (keras/src/backend/config.py); it stops at import on anything else.
_KERAS_CONFIG_CHOICES = {
    "floatx": ("float16", "float32", "float64"),
    "image_data_format": ("channels_last", "channels_first"),
}


class BackendError(ValueError):
    """The requested Keras backend is unknown or not installed, or keras.json unusable (a usage error)."""


def lesson_env(quick=False):
    """Return the environment for a lesson's kernel or script: this process's, adjusted.

    A relative CNN_COURSE_DATA or KERAS_HOME (``~`` expanded) is made absolute
    against the current folder, since lessons run in their own folder;
    MPLBACKEND is removed so that kernels draw figures inline; TensorFlow's C++
    chatter is turned down; with `quick`, CNN_COURSE_QUICK=1 (stand-ins allowed).
    """
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
    """Return the settings of the Keras config file the lessons' Keras reads
    (``$KERAS_HOME/keras.json``, else ``~/.keras/keras.json``); {} when there is none.

    Raises BackendError, one line naming the file, when Keras could not use
    it: not a regular file, unreadable, not JSON, not a JSON object, or a
    "backend", "floatx", "epsilon" or "image_data_format" Keras refuses.
    """
    home = os.environ.get("KERAS_HOME", "").strip()
    path = Path(os.path.abspath(os.path.expanduser(home)) if home else Path.home() / ".keras") / "keras.json"
    if not os.path.exists(path):  # what Keras checks (a dangling link counts as none)
        return {}
    problem = None
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
            f"{key}={config[key]!r}"
            for key, allowed in _KERAS_CONFIG_CHOICES.items()
            if key in config and config[key] not in allowed
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
    """Return the name of the Keras backend lessons will run on, in Keras's own
    order: `choice`, else $KERAS_BACKEND, else keras.json's "backend", else
    "tensorflow". The name is not checked (see `check_backend`). Raises
    BackendError for a keras.json Keras could not use (`keras_config`),
    whatever the choice, as Keras reads it at import."""
    configured = keras_config().get("backend")
    return choice or os.environ.get("KERAS_BACKEND") or configured or "tensorflow"


def installed_backends():
    """Return the backends whose package is installed (tuple, in BACKENDS order),
    without importing them. Raises nothing."""
    return tuple(name for name, module in BACKENDS.items() if importlib.util.find_spec(module) is not None)


def check_backend(name):
    """Return `name` when it is a Keras backend whose package is installed;
    raise BackendError with a one-line message saying what to do otherwise."""
    if name not in BACKENDS:
        raise BackendError(
            f"{name!r} is not a Keras backend the lessons train on; choose one of "
            f"{', '.join(BACKENDS)} (--backend or the environment variable KERAS_BACKEND)"
        )
    if name not in installed_backends():
        raise BackendError(
            f"the Keras backend {name!r} is not installed in this Python ({sys.executable}); "
            f'install it ({_INSTALL[name]}, or see README.md, "Keras backends and GPUs") '
            "or choose another"
        )
    return name


_PROBE = r"""
import collections, json, platform
info = {"python": platform.python_version(), "platform": platform.platform(terse=True)}
try:
    import keras
    info["keras"] = keras.__version__
    backend = info["backend"] = keras.backend.backend()
    names = []
    if backend == "tensorflow":
        import tensorflow as tf
        info["backend_version"] = tf.__version__
        for gpu in tf.config.list_physical_devices("GPU"):
            names.append(tf.config.experimental.get_device_details(gpu).get("device_name") or gpu.name)
    elif backend == "jax":
        import jax
        info["backend_version"] = jax.__version__
        names = [d.device_kind for d in jax.devices() if d.platform != "cpu"]
    elif backend == "torch":
        import torch
        info["backend_version"] = torch.__version__
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    counts = collections.Counter(names)
    info["device"] = ", ".join(n if c == 1 else f"{c} x {n}" for n, c in counts.items()) or "CPU"
except Exception as exc:
    info["error"] = f"{type(exc).__name__}: {exc}"
print(json.dumps(info))
"""


def environment_info(timeout=120):
    """Return what a lesson will see, asked of a subprocess of this interpreter:
    a dict of python, platform, keras, backend, backend_version and device
    ("CPU", or the GPU names); what could not be found is "?", and "error"
    says why. Never raises."""
    info = {"python": platform.python_version(), "platform": platform.platform(terse=True)}
    env = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false", **lesson_env()}  # JAX: do not grab the GPU's memory
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
    return {key: "?" for key in ("keras", "backend", "backend_version", "device")} | info
