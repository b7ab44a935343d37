"""The data layer's errors, and messages on one line."""

from __future__ import annotations

import tarfile
import zlib

TAR_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error)  # what reading a damaged tarball raises


class DataError(ValueError):
    """A dataset file is there but unusable; the message names the file and what is wrong."""


class DatasetNotFound(FileNotFoundError):
    """A dataset is in none of the places looked; the message lists them and how to get it."""


class SettingError(ValueError):
    """A ``CNN_COURSE_*`` setting has a value that cannot be used (a usage error)."""


def one_line(e: BaseException) -> str:
    """An exception's message on one line (its lines joined with "; "), or its type's name."""
    text = "; ".join(s.strip(" -") for s in str(e).splitlines() if s.strip(" -"))
    return text or type(e).__name__


def tar_error(path, e: BaseException) -> DataError:
    """The one-line DataError for an unreadable tarball (tarfile's many-line ReadError left out)."""
    detail = "" if isinstance(e, tarfile.ReadError) else f" ({one_line(e)})"
    return DataError(f"{path}: not a readable tar archive, truncated or corrupt{detail}")
