"""Writing into the data folders safely.

Everything new is built in a temporary folder beside its target, checked
there, and only then moved into place (:func:`staging`, :func:`install`), so
a failed or interrupted command never removes what was there and never
leaves half a copy behind. Temporary names carry the process id
(``.tmp-cnn-course-<pid>-...``): they are removed on every exit path, and
those of processes that died without cleaning up (killed) are swept away the
next time the folder is written (:func:`sweep_stale`).

Also here: the checks on the names and sizes of archive members and on
symbolic links inside a dataset tree.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
import warnings
import zipfile
from pathlib import Path, PurePosixPath

from .errors import DataError
from .places import data_dirs
from . import places

TEMP_PREFIX = ".tmp-cnn-course-"
# Temporary names of this package: ".tmp-cnn-course-<pid>-..." (staging
# folders, and the decode cache's files while they are written). Nothing else
# is ever swept, whatever it is called.
_TEMP_NAME = re.compile(r"^\.tmp-cnn-course-(\d+)-")


def pid_alive(pid: int) -> bool:
    """Return whether a process with this id exists (on this machine)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, belongs to someone else
        return True
    except OSError:
        return True
    return True


def sweep_stale(folder: Path) -> list[Path]:
    """Remove the temporary files and folders this package left in
    ``folder`` from processes that no longer run. Returns what was removed.
    Raises nothing (an unreadable folder is left alone)."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = _TEMP_NAME.match(entry.name)
        if not m or pid_alive(int(m.group(1))):
            continue
        try:
            remove(Path(entry.path))
            removed.append(Path(entry.path))
        except OSError:
            pass
    return removed


def temp_name(folder: Path, name: str) -> Path:
    """Return a temporary path for ``name`` in ``folder`` carrying this
    process's id, after sweeping stale temporaries there."""
    sweep_stale(folder)
    return folder / f"{TEMP_PREFIX}{os.getpid()}-{name}"


@contextlib.contextmanager
def staging(parent: Path):
    """Create a temporary folder in ``parent`` (created if needed) and yield
    it; it is removed with everything in it on every way out, Ctrl-C
    included. Raises OSError when ``parent`` is not writable."""
    parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(parent)
    work = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-", dir=parent))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def install(new: Path, dest: Path, work: Path) -> Path:
    """Put ``new`` (checked, inside the staging folder ``work``, on the same
    file system as ``dest``) in place of ``dest``. A file replaces a file
    atomically; otherwise the old ``dest`` is moved into ``work`` first (and
    removed with it) and put back if the second rename fails or is
    interrupted. Returns dest. Raises DataError when ``dest`` is of another
    kind than ``new`` (a folder where a file goes, or the other way round:
    see :func:`check_same_kind`), OSError."""
    check_same_kind(new.is_dir(), dest)
    real_dir = dest.is_dir() and not dest.is_symlink()
    if not (dest.exists() or dest.is_symlink()) or (new.is_file() and not real_dir):
        os.replace(new, dest)
        return dest
    old = work / ".old"
    os.replace(dest, old)
    try:
        os.replace(new, dest)
    except BaseException:
        os.replace(old, dest)
        raise
    return dest


def check_same_kind(is_dir: bool, dest: Path) -> None:
    """Refuse to replace ``dest`` with something of another kind: a folder
    (``is_dir``) where a file is, a file where a folder is, or anything where
    a special file (a FIFO, a device) is. Nothing there passes. Returns None.
    Raises DataError naming ``dest``."""
    try:
        mode = dest.stat().st_mode
    except OSError:  # nothing there (or a dangling link, which is replaced)
        return
    if stat.S_ISDIR(mode) != is_dir or not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        found = "a folder" if stat.S_ISDIR(mode) else "a file" if stat.S_ISREG(mode) else "a special file"
        raise DataError(f"refusing to replace {dest}: it is {found}, and the import is "
                        f"{'a folder' if is_dir else 'a file'}; move it away first")


