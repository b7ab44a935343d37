"""Putting data in place safely: staging folders and one atomic install (a failed or interrupted command
keeps the old copy), copies that follow no link out of a tree, archives read within size limits.
Temporaries (``.tmp-cnn-course-*``) hold a ``flock``: removed on every way out, Ctrl-C included, or,
once their process is gone, the next time their folder is written."""

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

from . import lookup
from .errors import DataError, one_line, tar_detail

TEMP_PREFIX = ".tmp-cnn-course-"


def sweep_stale(folder: Path) -> list[Path]:
    """Remove the temporaries in ``folder`` whose flock is free (their process is gone); return them."""
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
                shutil.rmtree(entry.path) if entry.is_dir() else os.unlink(entry.path)
                removed.append(Path(entry.path))
            except OSError:  # locked: its process still works on it
                pass
            finally:
                os.close(fd)
    return removed


@contextlib.contextmanager
def staging(parent: Path):
    """Yield a new locked temporary folder in ``parent``, removed on every way out."""
    parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(parent)
    work = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=parent))
    fd = None
    try:
        fd = os.open(work, os.O_RDONLY)
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if fd is not None:
            os.close(fd)


@contextlib.contextmanager
def temp_file(folder: Path, name: str):
    """Yield (path, open binary file) of a new locked temporary in ``folder``, removed unless renamed."""
    sweep_stale(folder)
    path = folder / f"{TEMP_PREFIX}{os.getpid()}-{os.urandom(4).hex()}-{name}"
    try:
        with open(path, "wb") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield path, f
    finally:
        path.unlink(missing_ok=True)


def install(new: Path, dest: Path, work: Path) -> Path:
    """Put the checked ``new`` (inside staging folder ``work``) in place of ``dest``; the old copy is
    moved into ``work`` first and put back if the second rename fails. Returns dest."""
    check_same_kind(new.is_dir(), dest)
    if not (dest.exists() or dest.is_symlink()) or (new.is_file() and not dest.is_dir()):
        os.replace(new, dest)
        return dest
    os.replace(dest, work / ".old")
    try:
        os.replace(new, dest)
    except BaseException:
        os.replace(work / ".old", dest)
        raise
    return dest


def install_copy(src: Path, dest: Path, check=None) -> Path:
    """Copy the file or folder ``src`` to ``dest`` through a staging folder, ``check(copy)`` it, then replace."""
    check_source(src)
    check_same_kind(src.is_dir(), dest)
    with staging(dest.parent) as work:
        new = (copy_tree if src.is_dir() else copy_file)(src, work / dest.name)
        if check is not None:
            with named_as(new, src):
                check(new)
        install(new, dest, work)
    return dest


def check_same_kind(is_dir: bool, dest: Path) -> None:
    """Refuse (DataError) to replace ``dest`` by another kind: folder for file, anything for a special file."""
    try:
        mode = dest.stat().st_mode
    except OSError:  # nothing there, or a dangling link (replaced)
        return
    if stat.S_ISDIR(mode) != is_dir or not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        found = "a folder" if stat.S_ISDIR(mode) else "a file" if stat.S_ISREG(mode) else "a special file"
        raise DataError(
            f"refusing to replace {dest}: it is {found}, and the import is "
            f"{'a folder' if is_dir else 'a file'}; move it away first"
        )


def check_source(src: Path) -> None:
    """Refuse (DataError) a source that is not a regular file or folder before opening it (a FIFO blocks)."""
    try:
        mode = src.stat().st_mode
    except OSError as e:
        raise DataError(f"{src}: cannot be read ({e.strerror or e})") from None
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise DataError(
            f"{src}: not a regular file or folder (a FIFO, socket or device); give the dataset's file itself"
        )


@contextlib.contextmanager
def named_as(staged: Path, shown):
    """Reword the DataErrors and warnings raised inside so they name ``shown``, not ``staged``."""
    caught = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    except DataError as e:
        raise DataError(str(e).replace(str(staged), str(shown))) from None
    finally:
        for w in caught:
            warnings.warn_explicit(str(w.message).replace(str(staged), str(shown)), w.category, w.filename, w.lineno)


