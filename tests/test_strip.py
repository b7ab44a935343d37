"""`python -m cnn_course strip` keeps what it does not mean to change: a
symbolic link stays a link (its target is stripped) and the file's mode is
kept (issue 26, low 9)."""

import os
import stat
from pathlib import Path

import nbformat

from cnn_course import __main__ as cli

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def dirty_notebook(path):
    """Write the passing fixture with an output and an execution count; return path."""
    nb = nbformat.read(FIXTURES / "passing.ipynb", as_version=4)
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", name="stdout", text="hi\n")]
    nb.cells[2].execution_count = 3
    nbformat.write(nb, path)
    return path


def test_strip_through_a_symlink_strips_the_target_and_keeps_the_link(tmp_path, capsys):
    (tmp_path / "real").mkdir()
    target = dirty_notebook(tmp_path / "real" / "lesson.ipynb")
    link = tmp_path / "link.ipynb"
    link.symlink_to(target)
    assert cli.main(["strip", str(link)]) == 0
    assert link.is_symlink() and link.resolve() == target
    assert target.read_text() == (FIXTURES / "passing.ipynb").read_text()
    assert sorted(p.name for p in target.parent.iterdir()) == ["lesson.ipynb"]  # no temporary left


def test_strip_keeps_the_files_mode(tmp_path, capsys):
    path = dirty_notebook(tmp_path / "private.ipynb")
    os.chmod(path, 0o600)
    assert cli.main(["strip", str(path)]) == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == (FIXTURES / "passing.ipynb").read_text()