def check_source(src: Path, folder_ok: bool = True) -> None:
    """Check that ``src`` is a regular file (or, with ``folder_ok``, a
    folder), links followed, before anything opens it: a FIFO would block and
    a device such as /dev/zero would be read without end. Returns None.
    Raises DataError naming ``src``."""
    try:
        mode = src.stat().st_mode
    except OSError as e:
        raise DataError(f"{src}: cannot be read ({e.strerror or e})") from None
    if stat.S_ISREG(mode) or (folder_ok and stat.S_ISDIR(mode)):
        return
    if stat.S_ISDIR(mode):
        raise DataError(f"{src}: a folder; give the file itself")
    raise DataError(f"{src}: not a regular file{' or folder' if folder_ok else ''} "
                    "(a FIFO, socket or device); give the dataset's file itself")


@contextlib.contextmanager
def named_as(staged: Path, shown):
    """Run a check on the staged copy ``staged`` so that its errors and
    warnings name ``shown`` (what the user gave) instead of the staging
    folder, which is gone by the time the message is read. Raises DataError,
    reworded."""
    caught = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    except DataError as e:
        raise DataError(str(e).replace(str(staged), str(shown))) from None
    finally:
        for w in caught:
            warnings.warn_explicit(str(w.message).replace(str(staged), str(shown)), w.category,
                                   w.filename, w.lineno)


def check_not_shadowed(dest: Path, candidates) -> None:
    """Refuse an import into ``dest`` that the lessons would not read:
    ``candidates`` are the paths they look at, in order, and one before
    ``dest`` holds something, so it would still win. Returns None. Raises
    DataError naming both."""
    order = [Path(os.path.abspath(c)) for c in candidates]
    target = Path(os.path.abspath(dest))
    if target not in order:
        return
    for earlier in order[:order.index(target)]:
        if earlier.exists() or earlier.is_symlink():
            raise DataError(f"refusing to import into {dest}: the lessons would still read {earlier}, "
                            "which comes before it in the search order; move or remove that first")


def check_zip_member(archive: Path, info: zipfile.ZipInfo, limit: int, what: str) -> None:
    """Check one zip member before it is read: not encrypted, not a link or
    special file (zip "symlinks" would be written out as text files), then
    :func:`check_member`'s checks. Raises DataError naming the archive and
    the member."""
    if info.flag_bits & 0x1:
        raise DataError(f"{archive}: member {info.filename} is encrypted; "
                        "give an archive without a password")
    kind = stat.S_IFMT(info.external_attr >> 16)  # 0: no type recorded (not made on Unix)
    is_file = kind in (0, stat.S_IFREG, stat.S_IFDIR)
    check_member(archive, info.filename, info.file_size, limit, what, is_file=is_file)


def install_copy(src: Path, dest: Path, check=None) -> Path:
    """Copy the file ``src`` to ``dest`` through a staging folder beside it,
    call ``check(copy)`` when given, then replace ``dest`` atomically, so a
    failed check or an interruption leaves ``dest`` as it was. Returns dest.
    Raises what ``check`` raises (its messages name ``src``, not the
    copy), DataError when ``src`` is not a regular file or ``dest`` is a
    folder, OSError."""
    check_source(src, folder_ok=False)
    check_same_kind(False, dest)
    with staging(dest.parent) as work:
        new = copy_file(src, work / dest.name)
        if check is not None:
            with named_as(new, src):
                check(new)
        install(new, dest, work)
    return dest


def remove(path: Path) -> None:
    """Delete a file or folder if it exists. Raises OSError."""
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


def same_or_nested(src: Path, dest: Path) -> bool:
    """Return True when ``src`` is ``dest`` itself (importing what is already
    in place). Raises DataError when one lies inside the other (a copy would
    copy into itself or replace its own source)."""
    s, d = src.resolve(), dest.resolve()
    if s == d:
        return True
    if d.is_relative_to(s):
        raise DataError(f"refusing to import {src}: the data folder entry {dest} lies inside it; "
                        "move the data folder or the source elsewhere first")
    if s.is_relative_to(d):
        raise DataError(f"refusing to import {src}: it lies inside {dest}, which the import replaces")
    return False


