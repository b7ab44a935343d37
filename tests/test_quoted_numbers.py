"""Every number that prose quotes from a run is checked against that run (issue 21 §3).

- A lesson's prose: each decimal, comma-grouped number and percentage must be
  printed by the lesson's recorded full run (website/runs/) or be in its own
  code (a setting such as 0.002), to the digits quoted. Lessons not recorded
  skip, naming the command that records them. (The answer notebooks: the same
  rule, in tests/test_answers.py, with the same helper.)
- README.md: its lesson results table is the one website/runs/results.json
  renders, between its marker lines, and its prose quotes no run's figures.
- benchmarks/README.md: a table whose line above names its results file
  (benchmarks/results/NAME.json) has only numbers from that file.

The rules and the matching are website/quoted_numbers.py's.
"""

import importlib.util
import json
import re
from pathlib import Path

import nbformat
import pytest

from cnn_course import lessons

REPO = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(f"website_{name}", REPO / "website" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


quoted = _load("quoted_numbers")
site = _load("build")
NOTEBOOK_LESSONS = [name for name, path in lessons.LESSONS.items() if path.endswith(".ipynb")]


# --------------------------------------------------------------------------
# Lessons


@pytest.mark.parametrize("lesson", NOTEBOOK_LESSONS)
def test_lesson_prose_quotes_only_numbers_of_its_recorded_run(lesson):
    path = lessons.LESSONS[lesson]
    recording = site.RUNS_DIR / path
    if not recording.is_file():
        pytest.skip(
            f"no recorded full run of {lesson} ({recording.relative_to(REPO)}): "
            f"`make site-refresh LESSONS={lesson}` records it"
        )
    current = nbformat.read(REPO / path, as_version=4)
    missing = quoted.unmatched_in_notebook(current, nbformat.read(recording, as_version=4))
    assert not missing, (
        f"{path} quotes numbers that its recorded run did not print and its code does not hold: {missing}; "
        "correct the prose, or record the lesson again"
    )


def _bumped(number):
    """`number` with its last digit changed (98.21% -> 98.28%)."""
    digits = [i for i, ch in enumerate(number) if ch.isdigit()]
    i = digits[-1]
    return number[:i] + str((int(number[i]) + 7) % 10) + number[i + 1 :]


def test_the_lesson_check_bites_on_a_changed_number():
    """A fake recording of mnist-mlp printing every number its prose quotes
    passes; the same recording with one number changed fails, naming it."""
    current = nbformat.read(REPO / lessons.LESSONS["mnist-mlp"], as_version=4)
    numbers = quoted.quoted_numbers(quoted.notebook_prose(current))
    assert numbers, "mnist-mlp's prose quotes no number: pick a lesson that does"
    in_code = quoted.Numbers(quoted.notebook_text(current, code=True))
    target = next(n for n in numbers if _bumped(n) not in in_code and n not in in_code)

    def recording(printed):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("run()")])
        nb.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed)]
        return nb

    assert quoted.unmatched_in_notebook(current, recording("\n".join(numbers))) == []
    changed = "\n".join(_bumped(n) if n == target else n for n in numbers)
    assert quoted.unmatched_in_notebook(current, recording(changed)) == [target] * numbers.count(target)


def test_quoted_numbers_are_found_in_prose_only_and_matched_to_the_digits_quoted():
    text = (
        "MLP 3.1x faster; 98.23% and 68% in 1:13 on Keras 3.15.1 with `LR = 0.002`, $0.5$ and "
        "669,706 parameters on 2026-12-04 ([paper](https://x.org/2404.00498)).\n```\n7.77\n```\n"
    )
    assert quoted.quoted_numbers(text) == ["3.1", "98.23%", "68%", "669,706"]
    run = quoted.Numbers("Test accuracy: 98.2345%\nTotal params: 669706\nspeed-up 3.14x\n", "LR = 2e-3")
    assert run.missing(["98.23%", "98.2%", "98%", "669,706", "3.1", "0.002"]) == []
    assert run.missing(["98.24%", "669,707", "3.2", "0.003", "68%"]) == ["98.24%", "669,707", "3.2", "0.003", "68%"]


