"""Stripping notebooks' outputs for git: `strip_notebook`, and `tracked_notebooks` to find them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import nbformat

from .lessons import INJECTED_TAG, REPO_ROOT
from .reports import write_atomic


def strip_notebook(path):
    """Clear a notebook's outputs, execution counts, transient metadata and injected parameters cell in
    place (whole or not at all, mode kept, a link's target); return True when it changed.
    Raises FileNotFoundError, and nbformat's errors for a file that is no notebook."""
    path = Path(os.path.realpath(path))
    before = path.read_text(encoding="utf-8")
    nb = nbformat.reads(before, as_version=4)
    nb.cells = [c for c in nb.cells if INJECTED_TAG not in c.get("metadata", {}).get("tags", [])]
    for cell in nb.cells:
        for key in ("execution", "collapsed", "scrolled", "ExecuteTime"):
            cell.metadata.pop(key, None)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    for key in ("widgets", "papermill"):
        nb.metadata.pop(key, None)
    after = nbformat.writes(nb).rstrip("\n") + "\n"
    if after == before:
        return False
    write_atomic(path, after)
    return True


def tracked_notebooks(root=REPO_ROOT):
    """Return the .ipynb files under `root` that git tracks or would track (sorted Paths); without
    git, every one outside hidden folders, build/ and tests/."""
    root = Path(root)
    try:
        done = subprocess.run(
            ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "*.ipynb"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        )
        return sorted({root / name for name in done.stdout.split("\0") if name})
    except (OSError, subprocess.CalledProcessError):
        return sorted(
            p
            for p in root.rglob("*.ipynb")
            if not any(part.startswith(".") or part in ("build", "tests") for part in p.relative_to(root).parts[:-1])
        )