def tree_files(root: Path) -> list[Path]:
    """List every file under the folder ``root`` without following symbolic
    links out of or around it: a link to a file inside the tree counts as
    that file; a link to a folder, out of the tree or to nothing is refused.

    Returns the file paths, sorted. Raises DataError naming the first
    offending link or an unreadable folder."""
    top = root.resolve()
    found, stack = [], [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as e:
            raise DataError(f"{folder}: cannot be read ({e.strerror or e})") from None
        for entry in entries:
            path = Path(entry.path)
            if entry.is_symlink():
                check_link(path, top)
                found.append(path)
            elif entry.is_dir(follow_symlinks=False):
                stack.append(path)
            elif entry.is_file(follow_symlinks=False):
                found.append(path)
            else:
                raise DataError(f"{path}: not a regular file (a FIFO, socket or device); "
                                "dataset trees must hold real files")
    return sorted(found)


def check_link(path: Path, top: Path) -> None:
    """Accept a symbolic link inside a dataset tree only when it points to a
    file inside the tree (``top``, resolved). Raises DataError otherwise."""
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):  # dangling, or a loop
        raise DataError(f"{path}: a symbolic link that leads nowhere or in a loop; "
                        "dataset trees must hold real files") from None
    if target.is_dir():
        raise DataError(f"{path}: a symbolic link to a folder; dataset trees must hold real "
                        "folders (links to folders are not followed)")
    if not target.is_file():
        raise DataError(f"{path}: a symbolic link to {target}, not a regular file; "
                        "dataset trees must hold real files")
    if not target.is_relative_to(top):
        raise DataError(f"{path}: a symbolic link to {target}, outside {top}; "
                        "dataset trees must hold their own files")


def check_member(archive: Path, name: str, size: int, limit: int, what: str,
                 is_file: bool = True) -> None:
    """Check one archive member before it is read: a relative name without
    ``..``, a regular file (not a link or device) and at most ``limit``
    bytes (``what`` says whose limit). Raises DataError naming the archive
    and the member."""
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or (name[1:2] == ":") or ".." in p.parts:
        raise DataError(f"{archive}: refusing to unpack member {name}: it points outside the archive's folder")
    if not is_file:
        raise DataError(f"{archive}: refusing member {name}: a link or special file, not a regular file")
    if size > limit:
        raise DataError(f"{archive}: member {name} is {size / 2**20:.1f} MiB, over the "
                        f"{limit / 2**20:.0f} MiB limit for {what}")


def safe_member_path(dest: Path, name: str) -> Path:
    """Return dest/name, refusing names that would land outside ``dest``.
    Raises DataError."""
    target = (dest / name).resolve()
    if not target.is_relative_to(dest.resolve()) or target == dest.resolve():
        # not naming `dest`: it is a staging folder, gone by the time the user reads this
        raise DataError(f"refusing to unpack member {name}: it points outside the archive's folder")
    return target


def write_pickles_folder(batches: dict, dest: Path) -> Path:
    """Write {name: bytes} into the folder ``dest`` (through a staging
    folder, replacing what was there only when all is written). Returns
    dest. Raises OSError."""
    with staging(dest.parent) as work:
        new = work / dest.name
        new.mkdir()
        for name, data in batches.items():
            (new / name).write_bytes(data)
        install(new, dest, work)
    return dest


def copy_file(src: Path, dest: Path) -> Path:
    """Copy the file ``src`` to ``dest`` (a new path). Returns dest. Raises
    DataError for a file that cannot be read, OSError."""
    try:
        shutil.copyfile(src, dest)
    except PermissionError as e:
        raise DataError(f"{src}: cannot be read ({e.strerror})") from None
    return dest


def copy_tree(src: Path, dest: Path) -> Path:
    """Copy the folder ``src`` to ``dest`` (a new path), listing it with
    :func:`tree_files` (no links followed out of or around it). Returns
    dest. Raises DataError, OSError."""
    src_files = tree_files(src)
    dest.mkdir()
    for f in src_files:
        target = dest / f.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            shutil.copy2(f, target)
        except PermissionError as e:
            raise DataError(f"{f}: cannot be read ({e.strerror})") from None
    # empty folders matter to the layout checks (an empty class folder)
    for folder in sorted(p for p in _folders(src)):
        (dest / folder.relative_to(src)).mkdir(parents=True, exist_ok=True)
    return dest


def _folders(root: Path):
    """Yield the sub-folders of ``root``, not following links."""
    stack = [root]
    while stack:
        for entry in os.scandir(stack.pop()):
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
                yield Path(entry.path)
