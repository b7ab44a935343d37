"""Lesson 8 (training speed) runs top to bottom, on each Keras backend.

Through the quick-mode contract (`runner.run_lesson(..., quick=True)`),
offline, with empty data and Keras folders (so on the labelled CIFAR-10
stand-in). The tests run it with ``SKIP=[]`` so that every lever is
measured (the quick parameters skip the two slowest to start). The checks
are what the lesson promises: the processor and backend lines, a table row
per lever with positive images/s and a ratio (or the reason it was
skipped), a measured verdict per lever, a time-to-68% line per run (a time
or an explicit "more than"), the report lines and the chart.
"""

import re
from pathlib import Path

import pytest

from cnn_course import lessons, runner
from cnn_course.speed import cpu_model
from lesson_checks import check_committed, check_executed, offline_home, png_outputs

REPO = Path(__file__).resolve().parents[1]
ON_EVERY_BACKEND = True  # the levers differ by backend (conftest.py)
LESSON = REPO / runner.LESSONS["training-speed"]
LEVERS = ["batch size", "mixed precision", "steps_per_execution", "jit_compile", "uint8 input", "threads", "together"]
NUMBER = r"[\d,]+"


@pytest.fixture(scope="module")
def offline(tmp_path_factory, keras_backend):
    """Empty data and Keras folders for the notebook kernels (on each backend); downloads refused."""
    with offline_home(tmp_path_factory, f"lesson-8-{keras_backend}") as home:
        yield home, keras_backend


@pytest.fixture(scope="module")
def quick_run(offline):
    home, backend = offline
    result = runner.run_lesson("training-speed", {"SKIP": []}, home / "quick", timeout=900, quick=True)
    return result, check_executed(result), backend


def table_rows(text):
    """Return {lever: the rest of its table line} from the printed table."""
    table = text.split("Load average (1, 5, 15 min)", 1)[1].split("\n-----", 1)[1].split("Load average now", 1)[0]
    rows = {}
    for line in table.splitlines():
        for lever in LEVERS:
            if line.startswith(lever + " "):
                rows[lever] = line[len(lever) :].strip()
    return rows


def test_it_names_the_processor_the_backend_and_the_gpu(quick_run):
    result, text, backend = quick_run
    assert f"Processor: {cpu_model()}, " in text
    assert re.search(rf"^Backend: Keras [\d.]+ on {backend} [\w.]+$", text, re.MULTILINE)
    gpu = re.search(r"^GPU: (.+); 16-bit policy measured: (mixed_bfloat16|mixed_float16)$", text, re.MULTILINE)
    assert gpu and (gpu.group(1) == "none") == (gpu.group(2) == "mixed_bfloat16")  # float16 on a GPU
    assert "STAND-IN for CIFAR-10" in (result["data"] or "")


def test_every_lever_has_a_row_with_positive_speeds_and_a_ratio_or_a_reason(quick_run):
    _, text, backend = quick_run
    rows = table_rows(text)
    assert list(rows) == LEVERS
    skipped = {lever: row.split("skipped: ", 1)[1] for lever, row in rows.items() if "skipped: " in row}
    if backend == "jax":
        assert skipped == {
            "jit_compile": "Keras on JAX compiles with XLA by default",
            "threads": "a TensorFlow setting; the backend is jax",
        }
    else:
        assert set(skipped) <= {"threads"}  # only on a one-core machine
        assert all(reason == "one core: nothing to compare" for reason in skipped.values())
    for lever, row in rows.items():
        if lever in skipped:
            continue
        m = re.search(rf"({NUMBER}) +({NUMBER}) +(\d+\.\d\d)x +(\d+\.\d\d)-(\d+\.\d\d)x$", row)
        assert m, row
        plain, fast, ratio, low, high = m.groups()
        assert float(plain.replace(",", "")) > 0 and float(fast.replace(",", "")) > 0, row
        assert 0 < float(low) <= float(ratio) <= float(high), row


def test_each_measured_lever_prints_its_verdict(quick_run):
    _, text, backend = quick_run
    verdicts = re.findall(
        r"^on this machine, (.+?) trained at (\d+\.\d\d)x (.+?)'s speed: "
        r"(faster|slower|about the same)",
        text,
        re.MULTILINE,
    )
    names = [v[0] for v in verdicts]
    assert names[:3] == ["batch 128", "mixed_bfloat16", "steps_per_execution=8"]
    assert "uint8 input" in names and names[-1] == "the fast setting"
    assert ("jit_compile=True" in names) == (backend == "tensorflow")
    for _, ratio, _, word in verdicts:
        r = float(ratio)
        assert word == ("faster" if r >= 1.05 else "slower" if r <= 0.95 else "about the same")
    assert re.search(r"^Fast setting: .+$", text, re.MULTILINE)


def test_time_to_68_percent_is_a_time_or_an_explicit_lower_bound(quick_run):
    result, text, _ = quick_run
    lines = re.findall(r"^Time to 68%: (plain|batch 128|fast setting): (.+)$", text, re.MULTILINE)
    assert [name for name, _ in lines] == ["plain", "batch 128", "fast setting"]
    for name, rest in lines:
        assert re.match(r"(\d+\.\d s|more than \d+ s \(not reached in 1 epochs\))", rest), rest
        if name != "plain":
            assert re.search(r"; (speed-up over plain: (at least )?\d+\.\d\dx|no speed-up to state)$", rest), rest
    assert result["epochs"] == 1
    assert result["test_accuracy"] is not None and "STAND-IN data" in text


def test_the_chart_is_drawn(quick_run):
    result, _, _ = quick_run
    assert png_outputs(result["executed_path"]) == 1


def test_quick_parameters_skip_only_the_slow_levers_and_the_full_lesson_skips_none():
    assert lessons.lesson_parameters("training-speed", True)["SKIP"] == ["jit_compile", "threads"]
    nb = check_committed(LESSON, "training-speed")
    defaults = {}
    exec(next(c for c in nb.cells if "parameters" in c.metadata.get("tags", [])).source, {}, defaults)  # noqa: S102
    assert defaults["SKIP"] == [] and defaults["BATCH_SIZE"] == 512 and defaults["EPOCHS"] >= 10


def test_the_lever_code_is_visible_in_the_notebook():
    nb = check_committed(LESSON, "training-speed")
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    for snippet in [
        "keras.mixed_precision.set_global_policy(SIXTEEN_BIT)",
        "steps_per_execution=8",
        "jit_compile=True",
        "keras.layers.Rescaling(1 / 127.5, offset=-1)",
        "keras.optimizers.Adam(learning_rate=LEARNING_RATE)",
        'dtype="uint8" if uint8_input',
    ]:
        assert snippet in code, snippet
