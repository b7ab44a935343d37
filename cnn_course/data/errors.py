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

