"""Putting data in place safely: downloads through Keras, staging folders and one atomic install (a failed or
interrupted command keeps the old copy), archives read or unpacked within size limits. Temporaries hold a
``flock``: removed on every way out, Ctrl-C included, or, once their process is gone, by the next writer."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from . import lookup
from .catalog import DataError, DatasetNotFound, MiB, one_line

TEMP_PREFIX = ".tmp-cnn-course-"
TAR_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error)  # what reading a damaged tarball raises


def tar_error(path, e: BaseException) -> DataError:
    """The one-line DataError for an unreadable tarball (tarfile's many-line ReadError left out)."""
    detail = "" if isinstance(e, tarfile.ReadError) else f" ({one_line(e)})"
    return DataError(f"{path}: not a readable tar archive, truncated or corrupt{detail}")


def get_file(fname: str, url: str, file_hash: str | None, subdir: str = "datasets") -> Path:
    """The path of ``url`` downloaded by Keras into its cache; DatasetNotFound (network), DataError (bad download)."""
    import keras

    home = str(lookup.keras_home())
    try:
        path = keras.utils.get_file(fname=fname, origin=url, file_hash=file_hash, cache_dir=home, cache_subdir=subdir)
    except ValueError as e:
        raise DataError(f"the download of {url} is corrupt or incomplete ({one_line(e)})") from None
    except Exception as e:  # Keras wraps HTTPError/URLError in a plain Exception
        raise DatasetNotFound(f"Could not download {fname} from {url}: {one_line(e)}") from None
    return Path(path)


def sweep_stale(folder: Path) -> None:
    """Remove the temporaries in ``folder`` whose flock is free (their process is gone)."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            if not entry.name.startswith(TEMP_PREFIX) or entry.is_symlink():
                continue
            with contextlib.suppress(OSError):
                fd = os.open(entry.path, os.O_RDONLY)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # OSError: locked, still being written
                    shutil.rmtree(entry.path) if entry.is_dir() else os.unlink(entry.path)
                finally:
                    os.close(fd)


@contextlib.contextmanager
def staging(parent: Path):
    """Yield a new locked temporary folder in ``parent``, removed on every way out."""
    parent.mkdir(parents=True, exist_ok=True)
    sweep_stale(parent)
    work = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, dir=parent))
    fd = os.open(work, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)
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
    """Put the checked ``new`` (inside staging folder ``work``) in place of ``dest`` and return dest; the
    old copy is moved into ``work`` first and put back if the second rename fails."""
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


def write_files(contents: dict, dest: Path) -> Path:
    """Write {name: bytes} as the folder ``dest``, replacing what was there once all is written; returns dest."""
    with staging(dest.parent) as work:
        (work / dest.name).mkdir()
        for name, data in contents.items():
            (work / dest.name / name).write_bytes(data)
        return install(work / dest.name, dest, work)


def may_write(folder: Path) -> bool:
    """Whether ``folder`` (or its nearest existing parent) is writable; one without write bits (r-x) is not."""
    folder = next((p for p in (Path(folder), *Path(folder).parents) if p.exists()), Path("/"))
    with contextlib.suppress(OSError):
        return folder.is_dir() and bool(folder.stat().st_mode & 0o222) and os.access(folder, os.W_OK)
    return False


def check_link(path: Path, top: Path) -> None:
    """Accept a link in a dataset tree only to a file inside ``top``; else DataError."""
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):
        raise DataError(
            f"{path}: a symbolic link that leads nowhere or in a loop; trees must hold real files"
        ) from None
    to = "a folder" if target.is_dir() else f"{target}, not a regular file" if not target.is_file() else None
    to = to or (f"{target}, outside {top}" if not target.is_relative_to(top) else None)
    if to:
        raise DataError(f"{path}: a symbolic link to {to}; dataset trees must hold their own real files and folders")


def check_member(archive: Path, m, limit: int, what: str, size: int | None = None) -> None:
    """Refuse (DataError) a zip or tar member ``m`` with an escaping name, encrypted, a link or special
    file, or over ``limit`` bytes (``what``'s limit; ``size``, when given, instead of its own)."""
    is_zip = isinstance(m, zipfile.ZipInfo)
    name = m.filename if is_zip else m.name
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or name[1:2] == ":" or ".." in p.parts or "//" in name.replace("\\", "/"):
        raise DataError(f"{archive}: refusing to unpack member {name}: it points outside the archive's folder")
    if is_zip and m.flag_bits & 0x1:
        raise DataError(f"{archive}: member {name} is encrypted; give an archive without a password")
    kind = stat.S_IFMT(m.external_attr >> 16) if is_zip else 0  # 0 in a zip: no type recorded (not made on Unix)
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR) or not (is_zip or m.isfile() or m.isdir()):
        raise DataError(f"{archive}: refusing member {name}: a link or special file, not a regular file")
    size = (m.file_size if is_zip else m.size) if size is None else size
    if size > limit:
        raise DataError(
            f"{archive}: member {name} is {size / MiB:.1f} MiB, over the {limit / MiB:.0f} MiB limit for {what}"
        )


def read_tar(path: Path, wanted, limit: int, what: str):
    """Yield (member, its bytes when ``wanted(member)``, else None) of a tarball, every member checked
    (check_member, ``limit`` bytes for a wanted one); DataError for a bad member or archive."""
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                keep = member.isfile() and wanted(member)
                check_member(path, member, limit, what, size=member.size if keep else 0)
                yield member, tar.extractfile(member).read() if keep else None
    except TAR_ERRORS as e:
        raise tar_error(path, e) from None


def unpack_tree(archive: Path, work: Path, max_member: int, max_total: int, what: str) -> Path:
    """Unpack a zip or tar of an image tree (``train/`` at its top or in one folder) into ``work``, every member
    checked first (names, links, encryption, sizes, duplicates); returns the tree's root. Raises DataError."""
    is_zip = zipfile.is_zipfile(archive)
    try:
        with zipfile.ZipFile(archive) if is_zip else tarfile.open(archive) as opened:
            members = opened.infolist() if is_zip else [m for m in opened.getmembers() if not m.isdir()]
            members = [m for m in members if not (is_zip and m.filename.startswith("__MACOSX"))]
            names = [m.filename if is_zip else m.name for m in members]
            tops = {PurePosixPath(n).parts[0] for n in names if len(PurePosixPath(n).parts) > 1}
            top = f"{tops.pop()}/" if len(tops) == 1 and tops != {"train"} else ""
            if not any(n.startswith(top + "train/") for n in names):
                raise DataError(f"{archive}: no train/ folder inside (expected dogImages/train/<breed>/)")
            for m in members:
                check_member(archive, m, max_member, what)
            if len(set(names)) < len(names):
                twice = next(n for n in names if names.count(n) > 1)
                raise DataError(f"{archive}: member {twice} appears twice; its copies could differ")
            total = sum(m.file_size if is_zip else m.size for m in members)
            if total > max_total:
                limit = f"over the {max_total / MiB:.0f} MiB limit for {what}s"
                raise DataError(f"{archive}: unpacks to {total / MiB:.0f} MiB, {limit}")
            opened.extractall(work, members, **({} if is_zip else {"filter": "data"}))
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, NotImplementedError) as e:
        if not is_zip:
            raise tar_error(archive, e) from None
        raise DataError(f"{archive}: not a readable zip file, truncated or corrupt ({one_line(e)})") from None
    return work / top if top else work
