"""The small helpers the lessons, the run report and the benchmarks share (issue 24):
one ABBA loop, one table formatter, one atomic write, one machine description."""

import time

import pytest

from cnn_course import reports, speed, timing


def test_alternate_stops_after_its_time_budget_but_not_before_two_rounds():
    calls = []

    def slow(name):
        def run():
            calls.append(name)
            time.sleep(0.02)
            return 1.0

        return run

    values = timing.alternate({"a": slow("a"), "b": slow("b")}, rounds=10, budget_s=0.0)
    assert calls == ["a", "b", "b", "a"] and values == {"a": [1.0, 1.0], "b": [1.0, 1.0]}


def test_text_table_aligns_plain_and_markdown_and_lets_a_short_row_run_on():
    rows = [["mlp", "1,024", "2.50x"], ["cnn", "skipped: no GPU"]]
    plain = reports.text_table(["model", "images/s", "ratio"], rows, right={1, 2}).splitlines()
    assert plain[0] == "model  images/s  ratio" and set(plain[1]) == {"-"}
    assert plain[2] == "mlp       1,024  2.50x" and plain[3] == "cnn    skipped: no GPU"
    markdown = reports.text_table(["a", "b"], [["x", "12"]], right={1}, markdown=True).splitlines()
    assert markdown == ["| a |  b |", "|---|---:|", "| x | 12 |"]
    padded = reports.text_table(["model".ljust(8), "n"], [["mlp", "1"]], sep=" ").splitlines()
    assert padded[2] == "mlp      1"  # a padded header cell is the column's least width


def test_write_atomic_writes_text_or_bytes_whole_and_keeps_the_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    assert reports.write_atomic(path, "old\n") == path and path.read_text() == "old\n"
    reports.write_atomic(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"

    def disk_full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(reports.os, "replace", disk_full)
    with pytest.raises(OSError, match="No space left"):
        reports.write_atomic(path, "new\n")
    assert path.read_bytes() == b"\x00\x01" and [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_describe_machine_names_the_processor_backend_and_versions():
    pytest.importorskip("keras")
    machine = speed.describe_machine()
    assert machine["cpu"].startswith(speed.cpu_model()) and machine["cpu"].endswith(" cores")
    assert machine["where"] in (f"CPU: {machine['cpu']}", f"GPU: {machine['device']}")
    assert machine["versions"] == f"Keras {machine['keras']}, {machine['backend']} {machine['backend_version']}"


def test_target_clock_can_count_from_an_earlier_start_and_keep_training():
    pytest.importorskip("keras")

    class Model:
        stop_training = False

    start = time.perf_counter() - 10
    clock = timing.target_clock(0.5, verbose=False, start=start, stop=False)
    clock.set_model(Model())
    clock.on_train_begin()
    clock.on_epoch_begin(0)
    clock.on_epoch_end(0, {"val_accuracy": 0.9})
    (epoch,) = clock.epochs
    assert epoch["seconds"] >= 10 and clock.reached_s == epoch["seconds"] and not clock.model.stop_training
    assert 0 <= epoch["train_s"] <= epoch["epoch_s"] < 10
