#!/usr/bin/env bash
# make lowest: are pyproject.toml's lower bounds true?
#
# Installs the LOWEST versions pyproject.toml allows for what it names directly
# (uv's --resolution lowest-direct; what those need resolves as usual) into a
# venv of its own, build/lowest (not .venv, and never constraints.txt), and
# runs the quick lesson tests on TensorFlow there, with the device split on
# both backends (JAX's jax_num_cpu_devices). A failure here means a lower bound
# in pyproject.toml is false: raise it, and run this again.
#
#   tools/lowest.sh [PYTEST ARGS]     e.g. tools/lowest.sh -x -k mnist
# Environment: PYTHON (default python3) makes the venv; UV (default: uv on PATH,
# else .venv/bin/uv) installs into it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
UV=${UV:-$(command -v uv || echo .venv/bin/uv)}
VENV=build/lowest
export SSL_CERT_FILE=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}

# The test tools at their own lower bounds, read from requirements-dev.txt (pytest, hypothesis).
tools=$(grep -E '^(pytest|hypothesis)[<>=]' requirements-dev.txt)
"$UV" venv --quiet --allow-existing --python "$PYTHON" "$VENV"
# shellcheck disable=SC2086
"$UV" pip install --quiet --python "$VENV/bin/python" --resolution lowest-direct \
    -e ".[tensorflow,jax]" $tools
echo "lowest versions:"
"$UV" pip list --python "$VENV/bin/python" 2>/dev/null \
    | grep -iE '^(keras|numpy|jax|jaxlib|tensorflow(-cpu)?|matplotlib|scikit-learn|pillow|opencv-python-headless|h5py|tqdm|ipykernel|jupyter.core|nbclient|nbconvert|nbformat|pytest|hypothesis) ' \
    | sed 's/^/  /'

# The quick lesson runs (stand-in data, offline) on TensorFlow, and the device split on every backend.
# PYTHONPATH: this checkout's package, even where another checkout's is installed in editable mode.
PYTHONPATH=$PWD "$VENV/bin/python" -m pytest -p no:cacheprovider -m "not real_data" \
    tests/test_lessons_mnist_cifar.py tests/test_lessons_conv.py tests/test_lessons_parallel.py \
    tests/test_devices.py tests/test_shapes.py tests/test_drills.py \
    -k "not jax or test_devices" "$@"
