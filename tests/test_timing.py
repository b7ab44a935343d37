"""cnn_course.timing: the alternation, the per-chunk rate, the clock to a
target, the thread subprocesses, and the wording of what was measured."""

import math

import pytest

from cnn_course import timing


def recorder(name, calls, values):
    it = iter(values)

    def run():
        calls.append(name)
        return next(it)

    return run


def test_alternate_reverses_the_order_every_other_round():
    calls = []
    values = timing.alternate({"a": recorder("a", calls, [1, 2, 3]), "b": recorder("b", calls, [4, 5, 6])}, 3)
    assert calls == ["a", "b", "b", "a", "a", "b"]
    assert values == {"a": [1, 2, 3], "b": [4, 5, 6]}


@pytest.mark.parametrize("rounds", [0, -1, 1.5, True, "2"])
def test_alternate_refuses_a_bad_number_of_rounds(rounds):
    with pytest.raises(ValueError, match="rounds must be a whole number"):
        timing.alternate({"a": lambda: 1, "b": lambda: 1}, rounds)


def test_alternate_needs_two_settings():
    with pytest.raises(ValueError, match="at least two settings"):
        timing.alternate({"a": lambda: 1}, 2)


def test_compare_warms_up_each_then_alternates_and_takes_the_median_ratio():
    calls = []
    plain = recorder("plain", calls, [999, 100, 100, 200])  # the first value is the warm-up
    lever = recorder("lever", calls, [1, 150, 300, 100])
    measured = timing.compare(plain, lever, 3)
    assert calls == ["plain", "lever", "plain", "lever", "lever", "plain", "plain", "lever"]
    assert measured["ratios"] == [1.5, 3.0, 0.5]
    assert measured["ratio"] == 1.5 and measured["plain"] == 100 and measured["lever"] == 150


@pytest.mark.parametrize(
    "ratio, word",
    [
        (0.8, "slower"),
        (1.25, "faster"),
        (1.02, "about the same"),
        (0.96, "about the same"),
        (0.95, "slower"),
        (1.05, "faster"),
    ],
)
def test_verdict_says_faster_slower_or_within_the_noise(ratio, word):
    text = timing.verdict("mixed_bfloat16", ratio, "float32")
    assert text.startswith(f"on this machine, mixed_bfloat16 trained at {ratio:.2f}x float32's speed: {word}")


@pytest.mark.parametrize("ratio", [0, -1.0, math.nan, math.inf, None, "1.2", True])
def test_verdict_refuses_a_ratio_that_is_not_a_positive_number(ratio):
    with pytest.raises(ValueError, match="positive number"):
        timing.verdict("x", ratio, "y")


def test_time_and_speedup_texts_give_lower_bounds_when_plain_never_reached_the_target():
    assert timing.time_text(41.27, 50, 12) == "41.3 s"
    assert timing.time_text(None, 150.4, 12) == "more than 150 s (not reached in 12 epochs)"
    assert timing.speedup_text(120.0, 130.0, 40.0) == "3.00x"
    assert timing.speedup_text(None, 150.0, 60.0) == "at least 2.50x"
    assert timing.speedup_text(None, 150.0, None) == "not reached"
    assert timing.speedup_text(100.0, 110.0, None) == "not reached"
    with pytest.raises(ValueError, match="positive seconds"):
        timing.speedup_text(0.0, 1.0, 1.0)


def test_table_has_a_line_per_row_and_says_why_a_row_was_skipped():
    rows = [
        timing.lever_row(
            "batch size", "512", {"plain": 1000.0, "lever": 2500.0, "ratio": 2.5, "ratios": [2.4, 2.5, 2.7]}
        ),
        timing.skipped_row("jit_compile", "True", "Keras on JAX always compiles"),
    ]
    lines = timing.table(rows).splitlines()
    assert len(lines) == 4
    assert lines[2].split()[-4:] == ["1,000", "2,500", "2.50x", "2.40-2.70x"]
    assert "skipped: Keras on JAX always compiles" in lines[3]
    with pytest.raises(KeyError):
        timing.table([{"lever": "x", "setting": "y"}])


def test_thread_rows_compare_each_count_with_the_default_round_by_round():
    rows = timing.thread_rows({2: [100.0, 200.0], 1: [50.0, 300.0]}, default=2)
    assert len(rows) == 1
    assert rows[0]["ratios"] == [0.5, 1.5] and rows[0]["ratio"] == 1.0
    assert rows[0]["setting"] == "1 (against 2)"
    with pytest.raises(ValueError, match="default of 4 threads was not measured"):
        timing.thread_rows({2: [1.0], 1: [1.0]}, default=4)


