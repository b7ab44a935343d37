"""A smoke run ends with the way forward; a full run on real data ends as before.

The runs go through a fake lesson registry of tiny scripts that print the
lines a lesson prints (a stand-in's or a real dataset's ``Data:`` line and a
test accuracy), so no lesson is executed.
"""

import json
import re
from pathlib import Path

from cnn_course import __main__ as cli
from cnn_course import lessons, reports, runner
from test_cli import fake_env  # noqa: F401 (a fixture)

REPO = Path(__file__).resolve().parents[1]
STAND_IN_MNIST = (
    "STAND-IN for MNIST: scikit-learn digits resized to 28x28, 1797 train / 200 test "
    "(real MNIST not found; `python -m cnn_course data fetch mnist` gets it)"
)
STAND_IN_WEIGHTS = (
    "STAND-IN: random weights for MobileNetV2 (mobilenet.h5 not found; "
    "`python -m cnn_course data fetch weights` gets it)"
)
REAL_MNIST = "MNIST (real, 60000 train / 10000 test, from /data/mnist.npz)"


def _lesson_script(folder, name, data, accuracy):
    """Write a script lesson that prints `data` as its Data: line and a test accuracy."""
    path = folder / f"{name}.py"
    path.write_text(f"print({'Data: ' + data!r})\nprint('Test accuracy: {accuracy:.2f}%')\n", encoding="utf-8")
    return str(path)


def _run(tmp_path, monkeypatch, capsys, lessons_data, *args):
    registry = {name: _lesson_script(tmp_path, name, data, acc) for name, data, acc in lessons_data}
    monkeypatch.setattr(runner, "LESSONS", registry)
    out_dir = tmp_path / "build"
    code = cli.main(["run", *args, "--out", str(out_dir)])
    assert code == 0
    out = capsys.readouterr().out
    return out, (out_dir / "results.md").read_text(), json.loads((out_dir / "results.json").read_text())


def test_a_quick_run_on_stand_ins_marks_them_and_prints_the_next_steps(tmp_path, monkeypatch, capsys, fake_env):
    out, md, report = _run(
        tmp_path,
        monkeypatch,
        capsys,
        [
            ("digits", STAND_IN_MNIST, 75.56),
            ("dogs", STAND_IN_WEIGHTS, 20.0),
            ("real", REAL_MNIST, 98.21),
        ],
        "--quick",
    )
    for text in (out, md):
        rows = [line for line in text.splitlines() if line.startswith("| ")]
        assert "75.56% (stand-in)" in rows[1] and "20.00% (stand-in)" in rows[2]
        assert "98.21%" in rows[3] and "stand-in" not in rows[3]
        assert reports.STAND_IN_FOOTNOTE in text
    assert [r["stand_in"] for r in report["lessons"]] == [True, True, False]
    assert report["lessons"][0]["test_accuracy"] == 75.56  # the number is kept, and marked

    steps = out[out.index("Next steps:") :]
    python = cli.python_command()
    assert f"    {python} -m cnn_course data fetch all" in steps
    assert f"    {python} -m cnn_course data fetch mnist" in steps
    assert f"    {python} -m cnn_course data fetch weights" in steps
    assert "2 lesson(s) ran on stand-in data" in steps
    assert "`make full`" in steps and "`make lab`" in steps
    assert "Test accuracy 75.56% (stand-in)" in out and "Test accuracy 98.21%\n" in out  # the live lines
    assert len(steps.splitlines()) <= 10
    assert "Next steps" not in md  # the terminal's advice, not part of the record


def test_a_quick_run_on_real_data_still_says_how_to_run_the_full_course(tmp_path, monkeypatch, capsys, fake_env):
    out, md, _ = _run(tmp_path, monkeypatch, capsys, [("real", REAL_MNIST, 98.21)], "--quick")
    steps = out[out.index("Next steps:") :]
    assert "`make full`" in steps and "stand-in" not in steps and "data fetch" not in steps
    assert reports.STAND_IN_FOOTNOTE not in out + md


def test_a_full_run_on_real_data_prints_neither(tmp_path, monkeypatch, capsys, fake_env):
    out, md, report = _run(tmp_path, monkeypatch, capsys, [("real", REAL_MNIST, 98.21)])
    assert "Next steps" not in out and "stand-in" not in out.lower() and "stand-in" not in md.lower()
    assert report["lessons"][0]["stand_in"] is False
    assert out.rstrip().splitlines()[-1].startswith("Report: ")  # it ends as before


def test_python_command_names_this_interpreter():
    python = cli.python_command()
    assert python == "python" or Path(python).name.startswith("python")


def test_make_lab_opens_the_first_lesson():
    makefile = (REPO / "Makefile").read_text()
    recipe = re.search(r"^lab:.*\n\t(.+)$", makefile, re.MULTILINE).group(1)
    first = next(iter(lessons.LESSONS.values()))
    assert recipe.split()[-2:] == ["lab", first]
    assert (REPO / first).is_file()
