"""Where datasets are looked for, in order (see the package docstring), and the
``CNN_COURSE_DATA``, ``CNN_COURSE_OFFLINE`` and ``CNN_COURSE_QUICK`` switches. Finds, never reads."""

from __future__ import annotations

import os
import tarfile
import warnings
import zipfile
from pathlib import Path

from .catalog import CIFAR10_PICKLES, GET, NAMES, TITLES, DataError, DatasetNotFound, SettingError

REPO_ROOT = Path(__file__).resolve().parents[2]
IN_CHECKOUT = (REPO_ROOT / "pyproject.toml").is_file()  # False when installed from a wheel
REPO_DATA_LABEL = "the repo's data folder" if IN_CHECKOUT else "the course's data folder"


def user_path(text: str, what: str) -> Path:
    """Path(text) with ``~``/``~user`` expanded; SettingError naming ``what`` for an unknown user."""
    try:
        return Path(text).expanduser()
    except RuntimeError:
        user = str(text).split(os.sep, 1)[0]
        raise SettingError(f"{what}={text}: {user} is the home folder of no user here; give the full path") from None


def search_places(name: str = "") -> list[tuple[str, Path]]:
    """The (label, folder) places searched after the path argument: ``$CNN_COURSE_DATA`` (absolute),
    the repo's data folder, the Keras cache. SettingError when ``$CNN_COURSE_DATA`` names a file."""
    env = os.environ.get("CNN_COURSE_DATA", "").strip()
    folder = user_path(env, "CNN_COURSE_DATA").absolute() if env else None
    if folder and folder.exists() and not folder.is_dir():
        raise SettingError(f"CNN_COURSE_DATA={env} names a file ({folder}), not a folder of datasets")
    places = [("$CNN_COURSE_DATA", folder)] if folder else []
    return places + [(REPO_DATA_LABEL, REPO_DATA_DIR), ("the Keras cache", keras_cache_dir())]


def data_dirs() -> list[Path]:
    """The data folders searched, in order: ``$CNN_COURSE_DATA`` (when set), the repo's ``data/``."""
    return list(dict.fromkeys(folder for _, folder in search_places()[:-1]))


def keras_home() -> Path:
    """``$KERAS_HOME``, else ``~/.keras`` (``/tmp/.keras`` when home is not writable), as Keras picks it."""
    if os.environ.get("KERAS_HOME"):
        return user_path(os.environ["KERAS_HOME"], "KERAS_HOME")
    home = Path("~").expanduser()
    return (home if os.access(home, os.W_OK) else Path("/tmp")) / ".keras"


def keras_cache_dir() -> Path:
    """``<keras home>/datasets``, where Keras keeps downloaded datasets."""
    return keras_home() / "datasets"


def course_data_dir() -> Path:
    """The course's data folder: ``$CNN_COURSE_REPO_DATA``, the checkout's ``data/``, else in the Keras home."""
    if os.environ.get("CNN_COURSE_REPO_DATA"):
        return Path(os.environ["CNN_COURSE_REPO_DATA"])
    try:
        return REPO_ROOT / "data" if IN_CHECKOUT else keras_home() / "cnn-course"
    except SettingError:  # reported where the Keras cache is used
        return Path("/tmp/.keras/cnn-course")


REPO_DATA_DIR = course_data_dir()  # read once, at import; tests and benchmarks replace it


def env_flag(name: str) -> bool:
    """The variable ``name`` as true (1/true/yes/on) or false (unset, 0/false/no/off); else SettingError."""
    raw = os.environ.get(name, "")
    if raw.strip().lower() in ("1", "true", "yes", "on", "", "0", "false", "no", "off"):
        return raw.strip().lower() in ("1", "true", "yes", "on")
    raise SettingError(
        f"{name}={raw!r} is not a true/false value: use 1, true, yes or on; or 0, false, no, off or unset it"
    )


def offline() -> bool:
    """Whether ``CNN_COURSE_OFFLINE`` forbids downloads."""
    return env_flag("CNN_COURSE_OFFLINE")


def quick_mode(quick=None) -> bool:
    """Whether this is a quick run that may use stand-ins: ``quick``, or ``CNN_COURSE_QUICK`` when None."""
    return bool(quick) if quick is not None else env_flag("CNN_COURSE_QUICK")


def not_found(name: str, looked: list[str], note: str = "") -> DatasetNotFound:
    """The one clear DatasetNotFound for ``name``: places looked, and how to get it."""
    lines = [f"{TITLES[name]} not found. Looked in, in order:"]
    lines += [f"  {i}. {place}" for i, place in enumerate(looked, 1)] + ([note] if note else [])
    get = f"put it in {data_dirs()[0]} (or in the folder named by CNN_COURSE_DATA)"
    lines.append(f"Get {GET[name]} and {get}; or run `python -m cnn_course data fetch {name}` to download it.")
    return DatasetNotFound("\n".join(lines))


def detect(name: str, p: Path) -> str | None:
    """The format of ``p`` for ``name`` (npz, pickles, pickles-tar, tree, tree-tar, zip, tar) or None."""
    if name == "mnist" or not p.exists():
        return "npz" if name == "mnist" and p.is_file() else None
    if p.is_dir():
        if name == "cifar10" and any((p / f).exists() for f in CIFAR10_PICKLES):
            return "pickles"
        return "tree" if (p / "train").is_dir() or (name == "cifar10" and (p / "test").is_dir()) else None
    if name == "dogs":
        return "zip" if zipfile.is_zipfile(p) else "tar" if tarfile.is_tarfile(p) else None
    return "pickles-tar" if "cifar-10-python" in p.name else "tree-tar"  # the official tarball, or a JPEG tree's


def find(name: str, path=None) -> tuple[str | None, Path | None, list[str]]:
    """Look for ``name``, never downloading: (format, source, places looked); DataError for an unusable find."""
    looked = []
    if path is not None:
        p = Path(path).expanduser()
        looked.append(f"{p} (the path argument)")
        if p.exists():
            for c in [p] + ([p / n for n in NAMES[name]] if p.is_dir() else []):
                kind = detect(name, c)
                if kind:
                    return kind, c, looked
            raise DataError(f"{p} holds no {TITLES[name]} data: expected {GET[name]}")
        warnings.warn(f"{p} does not exist; looking for {TITLES[name]} in the usual places", stacklevel=3)
    for label, folder in search_places(name):
        looked.append(f"{folder}: {', '.join(NAMES[name])} ({label})")
        for c in (folder / n for n in NAMES[name] if (folder / n).exists()):
            kind = detect(name, c)
            if kind is None:
                raise DataError(f"{c} is not usable {TITLES[name]} data: expected {GET[name]}")
            return kind, c, looked
    return None, None, looked
