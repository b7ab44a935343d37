"""Writing into the data folders safely: through a temporary name beside
the target, then replacing it; refusing archive members that point
outside the target folder."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from .errors import DataError
from .places import data_dirs
from . import places


def replace_with(new: Path, dest: Path) -> None:
    """Move ``new`` to ``dest``, replacing whatever is there."""
    remove(dest)
    os.replace(new, dest)


def remove(path: Path) -> None:
    """Delete a file or folder if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def may_write(folder: Path) -> bool:
    """Return True when files may be written in ``folder`` (made if missing):
    it, or its nearest existing parent, is writable and has a write
    permission bit. A folder marked read-only (mode r-x, such as a shared
    copy of the data) counts as read-only even for root, who could write
    there anyway. Raises nothing."""
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return folder.is_dir() and bool(folder.stat().st_mode & 0o222) and os.access(folder, os.W_OK)
    except OSError:
        return False


def writable_import_dir() -> Path:
    """Return data_dirs()[0] (created if needed) when writable, else the
    repo's data folder. Raises DataError when neither is writable."""
    for d in dict.fromkeys([data_dirs()[0], places.REPO_DATA_DIR]):
        try:
            d.mkdir(parents=True, exist_ok=True)
            probe = tempfile.TemporaryFile(dir=d)
            probe.close()
            return d
        except OSError:
            continue
    raise DataError(f"no writable data folder among {', '.join(map(str, data_dirs()))}")


def copy_in(src: Path, dest: Path) -> None:
    """Copy a file or folder to ``dest`` through a temporary name beside it,
    replacing what was there."""
    work = Path(tempfile.mkdtemp(prefix=".tmp-import-", dir=dest.parent))
    try:
        if src.is_dir():
            shutil.copytree(src, work / dest.name)
        else:
            shutil.copyfile(src, work / dest.name)
        replace_with(work / dest.name, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def safe_member_path(dest: Path, name: str) -> Path:
    """Return dest/name, refusing names that would land outside ``dest``."""
    target = (dest / name).resolve()
    if not str(target).startswith(str(dest.resolve()) + os.sep):
        raise DataError(f"refusing to unpack {name!r}: it points outside {dest}")
    return target


def write_pickles_folder(batches: dict, dest: Path) -> Path:
    """Write {name: bytes} into the folder ``dest`` (through a temporary
    folder, replacing what was there). Returns dest. Raises OSError."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".tmp-", dir=dest.parent))
    try:
        (work / dest.name).mkdir()
        for name, data in batches.items():
            (work / dest.name / name).write_bytes(data)
        replace_with(work / dest.name, dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dest

