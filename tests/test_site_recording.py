"""What a recording of a run (website/runs/) may keep: what the run measured, never the dataset's pixels.

Every code cell of the lessons (and their answer notebooks) that draws
images says which kind it draws with a tag (the rule is in CONTRIBUTING.md,
"What a recording keeps"): `dataset-images` (the dataset's images or direct
transforms of them), whose figures `website/build.py record` replaces with a
note, or `not-dataset-images` (learned weights drawn as images, say), whose
figures are kept like every other measured figure.
"""

import importlib.util
import json
import re
from pathlib import Path

import nbformat
import pytest

from cnn_course import lessons

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("website_build", REPO / "website" / "build.py")
site = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(site)

NOT_DATASET_IMAGES = "not-dataset-images"
# Helpers of cnn_course.plots that always draw images of the data they are given.
ALWAYS_DATASET = ("show_pixel_values", "show_predictions", "show_right_and_wrong", "show_heat_maps")
# Calls that draw whatever array they get: the cell's tag says whether it is the dataset's.
ANY_IMAGES = ("show_images", "show_feature_maps", "imshow", "matshow", "pcolormesh")
_CALL = re.compile(r"\b(" + "|".join(ALWAYS_DATASET + ANY_IMAGES) + r")\s*\(")
NOTEBOOKS = [path for path in site.recorded_paths().values() if path.endswith(".ipynb") and (REPO / path).is_file()]


def image_tag_problems(nb):
    """Return one line per code cell of `nb` that breaks the tagging rule."""
    wrong = []
    for number, cell in enumerate(nb.cells, 1):
        if cell.cell_type != "code":
            continue
        tags = set(cell.metadata.get("tags", []))
        calls = set(_CALL.findall(cell.source))
        first = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
        if {site.DATASET_IMAGES_TAG, NOT_DATASET_IMAGES} <= tags:
            wrong.append(f"cell {number} `{first}`: both tags")
        elif calls & set(ALWAYS_DATASET) and site.DATASET_IMAGES_TAG not in tags:
            wrong.append(f"cell {number} `{first}` calls {sorted(calls)}: tag it {site.DATASET_IMAGES_TAG}")
        elif calls and not tags & {site.DATASET_IMAGES_TAG, NOT_DATASET_IMAGES}:
            wrong.append(
                f"cell {number} `{first}` calls {sorted(calls)}: tag it {site.DATASET_IMAGES_TAG} "
                f"(the dataset's images or transforms of them) or {NOT_DATASET_IMAGES} (e.g. weights)"
            )
    return wrong


@pytest.mark.parametrize("path", NOTEBOOKS)
def test_every_cell_that_draws_images_says_whether_they_are_the_datasets(path):
    assert image_tag_problems(nbformat.read(REPO / path, as_version=4)) == []


def test_the_tagging_rule_bites():
    def cell(source, *tags):
        return nbformat.v4.new_code_cell(source, metadata={"tags": list(tags)})

    nb = nbformat.v4.new_notebook(
        cells=[
            cell("plots.show_images(x_train[:6])\nplt.show()"),  # 1: untagged sample grid
            cell("show_right_and_wrong(x, y, p)", NOT_DATASET_IMAGES),  # 2: always the data
            cell("ax.imshow(photo)", site.DATASET_IMAGES_TAG),  # fine
            cell("show_images(weights)", NOT_DATASET_IMAGES),  # fine
            cell("plot_history(history)"),  # fine: a measurement
        ]
    )
    problems = image_tag_problems(nb)
    assert [line.split(" `")[0] for line in problems] == ["cell 1", "cell 2"], problems


def _figure():
    return nbformat.from_dict(
        {"output_type": "display_data", "metadata": {}, "data": {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"}}
    )


def _stream(text):
    return nbformat.from_dict({"output_type": "stream", "name": "stdout", "text": text})


def test_recording_keeps_measured_figures_and_drops_the_datasets(tmp_path):
    """`record` of a fake full run of mnist-mlp: every code cell drew a figure and printed a line."""
    path = lessons.LESSONS["mnist-mlp"]
    nb = nbformat.read(REPO / path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [_stream(f"{cell.id} printed\n"), _figure()]
    run = tmp_path / "run"
    run.mkdir()
    nbformat.write(nb, run / Path(path).name)
    report = {
        "mode": "full",
        "environment": {"device": "CPU"},
        "lessons": [
            {"lesson": "mnist-mlp", "status": "passed", "executed_path": str(run / Path(path).name), "epochs": 1}
        ],
    }
    (run / "results.json").write_text(json.dumps(report))
    assert site.record_run(run, tmp_path / "runs") == (["mnist-mlp"], {})
    recorded = nbformat.read(tmp_path / "runs" / path, as_version=4)
    tagged = [c for c in recorded.cells if site.DATASET_IMAGES_TAG in c.metadata.get("tags", [])]
    measured = [c for c in recorded.cells if c.cell_type == "code" and c not in tagged]
    assert len(tagged) >= 3 and measured  # mnist-mlp shows digits, their pixels and its right and wrong answers
    for cell in tagged:
        assert site.figure_count([cell]) == 0
        assert cell.outputs[0]["text"] == f"{cell.id} printed\n"  # what it printed stays
        assert cell.outputs[1]["data"]["text/markdown"] == site.DATASET_IMAGES_NOTE
    assert all(site.figure_count([cell]) == 1 for cell in measured)  # a training curve, say, stays
    raw = (tmp_path / "runs" / path).read_text()
    assert raw.count("iVBORw0KGgo=") == len(measured)


def test_committed_recordings_hold_no_dataset_images():
    for path in NOTEBOOKS:
        recording = site.RUNS_DIR / path
        if recording.is_file():
            nb = nbformat.read(recording, as_version=4)
            tagged = [c for c in nb.cells if site.DATASET_IMAGES_TAG in c.metadata.get("tags", [])]
            assert site.figure_count(tagged) == 0, path
