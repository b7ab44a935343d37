"""The worked answers to the lessons' exercises (solutions/<lesson notebook>).

Each lesson's answer notebook has one section per exercise of the lesson,
headed "## Exercise N: <the exercise's bold title>" (checked against the
lesson, so the two cannot drift). Its prose quotes the lines it measures as
inline code ending with a colon (`No scaling, test accuracy:`): in quick mode
on stand-ins every section must print each line its prose quotes. Where a
full run is recorded (website/runs/solutions/), every number its prose
quotes (a decimal like 98.21, a count with thousands commas like 669,706, a
percentage; code and LaTeX aside) must be printed by that recording or be in
the notebook's code, to the digits quoted: the lessons' rule, with the same
helper (website/quoted_numbers.py, used by tests/test_quoted_numbers.py too).
Lessons still without an answer notebook are listed as a skip, not a pass.
"""

import importlib.util
import json
import re
from pathlib import Path

import nbformat
import pytest

from cnn_course import __main__ as cli
from cnn_course import lessons
from lesson_checks import check_executed, only_on_tensorflow_by_default

REPO = Path(__file__).resolve().parents[1]
RECORDED = REPO / "website" / "runs"
ANSWERED = [name.removesuffix(lessons.ANSWERS_SUFFIX) for name in lessons.answer_lessons()]
_QUOTED_LINE = re.compile(r"`([^`]+?:)`")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


_spec = importlib.util.spec_from_file_location("website_quoted_numbers", REPO / "website" / "quoted_numbers.py")
quoted = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(quoted)


def answer_notebook(lesson):
    return nbformat.read(REPO / lessons.answer_path(lesson), as_version=4)


def prose(cells):
    """The markdown of an answer section, its heading line removed."""
    text = "\n".join(c.source for c in cells if c.cell_type == "markdown")
    return text.split("\n", 1)[1] if "\n" in text else ""


def printed(cells):
    """What the code cells of a section printed (streams and plain text), ANSI codes removed."""
    return _ANSI.sub(
        "",
        "".join(
            out.get("text", "") + out.get("data", {}).get("text/plain", "")
            for c in cells
            if c.cell_type == "code"
            for out in c.get("outputs", [])
        ),
    )


def test_lessons_still_without_answers():
    missing = lessons.lessons_without_answers()
    if missing:
        pytest.skip(f"no answer notebook yet for {len(missing)} lesson(s): {', '.join(missing)}")


@pytest.mark.parametrize("lesson", ANSWERED)
def test_every_exercise_has_its_answer(lesson):
    titles = lessons.exercise_titles(nbformat.read(REPO / lessons.LESSONS[lesson], as_version=4))
    sections = lessons.answer_sections(answer_notebook(lesson))
    assert titles, f"{lesson} has no numbered exercises"
    assert {n: title for n, (title, _) in sections.items()} == titles
    for number, (_, cells) in sections.items():
        text = prose(cells)
        assert text.count(". ") + text.count(".\n") >= 2, f"exercise {number}: two or three sentences on why"
        assert "filled in" not in text, f"exercise {number}: placeholder prose"
        assert any(c.cell_type == "code" and c.source.strip() for c in cells), f"exercise {number}: no code"
        assert _QUOTED_LINE.search(text), f"exercise {number}: its prose quotes no printed line"


@pytest.mark.parametrize("lesson", ANSWERED)
def test_committed_answer_notebook_is_stripped_with_a_parameters_cell(lesson):
    nb = answer_notebook(lesson)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code), "not stripped"
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "VERBOSE" in lessons.parameter_names(tagged[0].source)


@pytest.fixture
def offline(tmp_path, monkeypatch, keras_backend):
    only_on_tensorflow_by_default(keras_backend, "the answer notebooks")
    for name, folder in (("CNN_COURSE_DATA", "data"), ("KERAS_HOME", "keras")):
        (tmp_path / folder).mkdir()
        monkeypatch.setenv(name, str(tmp_path / folder))
    monkeypatch.setenv("CNN_COURSE_OFFLINE", "1")
    monkeypatch.setenv("KERAS_BACKEND", keras_backend)  # `run` sets it for its kernels; undone after the test
    return tmp_path


def test_run_answers_quick_runs_every_answer_notebook_and_each_prints_what_it_claims(offline, capsys):
    """`python -m cnn_course run --answers --quick` (no names): one report row per
    lesson's answers, the lessons without answers named in one note."""
    assert cli.main(["run", "--answers", "--quick", "--out", str(offline / "out")]) == 0
    printed_by_run = capsys.readouterr().out
    missing = lessons.lessons_without_answers()
    assert (f"note: no answer notebook yet for {', '.join(missing)}" in printed_by_run) == bool(missing)
    report = json.loads((offline / "out" / "results.json").read_text())
    assert [row["lesson"] for row in report["lessons"]] == list(lessons.answer_lessons())
    for result in report["lessons"]:
        assert Path(result["executed_path"]).parent == offline / "out" / lessons.ANSWERS_DIR
        check_executed(result)
        assert "STAND-IN" in (result["data"] or "")
        executed = nbformat.read(result["executed_path"], as_version=4)
        for number, (_, cells) in lessons.answer_sections(executed).items():
            lines = [" ".join(line.split()) for line in printed(cells).splitlines()]
            for label in (" ".join(quoted.split()) for quoted in _QUOTED_LINE.findall(prose(cells))):
                assert any(line.startswith(label) for line in lines), (
                    f"{result['lesson']}, exercise {number}: no {label!r} line printed"
                )


@pytest.mark.parametrize("lesson", ANSWERED)
def test_recorded_answer_run_has_the_numbers_its_prose_quotes(lesson):
    recording = RECORDED / lessons.answer_path(lesson)
    if not recording.is_file():
        pytest.skip(
            f"no recorded full run of {lesson}'s answers ({recording.relative_to(REPO)}): "
            f"`python website/build.py refresh --answers {lesson}` records it"
        )
    missing = quoted.unmatched_in_notebook(answer_notebook(lesson), nbformat.read(recording, as_version=4))
    assert not missing, f"quoted in the prose but not printed by the recorded run nor in the code: {missing}"


def test_run_answers_of_a_lesson_without_them_is_a_usage_error(tmp_path, capsys):
    missing = lessons.lessons_without_answers()
    if not missing:
        pytest.skip("every notebook lesson has its answers")
    with pytest.raises(SystemExit) as stop:
        cli.main(["run", "--answers", missing[0], "--out", str(tmp_path / "out")])
    assert stop.value.code == 2
    assert str(lessons.answer_path(missing[0])) in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # refused before anything ran


def test_run_answers_of_a_script_lesson_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["run", "--answers", "conv-dims", "--out", str(tmp_path / "out")])
    assert stop.value.code == 2 and "script lesson" in capsys.readouterr().err
