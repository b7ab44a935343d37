"""Keeping the lesson notebooks diff-friendly in git.

`strip_notebook` clears a notebook's outputs and execution counts;
`tracked_notebooks` lists the notebooks of the repository.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import nbformat

from .lessons import INJECTED_TAG, REPO_ROOT


_TRANSIENT_CELL_METADATA = ("execution", "collapsed", "scrolled", "ExecuteTime")
_TRANSIENT_NOTEBOOK_METADATA = ("widgets", "papermill")


def strip_notebook(path):
    """Clear outputs, execution counts and transient metadata of a notebook in place.

    Cells tagged ``injected-parameters`` (left by a run) are removed too.
    The file is rewritten only when something changed, and replaced whole
    (never left half-written) with its permissions kept; a symbolic link is
    followed, and its target is what gets stripped (the link stays a link).
    Returns True when the file changed.
    Raises FileNotFoundError when it
    does not exist and nbformat's errors when it is not a notebook.
    """
    path = Path(os.path.realpath(path))  # through a symlink: strip what it points at
    before = path.read_text(encoding="utf-8")
    nb = nbformat.reads(before, as_version=4)
    nb.cells = [c for c in nb.cells if INJECTED_TAG not in c.get("metadata", {}).get("tags", [])]
    for cell in nb.cells:
        for key in _TRANSIENT_CELL_METADATA:
            cell.metadata.pop(key, None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    for key in _TRANSIENT_NOTEBOOK_METADATA:
        nb.metadata.pop(key, None)
    after = nbformat.writes(nb)
    after += "" if after.endswith("\n") else "\n"
    if after == before:
        return False
    _replace_keeping_mode(path, after)
    return True


def _replace_keeping_mode(path, text):
    """Replace the file ``path`` whole by ``text`` (UTF-8), keeping its
    permission bits: an interrupted or failed write leaves it as it was and
    leaves no temporary file. Returns None; raises OSError."""
    mode = path.stat().st_mode & 0o7777
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), mode)
            f.write(text)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def tracked_notebooks(root=REPO_ROOT):
    """Return the .ipynb files under `root` that git tracks or would track (sorted Paths).

    Untracked notebooks that are not git-ignored count (a new lesson is stripped
    before its first commit); ignored ones (build/) do not. Falls back to every .ipynb under `root` outside hidden folders, build/
    and tests/ when git is unavailable.
    """
    root = Path(root)
    try:
        done = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "*.ipynb"],
            cwd=root, capture_output=True, text=True, check=True,
        )
        return sorted({root / name for name in done.stdout.split("\0") if name})
    except (OSError, subprocess.CalledProcessError):
        skip = {"build", "tests"}
        return sorted(
            p for p in root.rglob("*.ipynb")
            if not any(part.startswith(".") or part in skip for part in p.relative_to(root).parts[:-1])
        )