def test_a_cited_figure_is_the_text_of_a_link_to_its_source_and_is_not_checked():
    """Numbers in a link's text are cited (a paper's, a dataset's documentation), not a run's;
    the same numbers outside the link, or only near it, are still checked."""
    text = (
        "[airbench (2024) reaches 94% in 3.8 seconds](https://arxiv.org/abs/2404.00498); "
        "CIFAR-10 has [60,000 photos](https://www.cs.toronto.edu/~kriz/cifar.html) and we trained on 45,000 "
        "to 72.5% (94% being the paper's)."
    )
    assert quoted.quoted_numbers(text) == ["45,000", "72.5%", "94%"]
    assert quoted.Numbers("Test accuracy: 72.51%\n45000 images").missing(quoted.quoted_numbers(text)) == ["94%"]


def test_the_listing_says_where_each_number_matches():
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_markdown_cell("LR 0.002 gave 98.2% on [60,000](https://x.org) and 1.5x."),
            nbformat.v4.new_code_cell("LR = 0.002"),
        ]
    )
    run = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("run()")])
    run.cells[0].outputs = [nbformat.v4.new_output("stream", name="stdout", text="Test accuracy: 98.23%\n")]
    assert quoted.report(nb, run) == [("0.002", "code"), ("98.2%", "run"), ("1.5", "unmatched")]
    assert quoted.report(nb) == [("0.002", "code"), ("98.2%", "unmatched"), ("1.5", "unmatched")]


# --------------------------------------------------------------------------
# README.md


def _readme_results(text):
    begin, end = text.index(site.RESULTS_BEGIN), text.index(site.RESULTS_END)
    return text[begin + len(site.RESULTS_BEGIN) : end].strip()


def test_readme_results_table_is_what_results_json_renders():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert readme.count(site.RESULTS_BEGIN) == 1 and readme.count(site.RESULTS_END) == 1
    assert _readme_results(readme) == site.results_table(site.load_results()), (
        "README.md's results table differs from website/runs/results.json: "
        "`python website/build.py record DIR` or `make site-refresh` writes it; never edit it by hand"
    )


def test_readme_table_with_nothing_recorded_is_one_line_without_numbers():
    line = site.results_table({})
    assert "\n" not in line and quoted.quoted_numbers(line) == [] and "make site-refresh" in line


def test_recording_writes_readme_table_with_the_run(tmp_path):
    """`record` with a README: the table between the markers is the new results', the rest unchanged."""
    readme = tmp_path / "README.md"
    readme.write_text(f"# Course\n\nbefore\n\n{site.RESULTS_BEGIN}\nold\n{site.RESULTS_END}\n\nafter\n")
    run = tmp_path / "run"
    run.mkdir()
    (run / "conv_dims.txt").write_text("conv-dims printed this\n")
    report = {
        "mode": "full",
        "environment": {"device": "CPU", "keras": "3.x", "backend": "tensorflow", "backend_version": "2.x"},
        "lessons": [
            {
                "lesson": "conv-dims",
                "status": "passed",
                "executed_path": str(run / "conv_dims.txt"),
                "epochs": None,
                "test_accuracy": None,
                "wall_time_s": 4.4,
            }
        ],
    }
    (run / "results.json").write_text(json.dumps(report))
    assert site.record_run(run, tmp_path / "runs", readme=readme) == (["conv-dims"], {})
    text = readme.read_text()
    rows = site.load_results(tmp_path / "runs")
    assert _readme_results(text) == site.results_table(rows)
    assert text.startswith("# Course\n\nbefore\n\n") and text.endswith("\n\nafter\n")
    table = site.results_table(rows).splitlines()
    assert table[2].startswith("| `conv-dims` | - | - | 0:04 | ") and table[2].endswith(
        f" | {rows['conv-dims']['date']} |"
    )
    assert "Not recorded yet: mnist-mlp," in table[-1]
    # without the markers nothing at all is written
    readme.write_text("no markers\n")
    with pytest.raises(site.SiteError, match="markers"):
        site.record_run(run, tmp_path / "runs2", readme=readme)
    assert not (tmp_path / "runs2").exists()


