"""Where datasets are looked for, and in what order (see the package
docstring), plus the environment switches ``CNN_COURSE_DATA``,
``CNN_COURSE_OFFLINE`` and ``CNN_COURSE_QUICK``. Finds, never reads."""

from __future__ import annotations

import os
import tarfile
import warnings
import zipfile
import zlib
from pathlib import Path

from .catalog import CIFAR10_PICKLES, GET, NAMES, TITLES
from .errors import DataError, DatasetNotFound, SettingError, tar_detail

REPO_ROOT = Path(__file__).resolve().parents[2]
# True in the course's checkout (an editable install too); False when installed
# from a wheel (Colab, `pip install`), where REPO_ROOT is site-packages.
IN_CHECKOUT = (REPO_ROOT / "pyproject.toml").is_file()
REPO_DATA_LABEL = "the repo's data folder" if IN_CHECKOUT else "the course's data folder"


def user_path(text: str, what: str) -> Path:
    """Return Path(text) with a leading ``~`` or ``~user`` expanded.

    Raises SettingError, naming `what` (e.g. "CNN_COURSE_DATA"), when
    ``~user`` names no user of this machine (where Path.expanduser raises
    RuntimeError)."""
    try:
        return Path(text).expanduser()
    except RuntimeError:
        user = str(text).split(os.sep, 1)[0]
        raise SettingError(f"{what}={text}: {user} is the home folder of no user on this machine; "
                           "give the folder's full path") from None


def env_data_dir() -> Path | None:
    """Return the folder ``$CNN_COURSE_DATA`` names, as an absolute path (a
    relative value is taken from the current folder, once, here; pass the
    result on to child processes rather than the relative value), or None
    when it is unset or empty. Raises SettingError when it names a file."""
    env = os.environ.get("CNN_COURSE_DATA", "").strip()
    if not env:
        return None
    folder = user_path(env, "CNN_COURSE_DATA").absolute()
    if folder.exists() and not folder.is_dir():
        raise SettingError(f"CNN_COURSE_DATA={env} names a file ({folder}), not a folder; "
                           "point it at the folder that holds the datasets")
    return folder


def data_dirs() -> list[Path]:
    """Return the folders searched for datasets, in order: ``$CNN_COURSE_DATA``
    (when set; made absolute) and the repo's ``data/`` folder. Raises
    SettingError when CNN_COURSE_DATA names a file."""
    dirs = []
    env = env_data_dir()
    if env:
        dirs.append(env)
    if REPO_DATA_DIR not in dirs:
        dirs.append(REPO_DATA_DIR)
    return dirs


def keras_home() -> Path:
    """Return the Keras home folder as Keras picks it: ``$KERAS_HOME``, else
    ``~/.keras`` (``/tmp/.keras`` when the home folder is not writable).
    Raises SettingError when ``$KERAS_HOME`` starts with an unknown ``~user``."""
    env = os.environ.get("KERAS_HOME")
    if env:
        return user_path(env, "KERAS_HOME")
    home = Path("~").expanduser()
    return (home if os.access(home, os.W_OK) else Path("/tmp")) / ".keras"


def keras_cache_dir() -> Path:
    """Return the folder where Keras keeps downloaded datasets:
    ``$KERAS_HOME/datasets`` or ``~/.keras/datasets``."""
    return keras_home() / "datasets"


def course_data_dir() -> Path:
    """Return the course's own data folder: the repo's ``data/`` in a checkout;
    installed from a wheel, ``cnn-course`` in the Keras home (never inside
    site-packages); ``$CNN_COURSE_REPO_DATA`` when set (the test suite points
    it at an empty folder, so that data a user imported into data/ never
    changes what the tests see; nobody else needs it). Raises nothing."""
    if os.environ.get("CNN_COURSE_REPO_DATA"):
        return Path(os.environ["CNN_COURSE_REPO_DATA"])
    if IN_CHECKOUT:
        return REPO_ROOT / "data"
    try:
        return keras_home() / "cnn-course"
    except SettingError:  # a ~user of no user in KERAS_HOME: reported where the Keras cache is used
        return Path("/tmp/.keras/cnn-course")


REPO_DATA_DIR = course_data_dir()  # read once, at import; tests and benchmarks replace it


TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("", "0", "false", "no", "off")


def env_flag(name: str) -> bool:
    """Return the true/false value of the environment variable ``name``:
    1/true/yes/on is true; unset, empty, 0/false/no/off is false (any case,
    spaces ignored). Raises SettingError for anything else, so a typo never
    silently means the opposite."""
    raw = os.environ.get(name, "")
    value = raw.strip().lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise SettingError(f"{name}={raw!r} is not a true/false value: use 1, true, yes or on; "
                       "or 0, false, no, off or unset it")


def offline() -> bool:
    """Return True when ``CNN_COURSE_OFFLINE`` is true (1/true/yes/on). Raises
    SettingError for a value that is neither true nor false."""
    return env_flag("CNN_COURSE_OFFLINE")


