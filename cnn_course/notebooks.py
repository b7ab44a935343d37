"""Stripping notebooks' outputs for git: `strip_notebook`, and `tracked_notebooks` to find them."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import nbformat

from .lessons import INJECTED_TAG, REPO_ROOT


def strip_notebook(path):
    """Clear a notebook's outputs, execution counts, transient metadata and
    injected parameters cell, in place; return True when the file changed.

    The file is replaced whole (never half-written, no temporary left) with
    its permissions kept; a symbolic link's target is stripped. Raises
    FileNotFoundError, and nbformat's errors for a file that is no notebook.
    """
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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), path.stat().st_mode & 0o7777)
            f.write(after)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return True


def tracked_notebooks(root=REPO_ROOT):
    """Return the .ipynb files under `root` that git tracks or would track
    (sorted Paths; git-ignored ones such as build/ left out); without git,
    every one outside hidden folders, build/ and tests/."""
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