# Numbers README.md may quote that no run produced: what its set-up takes
# (2.6 GB), a setting (1.10x, 0.002), the model size a lesson uses (0.35),
# the goals (68%, 85%, 90%), and another report's figure (issue 12's 0.7x).
README_NOT_FROM_A_RUN = {"2.6", "1.10", "0.002", "0.35", "68%", "85%", "90%", "0.7"}


def test_readme_prose_quotes_no_figure_of_an_unrecorded_run():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    begin, end = readme.index(site.RESULTS_BEGIN), readme.index(site.RESULTS_END)
    prose = readme[:begin] + readme[end:]
    prose = re.sub(r"Python 3\.\d+(–3\.\d+)?", " ", prose)  # the Python versions it supports
    figures = sorted(set(quoted.quoted_numbers(prose)) - README_NOT_FROM_A_RUN)
    assert figures == [], (
        "README.md quotes figures that no recorded run checks: put them in the generated results table "
        "(a recorded run), in benchmarks/README.md (a dated log or a checked table), or drop them"
    )


# --------------------------------------------------------------------------
# benchmarks/README.md


def test_benchmark_tables_equal_the_results_files_they_name():
    assert quoted.unmatched_in_tables((REPO / "benchmarks" / "README.md").read_text(encoding="utf-8"), REPO) == {}


def test_the_benchmark_check_bites(tmp_path):
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "benchmarks" / "results" / "run.json").write_text(
        json.dumps({"models": {"cnn": {"images_per_s": 394182.4, "epoch_s": 0.1143, "accuracy": 0.6831, "epochs": 12}}})
    )
    table = (
        "Measured (`benchmarks/results/run.json`):\n\n"
        "| model | images/s | s / epoch | accuracy | epochs |\n| --- | ---: | ---: | ---: | ---: |\n"
        "| `cnn` | {} | 0.114 | 68.31% | 12 |\n"
    )
    assert quoted.unmatched_in_tables(table.format("394,182"), tmp_path) == {}
    assert quoted.unmatched_in_tables(table.format("394,812"), tmp_path) == {
        "line 3 (benchmarks/results/run.json)": ["394,812"]
    }
    unnamed = table.replace("(`benchmarks/results/run.json`)", "by hand").format("1")
    assert quoted.unmatched_in_tables(unnamed, tmp_path) == {}  # a table naming no file is not checked
    missing = table.replace("run.json", "gone.json").format("1")
    assert quoted.unmatched_in_tables(missing, tmp_path) == {"line 3 (benchmarks/results/gone.json)": ["file missing"]}


def test_a_table_can_name_several_run_logs(tmp_path):
    results = tmp_path / "benchmarks" / "results"
    results.mkdir(parents=True)
    (results / "a.log").write_text("Test accuracy: 90.26% (6 views averaged)\n")
    (results / "b.log").write_text("Test accuracy: 89.93% (6 views averaged)\n")
    table = (
        "Logs: `benchmarks/results/a.log` `benchmarks/results/b.log`\n\n"
        "| run | 6 views |\n| --- | ---: |\n| first | {} |\n| second | 89.93% |\n"
    )
    assert quoted.unmatched_in_tables(table.format("90.26%"), tmp_path) == {}
    assert quoted.unmatched_in_tables(table.format("90.62%"), tmp_path) == {
        "line 3 (benchmarks/results/a.log, benchmarks/results/b.log)": ["90.62%"]
    }


def test_the_gpu_tables_are_checked():
    """The H200 tables name their files, so the check above covers them (it would pass vacuously otherwise)."""
    named = [
        quoted.results_files_of(before)
        for _, before, _ in quoted.tables((REPO / "benchmarks" / "README.md").read_text(encoding="utf-8"))
    ]
    assert ["benchmarks/results/gpu-h200-2026-12-04.json"] in named
    assert any(len(names) == 4 and all(n.endswith(".log") for n in names) for names in named)
