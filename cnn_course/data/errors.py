"""The two errors of the data layer: a dataset found but unusable, and a
dataset found nowhere."""

from __future__ import annotations

class DataError(ValueError):
    """A dataset file is there but unusable: corrupt, truncated, wrong shape
    or dtype, labels out of range, unreadable images. The message names the
    file and what is wrong."""


class DatasetNotFound(FileNotFoundError):
    """A dataset is in none of the places looked. The message says which
    dataset, what file to get and from where, every place looked, where to put
    the file, and the ``python -m cnn_course data`` commands that help."""



class SettingError(ValueError):
    """An environment setting of the course (``CNN_COURSE_DATA``,
    ``CNN_COURSE_OFFLINE``, ``CNN_COURSE_QUICK``) has a value that cannot be
    used: a usage error. The message names the variable, its value and what
    it accepts."""


def one_line(e: BaseException) -> str:
    """Return an exception's message as one line of words: its lines joined
    with "; ", or its type's name when it has no message."""
    text = "; ".join(s.strip(" -") for s in str(e).splitlines() if s.strip(" -"))
    return text or type(e).__name__


def tar_detail(e: BaseException) -> str:
    """The part of a tar reading error worth showing, as " (...)" or "":
    tarfile's ReadError lists every compression it tried over several
    lines, which says nothing more than "not a tar archive"."""
    import tarfile

    return "" if isinstance(e, tarfile.ReadError) else f" ({one_line(e)})"
