"""A lesson's training cell, run a second time, trains again.

A student often runs a training cell twice. Each lesson is cut after its
training cell, and three cells are added: a probe that records, for every
`fit` from then on, the learning rate when it begins and the loss and
accuracy after each epoch; the training cell once more; and a cell that
prints what the probe recorded. The copy runs through the runner in quick
mode on stand-in data, offline, one kernel per lesson. The second run must
train: a positive learning rate at the start of every `fit` and none below
zero at the end of an epoch, finite losses, and an accuracy printed.

Covered: every lesson's training cell but training-speed's. Those that keep state that breaks on
a second run unless the cell handles it: the cosine schedules of lessons 1
to 4, which have fallen to learning rate 0 after a full run (each cell
resets the optimiser's step count, its reset branch), and lesson 9's
schedule and weight averaging. Those that need nothing, run twice all the
same: lesson 6's head (a fresh optimiser at each compile) and its
fine-tuning (a new base, head and optimiser each time), lesson 7's fallback
(a new CNN each time; the copy has no lesson-3 checkpoint beside it) and
`data-parallel` (SGD at a constant rate, training on). Not applicable:
`training-speed` (each setting builds a new model) and
`bottleneck-features` (trains nothing). On
JAX only lesson 1 runs (the same optimiser calls as lesson 9's), unless
CNN_COURSE_TEST_BACKENDS=all.
"""

import json
import math
import re
from pathlib import Path

import nbformat
import pytest

from cnn_course import runner
from lesson_checks import offline_home, only_on_tensorflow_by_default

REPO = Path(__file__).resolve().parents[1]
ON_EVERY_BACKEND = True  # for the lessons in ON_OTHER_BACKENDS only
ON_OTHER_BACKENDS = {"mnist-mlp"}  # a schedule restarted through the optimiser's step count

# (lesson, the id of its training cell); a lesson with two training cells is listed twice
TRAINING_CELLS = [
    ("mnist-mlp", "mnist-mlp-21"),
    ("cifar10-mlp", "cifar10-mlp-19"),
    ("cifar10-cnn", "cifar10-cnn-19"),
    ("cifar10-augmentation", "cifar10-augmentation-21"),
    ("transfer-learning", "3dce289e"),  # the head
    ("transfer-learning", "f7a1c006"),  # the fine-tuning
    ("conv-visualization", "77b23dd5"),  # its fallback: trains lesson 3's CNN when the checkpoint is missing
    ("modern-cnn", "modern-25"),
    ("data-parallel", "a963abae"),
]

# lesson -> parameters on top of its quick ones, to keep the test short
OVERRIDES = {
    "modern-cnn": {"PRECISION": "float32", "N_TRAIN": 512},  # float32: no timing of 16-bit arithmetic first
}

PROBE_TAG = "RERUN-PROBE "

PROBE = """\
import keras as _keras

_probe, _plain_fit = [], _keras.Model.fit


def _rate(model):
    return float(_keras.ops.convert_to_numpy(model.optimizer.learning_rate))


class _Probe(_keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        _probe.append({"begin_rate": _rate(self.model), "epochs": []})

    def on_epoch_end(self, epoch, logs=None):
        _probe[-1]["epochs"].append({"rate": _rate(self.model), "loss": float(logs["loss"]),
                                     "accuracy": float(logs.get("accuracy", "nan"))})


def _probed_fit(self, *args, callbacks=None, **kwargs):
    return _plain_fit(self, *args, callbacks=[*(callbacks or []), _Probe()], **kwargs)


_keras.Model.fit = _probed_fit
"""

REPORT = f"""\
import json as _json

_keras.Model.fit = _plain_fit
print({PROBE_TAG!r} + _json.dumps(_probe))
"""


def run_twice_copy(lesson, cell_id, folder):
    """Write lesson's notebook, cut after its training cell `cell_id`, with the probe, the cell again and the report.

    Returns the copy's path (in `folder`, beside nothing else) and the index of
    the second training cell in it. Raises AssertionError when the training
    cell's id is not in the notebook.
    """
    nb = nbformat.read(REPO / runner.LESSONS[lesson], as_version=4)
    ids = [cell.get("id") for cell in nb.cells]
    assert cell_id in ids, f"{lesson}: no cell {cell_id} (renamed?)"
    at = ids.index(cell_id)
    again = nbformat.v4.new_code_cell(nb.cells[at].source)
    nb.cells = nb.cells[: at + 1] + [nbformat.v4.new_code_cell(PROBE), again, nbformat.v4.new_code_cell(REPORT)]
    path = folder / Path(runner.LESSONS[lesson]).name
    nbformat.write(nb, path)
    return path, at + 2


def cell_text(executed_path, index):
    """Return what the executed notebook's code cell `index` (of the source, before injection) printed."""
    cells = nbformat.read(executed_path, as_version=4).cells
    cells = [c for c in cells if "injected-parameters" not in c.metadata.get("tags", [])]
    return "\n".join(out.get("text", "") for out in cells[index].get("outputs", []))


@pytest.mark.parametrize(
    ("lesson", "cell_id"), TRAINING_CELLS, ids=[f"{lesson}-{cell}" for lesson, cell in TRAINING_CELLS]
)
def test_training_cell_run_twice_trains_again(lesson, cell_id, keras_backend, tmp_path, tmp_path_factory):
    if lesson not in ON_OTHER_BACKENDS:
        only_on_tensorflow_by_default(keras_backend, lesson)
    (tmp_path / "lesson").mkdir()
    path, second = run_twice_copy(lesson, cell_id, tmp_path / "lesson")
    with offline_home(tmp_path_factory, f"rerun-{lesson}-{cell_id}"):
        result = runner.run_lesson(
            lesson, OVERRIDES.get(lesson, {}), tmp_path / "out", timeout=600, quick=True, lessons={lesson: path}
        )
    assert result["status"] == "passed", result["error"]
    reported = [line for line in result["text"].splitlines() if line.startswith(PROBE_TAG)]
    assert len(reported) == 1, "the probe's report is missing"
    fits = json.loads(reported[0][len(PROBE_TAG) :])
    assert fits, "the second run of the training cell did not call fit"
    for fit in fits:
        assert fit["begin_rate"] > 0, f"a fit of the second run starts at learning rate {fit['begin_rate']}"
        assert fit["epochs"], "a fit of the second run trained no epoch"
        for epoch in fit["epochs"]:
            assert epoch["rate"] >= 0, f"the learning rate fell to {epoch['rate']} in the second run"
            assert math.isfinite(epoch["loss"]), f"loss {epoch['loss']} in the second run"
            assert math.isfinite(epoch["accuracy"]), "no accuracy measured in the second run"
    text = cell_text(result["executed_path"], second)
    assert re.search(r"accuracy[^\n]*\d", text, re.IGNORECASE), f"the second run printed no accuracy:\n{text}"