def quick_mode(quick=None) -> bool:
    """Return whether this is a quick (smoke) run that may use labelled stand-ins.

    An explicit ``quick`` (True/False) wins; ``None`` reads ``CNN_COURSE_QUICK``,
    which the runner sets for ``run --quick`` so that notebooks need no quick
    flag of their own. Raises SettingError when CNN_COURSE_QUICK is neither
    true nor false."""
    if quick is not None:
        return bool(quick)
    return env_flag("CNN_COURSE_QUICK")


def search_places(name: str) -> list[tuple[str, Path]]:
    """Return the (label, folder) places searched for ``name`` after the path
    argument, in order."""
    places = []
    env = env_data_dir()
    if env:
        places.append(("$CNN_COURSE_DATA", env))
    places.append((REPO_DATA_LABEL, REPO_DATA_DIR))
    if name == "vgg16":
        places.append(("the Keras models cache", keras_home() / "models"))
    else:
        places.append(("the Keras cache", keras_cache_dir()))
    return places


def candidates(name: str, file_name: str | None = None) -> list[Path]:
    """Return every path looked at for dataset ``name`` (or for the file
    ``file_name`` in its places), in the search order of :func:`find`."""
    names = (file_name,) if file_name else NAMES[name]
    return [folder / n for _, folder in search_places(name) for n in names]


def import_dir() -> Path:
    """Return where fetched-by-hand files should go: ``data_dirs()[0]``."""
    return data_dirs()[0]


def not_found(name: str, looked: list[str], note: str = "") -> DatasetNotFound:
    """Build the one clear DatasetNotFound for ``name``."""
    lines = [f"{TITLES[name]} not found. Looked in, in order:"]
    lines += [f"  {i}. {place}" for i, place in enumerate(looked, 1)]
    if note:
        lines.append(note)
    lines.append(
        f"Get {GET[name]} and put it in {import_dir()} (or in the folder named by "
        f"CNN_COURSE_DATA); or run `python -m cnn_course data fetch {name}` to download it, "
        f"or `python -m cnn_course data import {name} PATH` to bring in a copy you already have."
    )
    return DatasetNotFound("\n".join(lines))


def detect(name: str, p: Path) -> str | None:
    """Return the format of candidate ``p`` for dataset ``name`` ("npz",
    "pickles", "pickles-tar", "tree", "tree-tar", "zip", "tar"), or None when ``p``
    is not one. Raises DataError for an unreadable archive."""
    if name == "mnist":
        return "npz" if p.is_file() else None
    if name == "dogs":
        if p.is_dir():
            return "tree" if (p / "train").is_dir() else None
        if p.is_file() and zipfile.is_zipfile(p):
            return "zip"
        return "tar" if p.is_file() and tarfile.is_tarfile(p) else None
    # cifar10
    if p.is_dir():
        if any((p / f).exists() for f in CIFAR10_PICKLES):
            return "pickles"
        if (p / "train").is_dir() or (p / "test").is_dir():
            return "tree"
        return None
    if not p.is_file():
        return None
    if "cifar-10-python" in p.name:
        return "pickles-tar"
    if "jpeg" in p.name.lower() and ".tar" in p.name:
        return "tree-tar"
    try:
        with tarfile.open(p) as tar:
            for i, member in enumerate(tar):
                parts = Path(member.name).parts
                if parts and (parts[-1] in CIFAR10_PICKLES or parts[-1] == "batches.meta"):
                    return "pickles-tar"
                if "train" in parts or "test" in parts:
                    return "tree-tar"
                if i > 50:
                    break
    except tarfile.ReadError:
        return None
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"{p}: not a readable tar archive, truncated or corrupt{tar_detail(e)}") from None
    return None


def find(name: str, path=None) -> tuple[str | None, Path | None, list[str]]:
    """Look for ``name`` in the search order without downloading or decoding.

    Returns (format, source, looked): format and source are None when nothing
    was found; looked lists every place tried, for the error message. Raises
    DataError when a place holds something by the expected name that is not
    usable (nothing is skipped silently)."""
    names = NAMES[name]
    looked = []
    if path is not None:
        p = Path(path).expanduser()
        looked.append(f"{p} (the path argument)")
        if p.exists():
            kind = detect(name, p)
            if kind:
                return kind, p, looked
            if p.is_dir():
                for n in names:
                    if (p / n).exists():
                        kind = detect(name, p / n)
                        if kind:
                            return kind, p / n, looked
            raise DataError(f"{p} holds no {TITLES[name]} data: expected {GET[name]}")
        warnings.warn(f"{p} does not exist; looking for {TITLES[name]} in the usual places",
                      stacklevel=3)
    for label, folder in search_places(name):
        looked.append(f"{folder}: {', '.join(names)} ({label})")
        for n in names:
            c = folder / n
            if c.exists():
                kind = detect(name, c)
                if kind is None:
                    raise DataError(f"{c} is not usable {TITLES[name]} data: expected {GET[name]}")
                return kind, c, looked
    return None, None, looked

