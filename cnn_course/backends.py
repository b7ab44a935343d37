"""The Keras backend and the machine the lessons run on.

`keras_backend` reads which backend was chosen, `check_backend` checks that
its package is installed, and `environment_info` asks a fresh Python which
Keras, backend and device a lesson will see.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from .runner import _kernel_env

# Keras backend -> the package it needs (the name `import` uses).
BACKENDS = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


class BackendError(ValueError):
    """The requested Keras backend is unknown or not installed (a usage error)."""


def keras_config_path():
    """Return the Path of the Keras config file the lessons' Keras will read:
    ``$KERAS_HOME/keras.json`` (``~`` expanded, relative to this folder, as
    the runner passes it on), else ``~/.keras/keras.json``. Raises nothing."""
    home = os.environ.get("KERAS_HOME", "").strip()
    home = os.path.abspath(os.path.expanduser(home)) if home else Path.home() / ".keras"
    return Path(home) / "keras.json"


# What Keras accepts in keras.json (keras/src/backend/config.py): it stops
# at import on anything else, so every lesson would fail inside Keras.
_KERAS_CONFIG_CHOICES = {"floatx": ("float16", "float32", "float64"),
                         "image_data_format": ("channels_last", "channels_first")}


def keras_config():
    """Return the settings of Keras's config file (`keras_config_path`) as a
    dict; {} when there is none.

    Raises BackendError, with one line naming the file, when Keras could not
    use it: not a regular file (a folder), unreadable, not JSON (Keras would
    silently ignore every setting in it), not a JSON object (a list), or a
    "backend", "floatx", "epsilon" or "image_data_format" Keras refuses.
    """
    path = keras_config_path()
    if not os.path.exists(path):  # what Keras checks (a dangling link counts as none)
        return {}
    fix = "fix it or delete it (Keras writes a new one)"
    if not path.is_file():
        raise BackendError(f"the Keras config file {path} is not a regular file; {fix}")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BackendError(f"the Keras config file {path} cannot be read ({exc.strerror or exc}); "
                           f"{fix}") from None
    except ValueError as exc:  # not JSON, or not UTF-8
        raise BackendError(f"the Keras config file {path} is not JSON ({str(exc).splitlines()[0]}); "
                           f"{fix}") from None
    if not isinstance(config, dict):
        raise BackendError(f"the Keras config file {path} holds a JSON {type(config).__name__}, "
                           f"not an object such as {{\"backend\": \"tensorflow\"}}; {fix}")
    wrong = [f"{key}={config[key]!r}" for key, allowed in _KERAS_CONFIG_CHOICES.items()
             if key in config and config[key] not in allowed]
    if "epsilon" in config and not isinstance(config["epsilon"], float):
        wrong.append(f"epsilon={config['epsilon']!r}")
    if "backend" in config and not (isinstance(config["backend"], str) and config["backend"]):
        wrong.append(f"backend={config['backend']!r}")
    if wrong:
        raise BackendError(f"the Keras config file {path} has settings Keras refuses "
                           f"({', '.join(wrong)}); {fix}")
    return config


def keras_backend(choice=None):
    """Return the name of the Keras backend lessons will run on.

    `choice` when given; else the environment variable KERAS_BACKEND; else the
    "backend" of Keras's config file ($KERAS_HOME/keras.json, or
    ~/.keras/keras.json); else "tensorflow" (the order Keras itself follows).
    The config file is checked in every case, as Keras reads it at import.
    The name is not checked (see `check_backend`). Raises BackendError for a
    config file Keras could not use (see `keras_config`).
    """
    configured = keras_config().get("backend")
    if choice:
        return choice
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    return configured or "tensorflow"


def installed_backends():
    """Return the names of the Keras backends whose package is installed (tuple, in BACKENDS order).

    Looks the packages up without importing them, so it is quick. Raises nothing.
    """
    import importlib.util

    return tuple(name for name, module in BACKENDS.items() if importlib.util.find_spec(module) is not None)


def check_backend(name):
    """Return `name` when it is a Keras backend whose package is installed.

    Raises BackendError with a one-line message that says what to do otherwise.
    """
    if name not in BACKENDS:
        raise BackendError(f"{name!r} is not a Keras backend the lessons train on; "
                           f"choose one of {', '.join(BACKENDS)} "
                           f"(--backend or the environment variable KERAS_BACKEND)")
    if name not in installed_backends():
        install = {"tensorflow": "pip install tensorflow", "jax": 'pip install "jax[cpu]"',
                   "torch": "pip install torch"}[name]
        raise BackendError(f"the Keras backend {name!r} is not installed in this Python "
                           f"({sys.executable}); install it ({install}, or see README.md, "
                           f"\"Keras backends and GPUs\") or choose another")
    return name


# --------------------------------------------------------------------------
# The machine the run used

_PROBE = r"""
import collections, json, os, platform, sys
info = {"python": platform.python_version(), "platform": platform.platform(terse=True)}
try:
    import keras
    info["keras"] = keras.__version__
    backend = keras.backend.backend()
    info["backend"] = backend
    names = []
    if backend == "tensorflow":
        import tensorflow as tf
        info["backend_version"] = tf.__version__
        for gpu in tf.config.list_physical_devices("GPU"):
            details = tf.config.experimental.get_device_details(gpu)
            names.append(details.get("device_name") or gpu.name)
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
    """Describe the machine lessons run on, from one subprocess of this interpreter.

    Returns a dict with python, platform, keras, backend, backend_version and
    device ("CPU", or the GPU names); keys that could not be found are "?",
    and "error" says why. Never raises.
    """
    info = {"python": platform.python_version(), "platform": platform.platform(terse=True)}
    env = _kernel_env()
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # JAX: do not grab GPU memory
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE],
            capture_output=True, text=True, env=env, timeout=timeout, stdin=subprocess.DEVNULL,
        )
        lines = done.stdout.strip().splitlines()
        if not lines:
            raise RuntimeError((done.stderr.strip().splitlines() or ["no output"])[-1])
        info.update(json.loads(lines[-1]))
    except Exception as exc:
        info["error"] = f"{type(exc).__name__}: {exc}"
    for key in ("keras", "backend", "backend_version", "device"):
        info.setdefault(key, "?")
    return info