def check_not_shadowed(dest: Path, candidates) -> None:
    """Refuse (DataError) an import into ``dest`` that an existing earlier candidate would hide."""
    order = [Path(os.path.abspath(c)) for c in candidates]
    target = Path(os.path.abspath(dest))
    for earlier in order[: order.index(target)] if target in order else []:
        if earlier.exists() or earlier.is_symlink():
            raise DataError(
                f"refusing to import into {dest}: the lessons would still read {earlier}, "
                "which comes before it in the search order; move or remove that first"
            )


def same_or_nested(src: Path, dest: Path) -> bool:
    """True when ``src`` is ``dest``; DataError when one lies inside the other."""
    s, d = src.resolve(), dest.resolve()
    if s == d:
        return True
    if d.is_relative_to(s):
        raise DataError(
            f"refusing to import {src}: the data folder entry {dest} lies inside it; "
            "move the data folder or the source elsewhere first"
        )
    if s.is_relative_to(d):
        raise DataError(f"refusing to import {src}: it lies inside {dest}, which the import replaces")
    return False


def may_write(folder: Path) -> bool:
    """Whether files may be written in ``folder`` (or its nearest existing parent); a folder without
    write bits (a shared r-x copy) counts as read-only even for root."""
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return folder.is_dir() and bool(folder.stat().st_mode & 0o222) and os.access(folder, os.W_OK)
    except OSError:
        return False


def writable_import_dir() -> Path:
    """``data_dirs()[0]`` when writable, else the repo's data folder; DataError when neither is."""
    for d in dict.fromkeys([lookup.data_dirs()[0], lookup.REPO_DATA_DIR]):
        try:
            d.mkdir(parents=True, exist_ok=True)
            tempfile.TemporaryFile(dir=d).close()
            return d
        except OSError:
            continue
    raise DataError(f"no writable data folder among {', '.join(map(str, lookup.data_dirs()))}")


def check_link(path: Path, top: Path) -> None:
    """Accept a link in a dataset tree only to a file inside ``top``; else DataError."""
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):
        raise DataError(
            f"{path}: a symbolic link that leads nowhere or in a loop; dataset trees must hold real files"
        ) from None
    if target.is_dir():
        raise DataError(
            f"{path}: a symbolic link to a folder; dataset trees must hold real "
            "folders (links to folders are not followed)"
        )
    if not target.is_file():
        raise DataError(f"{path}: a symbolic link to {target}, not a regular file; dataset trees must hold real files")
    if not target.is_relative_to(top):
        raise DataError(f"{path}: a symbolic link to {target}, outside {top}; dataset trees must hold their own files")


def tree_files(root: Path) -> tuple[list[Path], list[Path]]:
    """(files sorted, sub-folders) of ``root``, following no link out of or around it (see check_link)."""
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
                raise DataError(
                    f"{path}: not a regular file (a FIFO, socket or device); dataset trees must hold real files"
                )
    return sorted(found), folders


def copy_file(src: Path, dest: Path) -> Path:
    """Copy the file ``src`` to ``dest``; DataError when it cannot be read."""
    try:
        shutil.copyfile(src, dest)
    except PermissionError as e:
        raise DataError(f"{src}: cannot be read ({e.strerror})") from None
    return dest


def copy_tree(src: Path, dest: Path) -> Path:
    """Copy the folder ``src`` (checked by tree_files: links only to files inside) to the new ``dest``."""
    tree_files(src)
    try:
        return Path(shutil.copytree(src, dest))
    except shutil.Error as e:
        raise DataError(f"{e.args[0][0][0]}: cannot be read ({e.args[0][0][2]})") from None


def write_files(contents: dict, dest: Path) -> Path:
    """Write {name: bytes} as the folder ``dest``, replacing what was there once all is written."""
    with staging(dest.parent) as work:
        (work / dest.name).mkdir()
        for name, data in contents.items():
            (work / dest.name / name).write_bytes(data)
        install(work / dest.name, dest, work)
    return dest


