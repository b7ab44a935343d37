"""Putting data in place safely: staging folders, one atomic install, copies
that follow no links out of a tree, and unpacking archives within size limits.

New data is built in a staging folder beside its target, checked there, and
only then moved into place (:func:`staging`, :func:`install`): a failed or
interrupted command keeps what was there and leaves no half copy. A staging
folder (or a temporary file, :func:`temp_file`) is named ``.tmp-cnn-course-*``
and holds an exclusive ``flock`` while it exists; it is removed on every way
out, Ctrl-C included, and one whose lock is free (its process was killed) is
swept away the next time its folder is written (:func:`sweep_stale`).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
import sys
import tarfile
import tempfile
import warnings
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from .errors import DataError, one_line, tar_detail
from . import lookup

TEMP_PREFIX = ".tmp-cnn-course-"


def _lock(path: Path) -> int:
    """Open ``path`` (file or folder) and hold an exclusive flock on it; return the fd."""
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def sweep_stale(folder: Path) -> list[Path]:
    """Remove this package's temporaries (``.tmp-cnn-course-*``) in ``folder``
    whose flock is free: their process is gone. Returns what was removed.
    Raises nothing."""
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            if not entry.name.startswith(TEMP_PREFIX) or entry.is_symlink():
                continue
            try:
                fd = os.open(entry.path, os.O_RDONLY)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                remove(Path(entry.path))
                removed.append(Path(entry.path))
            except OSError:  # locked: its process still works on it
                pass
            finally:
                os.close(fd)
    return removed


@contextlib.contextmanager
def staging(parent: Path):
    """Yield a new locked temporary folder in ``parent`` (created if needed),
    removed with everything in it on every way out, Ctrl-C included. Raises
    OSError when ``parent`` is not writable."""
    parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(parent)
    work = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=parent))
    fd = None
    try:
        fd = _lock(work)
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if fd is not None:
            os.close(fd)


@contextlib.contextmanager
def temp_file(folder: Path, name: str):
    """Yield an open, locked, new binary file ``.tmp-cnn-course-*<name>`` in
    ``folder`` (mode from the umask); it is removed on every way out unless
    the caller renamed it. Raises OSError."""
    sweep_stale(folder)
    path = folder / f"{TEMP_PREFIX}{os.getpid()}-{os.urandom(4).hex()}-{name}"
    try:
        with open(path, "wb") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield path, f
    finally:
        path.unlink(missing_ok=True)


def install(new: Path, dest: Path, work: Path) -> Path:
    """Put ``new`` (checked, inside the staging folder ``work``) in place of
    ``dest``: a file replaces a file atomically; otherwise the old ``dest``
    is moved into ``work`` (and removed with it), and put back if the second
    rename fails or is interrupted. Returns dest. Raises DataError when
    ``dest`` is of another kind than ``new`` (:func:`check_same_kind`), OSError."""
    check_same_kind(new.is_dir(), dest)
    if not (dest.exists() or dest.is_symlink()) or (new.is_file() and not dest.is_dir()):
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


def install_copy(src: Path, dest: Path, check=None) -> Path:
    """Copy the file ``src`` to ``dest`` through a staging folder, run
    ``check(copy)`` when given (its messages name ``src``), then replace
    ``dest`` atomically. Returns dest. Raises what ``check`` raises,
    DataError when ``src`` is not a regular file or ``dest`` a folder, OSError."""
    check_source(src, folder_ok=False)
    check_same_kind(False, dest)
    with staging(dest.parent) as work:
        new = copy_file(src, work / dest.name)
        if check is not None:
            with named_as(new, src):
                check(new)
        install(new, dest, work)
    return dest


def check_same_kind(is_dir: bool, dest: Path) -> None:
    """Refuse to replace ``dest`` with something of another kind (a folder
    where a file is, or the other way round, or anything where a special file
    is). Returns None. Raises DataError naming ``dest``."""
    try:
        mode = dest.stat().st_mode
    except OSError:  # nothing there, or a dangling link (replaced)
        return
    if stat.S_ISDIR(mode) != is_dir or not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        found = "a folder" if stat.S_ISDIR(mode) else "a file" if stat.S_ISREG(mode) else "a special file"
        raise DataError(f"refusing to replace {dest}: it is {found}, and the import is "
                        f"{'a folder' if is_dir else 'a file'}; move it away first")


def check_source(src: Path, folder_ok: bool = True) -> None:
    """Check that ``src`` is a regular file (or, with ``folder_ok``, a folder)
    before anything opens it: a FIFO would block, /dev/zero never end.
    Returns None. Raises DataError naming ``src``."""
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
    """Reword the DataErrors and warnings of a check run on ``staged`` so they
    name ``shown`` (what the user gave), not the staging folder. Raises DataError."""
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
    """Refuse an import into ``dest`` when one of the ``candidates`` (the
    paths the lessons look at, in order) before it exists and would still be
    read. Returns None. Raises DataError naming both."""
    order = [Path(os.path.abspath(c)) for c in candidates]
    target = Path(os.path.abspath(dest))
    for earlier in order[:order.index(target)] if target in order else []:
        if earlier.exists() or earlier.is_symlink():
            raise DataError(f"refusing to import into {dest}: the lessons would still read {earlier}, "
                            "which comes before it in the search order; move or remove that first")


def same_or_nested(src: Path, dest: Path) -> bool:
    """Return True when ``src`` is ``dest`` itself (already in place). Raises
    DataError when one lies inside the other."""
    s, d = src.resolve(), dest.resolve()
    if s == d:
        return True
    if d.is_relative_to(s):
        raise DataError(f"refusing to import {src}: the data folder entry {dest} lies inside it; "
                        "move the data folder or the source elsewhere first")
    if s.is_relative_to(d):
        raise DataError(f"refusing to import {src}: it lies inside {dest}, which the import replaces")
    return False


def remove(path: Path) -> None:
    """Delete a file or folder if it exists. Raises OSError."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def may_write(folder: Path) -> bool:
    """Return True when files may be written in ``folder`` (or its nearest
    existing parent): writable and with a write permission bit, so a shared
    read-only copy (mode r-x) counts as read-only even for root. Raises nothing."""
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return folder.is_dir() and bool(folder.stat().st_mode & 0o222) and os.access(folder, os.W_OK)
    except OSError:
        return False