def test_plot_leaves_out_skipped_rows_and_draws_the_times():
    rows = [
        timing.lever_row("batch size", "512", {"plain": 1.0, "lever": 2.0, "ratio": 2.0, "ratios": [2.0]}),
        timing.skipped_row("threads", "1", "why"),
    ]
    fig = timing.plot_levers(
        rows, {"plain": {"seconds": None, "run_s": 300.0}, "fast": {"seconds": 60.0, "run_s": 60.0}}, 0.68
    )
    left, right = fig.axes
    assert len(left.patches) == 1
    assert [t.get_text().strip() for t in right.texts] == ["60 s", "more than 300 s"]


# --------------------------------------------------------------------------
# With Keras: a tiny model


@pytest.fixture(scope="module")
def tiny():
    keras = pytest.importorskip("keras")
    import numpy as np

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(2, activation="softmax")]
    )
    model.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=["accuracy"])
    x = np.random.default_rng(0).random((256, 8), dtype="float32")
    y = keras.utils.to_categorical(np.arange(256) % 2, 2)
    return model, x, y


def test_images_per_second_trains_a_chunk_and_refuses_one_smaller_than_a_batch(tiny):
    model, x, y = tiny
    before = [w.copy() for w in model.get_weights()]
    rate = timing.images_per_second(model, x, y, 16, 128)
    assert rate > 0 and math.isfinite(rate)
    assert any((a != b).any() for a, b in zip(before, model.get_weights()))  # it trained
    with pytest.raises(ValueError, match="at least one batch"):
        timing.images_per_second(model, x, y, 16, 8)
    with pytest.raises(ValueError, match="at most the 256 images"):
        timing.images_per_second(model, x, y, 16, 512)


def test_target_clock_stops_training_at_the_first_epoch_that_reaches_the_target(capsys):
    pytest.importorskip("keras")

    class Model:
        stop_training = False

    clock = timing.target_clock(0.68)
    clock.set_model(Model())
    clock.on_train_begin()
    clock.on_epoch_end(0, {"val_accuracy": 0.5})
    assert clock.reached_s is None and not clock.model.stop_training
    clock.on_epoch_end(1, {"val_accuracy": 0.7})
    assert clock.reached_s == clock.epochs[1]["seconds"] and clock.model.stop_training
    assert "epoch 2: validation accuracy 70.00%" in capsys.readouterr().out
    with pytest.raises(ValueError, match="between 0 and 1"):
        timing.target_clock(68)


def test_thread_rates_trains_in_a_fresh_process_per_setting(tiny):
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "tensorflow":
        with pytest.raises(ValueError, match="TensorFlow setting"):
            timing.thread_rates(*tiny, 16, 128, [1])
        return
    model, x, y = tiny
    rates = timing.thread_rates(model, x, y, 16, 128, [1], rounds=1, chunks=1)
    assert list(rates) == [1] and len(rates[1]) == 1 and rates[1][0] > 0
    with pytest.raises(ValueError, match="whole numbers of at least 1"):
        timing.thread_rates(model, x, y, 16, 128, [0])


def test_a_failing_thread_subprocess_is_one_clear_error(tmp_path):
    spec = {
        "threads": 1,
        "model": str(tmp_path / "missing.keras"),
        "data": str(tmp_path / "missing.npz"),
        "batch_size": 16,
        "chunks": 1,
    }
    with pytest.raises(RuntimeError, match=r"timing subprocess for 1 thread\(s\) failed \(exit 1\): .*missing"):
        timing._run_child(spec)


def test_paired_ratio_is_the_median_of_per_round_ratios_not_the_ratio_of_medians():
    # a load that changes between rounds: the medians' ratio (150 / 150 = 1) hides a lever faster in 2 of 3 rounds
    measured = timing.paired_ratio([100.0, 300.0, 150.0], [150.0, 200.0, 300.0])
    assert measured["ratios"] == [1.5, 200 / 300, 2.0]
    assert measured["ratio"] == 1.5
    assert measured["plain"] == 150.0 and measured["lever"] == 200.0
    for plain, lever in (([], []), ([1.0], [1.0, 2.0]), ([0.0], [1.0])):
        with pytest.raises(ValueError):
            timing.paired_ratio(plain, lever)
