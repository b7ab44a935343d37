#!/usr/bin/env bash
# One short GPU run of the training benchmark on the JAX backend (no TensorFlow
# needed): per-epoch times of the original loop and of the lesson's GPU loop.
#
#   bash benchmarks/gpu_check.sh [DATA_DIR]
#
# DATA_DIR (default: .gpudata when it exists) holds copies of the real data as
# the data layer reads them: mnist.npz and cifar10-jpeg.tar.gz (about 31 MB
# together; the decoded CIFAR-10 arrays, about 185 MB, are made there on first
# use). Without it the stand-ins are used (throughput only).
# Keras is installed from wheels in .whl when python3 cannot import it:
# keras, namex, optree (the machine already has the rest of Keras's needs).
# Results go to $OUT/gpu_results.json ($OUT, else /tmp) and the log to
# $OUT/gpu_check.log. Then the modern CNN lesson (training-speed/modern_cnn.ipynb) runs at its
# full defaults, its code cells executed as one script (no Jupyter needed), for its time to 85% and
# 90% test accuracy; its log goes to $OUT/modern_cnn.log. MODERN_PARAMS="EPOCHS=1 N_TRAIN=2048"
# overrides its parameters (to try the script on a CPU). About 8 minutes in all.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${OUT:-/tmp}"
export KERAS_BACKEND=jax PYTHONUNBUFFERED=1 TF_CPP_MIN_LOG_LEVEL=2 CNN_COURSE_OFFLINE=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false

if ! python3 -c "import keras" 2>/dev/null; then
    if ! ls .whl/*.whl >/dev/null 2>&1; then
        echo "error: python3 cannot import keras and there are no wheels in .whl" >&2
        exit 2
    fi
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 2
    export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}"
fi

DATA_DIR="${1:-.gpudata}"
if [ -d "$DATA_DIR" ]; then
    export CNN_COURSE_DATA="$(cd "$DATA_DIR" && pwd)"
else
    echo "no data folder $DATA_DIR: stand-in data, throughput only"
    export CNN_COURSE_DATA=/nonexistent
fi

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
python3 -c "import jax, keras; print('jax', jax.__version__, jax.devices(), '| keras', keras.__version__, keras.backend.backend())" || exit 1

# Real data: train until the targets (68% / 98%), at most 15 epochs; stand-in: 5 epochs.
# BENCH_ARGS adds options (e.g. "--quick --gpu-path" to try this script on a CPU; a --models of its own wins).
# The two paired models only: train_speed's modern_cnn runs the notebook through nbclient (not on a bare
# GPU machine) and has no original/lesson pair; the modern CNN runs below as a plain script instead.
timeout 220 python3 benchmarks/train_speed.py --models mnist_mlp,cifar10_cnn --max-epochs "${MAX_EPOCHS:-15}" ${BENCH_ARGS:-} \
    --out "$OUT_DIR/gpu_results.json" 2>&1 | tee "$OUT_DIR/gpu_check.log"
status=${PIPESTATUS[0]}
[ "$status" = 124 ] && echo "gpu_check: stopped at the 220 s limit; the lines above are what finished"

python3 - "$OUT_DIR/gpu_results.json" <<'EOF'
import json, sys
try:
    r = json.load(open(sys.argv[1]))
except OSError:
    sys.exit(0)
print("\nper-epoch training seconds (epoch 1 includes compiling), validation accuracy:")
for model, e in r["models"].items():
    for p in ("original", "lesson"):
        s = e[p]["settings"]
        for run in e[p]["runs"]:
            times = " ".join(f"{x['train_s']:.3f}" for x in run["epochs"])
            print(f"{model} {p} (batch {s['batch_size']}, {s.get('mixed_precision') or 'float32'}): "
                  f"train s/epoch [{times}]; median {run['epoch_train_s']:.3f} s train, "
                  f"{run['epoch_s']:.3f} s with validation; best val acc {run['best_val_accuracy']:.4f}")
    g = e["lesson"]["epoch_train_s"]
    goal = (f" ({'meets' if g <= 0.2 else 'misses'} the 0.2 s goal for 45,000 images)"
            if model == "cifar10_cnn" and e["n_train"] >= 45000 else "")
    print(f"{model}: lesson epoch of {e['n_train']} images: {g:.3f} s{goal}; data: {e['data']}")
EOF
# The modern CNN lesson, as a student's full run would train it (the notebook's own clock and lines).
MPLBACKEND=Agg timeout "${MODERN_TIMEOUT:-300}" python3 - training-speed/modern_cnn.ipynb \
    CHECKPOINT="'/tmp/modern_cnn.keras'" VERBOSE=2 ${MODERN_PARAMS:-} <<'EOF' 2>&1 | tee "$OUT_DIR/modern_cnn.log"
import ast, json, sys
notebook, overrides = json.load(open(sys.argv[1])), dict(a.split("=", 1) for a in sys.argv[2:])
namespace = {"__name__": "__main__"}
for cell in notebook["cells"]:
    source = "".join(cell["source"])
    if cell["cell_type"] != "code" or any(line.lstrip().startswith(("%", "!")) for line in source.splitlines()):
        continue  # markdown, and the Colab install cell (IPython magics)
    exec(compile(source, "modern_cnn", "exec"), namespace)
    if "parameters" in cell["metadata"].get("tags", []):
        for name, value in overrides.items():
            namespace[name] = ast.literal_eval(value)
        print("parameters:", {k: namespace[k] for k in ("EPOCHS", "WIDTHS", "BATCH_SIZE", "PRECISION")})
EOF
modern_status=${PIPESTATUS[0]}
[ "$modern_status" = 124 ] && echo "gpu_check: the modern CNN stopped at its ${MODERN_TIMEOUT:-300} s limit"
[ "$status" = 0 ] && status=$modern_status
exit "$status"