def writable_import_dir() -> Path:
    """Return data_dirs()[0] (created if needed) when writable, else the repo's
    data folder. Raises DataError when neither is writable."""
    for d in dict.fromkeys([lookup.data_dirs()[0], lookup.REPO_DATA_DIR]):
        try:
            d.mkdir(parents=True, exist_ok=True)
            tempfile.TemporaryFile(dir=d).close()
            return d
        except OSError:
            continue
    raise DataError(f"no writable data folder among {', '.join(map(str, lookup.data_dirs()))}")


def check_link(path: Path, top: Path) -> None:
    """Accept a symbolic link inside a dataset tree only when it points to a
    file inside the tree ``top`` (resolved). Raises DataError otherwise."""
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):
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


def tree_files(root: Path) -> tuple[list[Path], list[Path]]:
    """List the folder ``root`` without following links out of or around it
    (a link to a file inside counts as that file; others: :func:`check_link`).
    Returns (files sorted, sub-folders). Raises DataError naming the first
    bad link, special file or unreadable folder."""
    top, found, folders, stack = root.resolve(), [], [], [root]
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
                folders.append(path)
            elif entry.is_file(follow_symlinks=False):
                found.append(path)
            else:
                raise DataError(f"{path}: not a regular file (a FIFO, socket or device); "
                                "dataset trees must hold real files")
    return sorted(found), folders


def copy_file(src: Path, dest: Path) -> Path:
    """Copy the file ``src`` to the new path ``dest``. Returns dest. Raises
    DataError for a file that cannot be read, OSError."""
    try:
        shutil.copyfile(src, dest)
    except PermissionError as e:
        raise DataError(f"{src}: cannot be read ({e.strerror})") from None
    return dest


def copy_tree(src: Path, dest: Path) -> Path:
    """Copy the folder ``src`` to the new path ``dest`` (empty folders
    included; links as :func:`tree_files`). Returns dest. Raises DataError, OSError."""
    found, folders = tree_files(src)
    for folder in [src] + folders:
        (dest / folder.relative_to(src)).mkdir(parents=True, exist_ok=True)
    for f in found:
        try:
            shutil.copy2(f, dest / f.relative_to(src))
        except PermissionError as e:
            raise DataError(f"{f}: cannot be read ({e.strerror})") from None
    return dest


def write_files(contents: dict, dest: Path) -> Path:
    """Write {name: bytes} as the folder ``dest``, replacing what was there
    only once all is written. Returns dest. Raises OSError."""
    with staging(dest.parent) as work:
        new = work / dest.name
        new.mkdir()
        for name, data in contents.items():
            (new / name).write_bytes(data)
        install(new, dest, work)
    return dest