def check_member(archive: Path, name: str, size: int, limit: int, what: str, is_file: bool = True) -> None:
    """Refuse (DataError) an archive member with an escaping name, that is a link or special file
    (not ``is_file``), or over ``limit`` bytes (``what``'s limit)."""
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or name[1:2] == ":" or ".." in p.parts or "//" in name.replace("\\", "/"):
        raise DataError(f"{archive}: refusing to unpack member {name}: it points outside the archive's folder")
    if not is_file:
        raise DataError(f"{archive}: refusing member {name}: a link or special file, not a regular file")
    if size > limit:
        raise DataError(
            f"{archive}: member {name} is {size / 2**20:.1f} MiB, over the {limit / 2**20:.0f} MiB limit for {what}"
        )


def check_zip_member(archive: Path, info: zipfile.ZipInfo, limit: int, what: str) -> None:
    """check_member for a zip member, which must also be neither encrypted nor a Unix link."""
    if info.flag_bits & 0x1:
        raise DataError(f"{archive}: member {info.filename} is encrypted; give an archive without a password")
    kind = stat.S_IFMT(info.external_attr >> 16)  # 0: no type recorded (not made on Unix)
    check_member(archive, info.filename, info.file_size, limit, what, is_file=kind in (0, stat.S_IFREG, stat.S_IFDIR))


def read_tar(path: Path, wanted, limit: int, what: str):
    """Yield (member, its bytes when ``wanted(member)``, else None) of a tarball, every member checked
    (check_member, ``limit`` bytes for a wanted one); DataError for a bad member or archive."""
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                keep = member.isfile() and wanted(member)
                check_member(
                    path,
                    member.name,
                    member.size if keep else 0,
                    limit,
                    what,
                    is_file=member.isfile() or member.isdir(),
                )
                yield member, tar.extractfile(member).read() if keep else None
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: not a readable tar archive, truncated or corrupt{tar_detail(e)}") from None


def unpack_tree(archive: Path, work: Path, max_member: int, max_total: int, what: str) -> Path:
    """Unpack a zip or tar of an image tree (``train/`` at its top or in one folder) into ``work``,
    every member checked first (names, links, encryption, sizes, duplicates); returns the tree's root."""
    is_zip = zipfile.is_zipfile(archive)
    if not hasattr(tarfile, "data_filter") and not is_zip:
        raise DataError(
            f"{archive}: unpacking a tarball safely needs Python 3.10.12, 3.11.4 or later "
            f"(tarfile's extraction filters), this is {sys.version.split()[0]}; "
            "upgrade Python, or unpack it yourself and import the folder"
        )
    try:
        with zipfile.ZipFile(archive) if is_zip else tarfile.open(archive) as opened:
            if is_zip:
                members = [m for m in opened.infolist() if not m.filename.startswith("__MACOSX")]
                sized = [(m.filename, m.file_size) for m in members]
            else:
                members = [m for m in opened.getmembers() if not m.isdir()]
                sized = [(m.name, m.size) for m in members]
            names = [n for n, _ in sized]
            tops = {PurePosixPath(n).parts[0] for n in names if len(PurePosixPath(n).parts) > 1}
            top = f"{tops.pop()}/" if len(tops) == 1 and tops != {"train"} else ""
            if not any(n.startswith(top + "train/") for n in names):
                raise DataError(f"{archive}: no train/ folder inside (expected dogImages/train/<breed>/)")
            for m, (name, size) in zip(members, sized):
                if is_zip:
                    check_zip_member(archive, m, max_member, what)
                else:
                    check_member(archive, name, size, max_member, what, is_file=m.isfile())
            if len(set(names)) < len(names):
                twice = next(n for n in names if names.count(n) > 1)
                raise DataError(
                    f"{archive}: member {twice} appears twice; refusing an archive whose copies could differ"
                )
            total = sum(size for _, size in sized)
            if total > max_total:
                raise DataError(
                    f"{archive}: unpacks to {total / 2**20:.0f} MiB, over the "
                    f"{max_total / 2**20:.0f} MiB limit for {what}s"
                )
            opened.extractall(work, members, **({} if is_zip else {"filter": "data"}))
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, NotImplementedError) as e:
        detail = f" ({one_line(e)})" if is_zip else tar_detail(e)
        raise DataError(
            f"{archive}: not a readable {'zip file' if is_zip else 'tar archive'}, truncated or corrupt{detail}"
        ) from None
    return work / top if top else work