def check_member(archive: Path, name: str, size: int, limit: int, what: str,
                 is_file: bool = True) -> None:
    """Check one archive member before it is read: a relative name without
    ``..``, a regular file or folder (``is_file``), at most ``limit`` bytes
    (``what`` says whose limit). Raises DataError naming archive and member."""
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or name[1:2] == ":" or ".." in p.parts or "//" in name.replace("\\", "/"):
        raise DataError(f"{archive}: refusing to unpack member {name}: it points outside the archive's folder")
    if not is_file:
        raise DataError(f"{archive}: refusing member {name}: a link or special file, not a regular file")
    if size > limit:
        raise DataError(f"{archive}: member {name} is {size / 2**20:.1f} MiB, over the "
                        f"{limit / 2**20:.0f} MiB limit for {what}")


def check_zip_member(archive: Path, info: zipfile.ZipInfo, limit: int, what: str) -> None:
    """:func:`check_member` for a zip member, which must also not be
    encrypted nor a Unix link. Raises DataError."""
    if info.flag_bits & 0x1:
        raise DataError(f"{archive}: member {info.filename} is encrypted; "
                        "give an archive without a password")
    kind = stat.S_IFMT(info.external_attr >> 16)  # 0: no type recorded (not made on Unix)
    check_member(archive, info.filename, info.file_size, limit, what,
                 is_file=kind in (0, stat.S_IFREG, stat.S_IFDIR))


def _top_folder(names: list[str]) -> str:
    """The one folder (other than a split) that holds every name, with "/", or ""."""
    tops = {PurePosixPath(n).parts[0] for n in names if len(PurePosixPath(n).parts) > 1}
    return f"{tops.pop()}/" if len(tops) == 1 and tops != {"train"} else ""


def unpack_tree(archive: Path, work: Path, max_member: int, max_total: int, what: str) -> Path:
    """Unpack a zip or tar archive of an image tree (``train/`` at its top or
    in one folder) into the staging folder ``work``: every member is checked
    first (:func:`check_member`: no escaping names, links or encrypted
    members, each at most ``max_member`` bytes, all at most ``max_total``,
    no duplicates), then extracted by zipfile or by tarfile's ``data``
    filter. Returns the tree's root inside ``work``. Raises DataError for
    those, a corrupt archive or one without ``train/``; OSError."""
    if not hasattr(tarfile, "data_filter") and not zipfile.is_zipfile(archive):
        raise DataError(f"{archive}: unpacking a tarball safely needs Python 3.10.12, 3.11.4 or "
                        f"later (tarfile's extraction filters), this is {sys.version.split()[0]}; "
                        "upgrade Python, or unpack it yourself and import the folder")
    try:
        if zipfile.is_zipfile(archive):
            opened = zipfile.ZipFile(archive)
            members = [m for m in opened.infolist() if not m.filename.startswith("__MACOSX")]
            name_of, size_of = (lambda m: m.filename), (lambda m: m.file_size)
            check = lambda m: check_zip_member(archive, m, max_member, what)  # noqa: E731
        else:
            opened = tarfile.open(archive)
            members = [m for m in opened.getmembers() if not m.isdir()]
            name_of, size_of = (lambda m: m.name), (lambda m: m.size)
            check = lambda m: check_member(archive, m.name, m.size, max_member, what,  # noqa: E731
                                           is_file=m.isfile())
        with opened:
            names = [name_of(m) for m in members]
            top = _top_folder(names)
            if not any(n.startswith(top + "train/") for n in names):
                raise DataError(f"{archive}: no train/ folder inside (expected dogImages/train/<breed>/)")
            for m in members:
                check(m)
            if len(set(names)) < len(names):
                twice = next(n for n in names if names.count(n) > 1)
                raise DataError(f"{archive}: member {twice} appears twice; "
                                "refusing an archive whose copies could differ")
            total = sum(map(size_of, members))
            if total > max_total:
                raise DataError(f"{archive}: unpacks to {total / 2**20:.0f} MiB, over the "
                                f"{max_total / 2**20:.0f} MiB limit for {what}s")
            if isinstance(opened, zipfile.ZipFile):
                opened.extractall(work, members)
            else:
                opened.extractall(work, members, filter="data")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, NotImplementedError) as e:
        kind = "zip file" if zipfile.is_zipfile(archive) else "tar archive"
        detail = tar_detail(e) if kind == "tar archive" else f" ({one_line(e)})"
        raise DataError(f"{archive}: not a readable {kind}, truncated or corrupt{detail}") from None
    return work / top if top else work
