"""Write constraints.txt: the versions of everything `make setup` installs, as
installed in the Python that runs this script (the one the tests passed in).

    .venv/bin/python tools/record_constraints.py     # also: make constraints

Reads what the course asks for (pyproject.toml's dependencies and its
tensorflow, jax and lab extras, and requirements-dev.txt), follows the
requirements of each installed distribution, and writes one `name==version`
line for each, limited by an environment marker to this Python version and
platform, and to the Python versions the recorded release supports (its
Requires-Python): elsewhere (Python 3.10 or 3.12, macOS) the ranges of
pyproject.toml resolve as before, since a version recorded here may not exist there.
`make setup` installs with `-c constraints.txt`.
"""

import platform
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = ("tensorflow", "jax", "lab")


def wanted():
    """Return the course's own requirements (Requirement objects) on this machine."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    lines = list(project["dependencies"])
    for extra in EXTRAS:
        lines += project["optional-dependencies"][extra]
    for line in (ROOT / "requirements-dev.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            lines.append(line)
    return [Requirement(line) for line in lines]


def closure(requirements):
    """Return {canonical name: version} of the installed distributions the
    requirements need, following their own requirements and extras. Raises
    PackageNotFoundError naming one that is not installed."""
    found, todo = {}, [(r, "") for r in requirements]
    while todo:
        req, extra = todo.pop()
        if req.marker and not req.marker.evaluate({**default_environment(), "extra": extra}):
            continue
        name = canonicalize_name(req.name)
        dist = metadata.distribution(name)
        key = (name, tuple(sorted(req.extras)))
        if key in found:
            continue
        found[key] = dist.version
        for line in dist.requires or []:
            sub = Requirement(line)
            todo += [(sub, "")] + [(sub, e) for e in req.extras]
    return {name: (version, metadata.metadata(name).get("Requires-Python")) for (name, _), version in found.items()}


def python_marker(requires_python, python):
    """Return a distribution's Requires-Python (">=3.11.5") as a marker
    clause (' and python_full_version >= "3.11.5"') when it leaves out part
    of the minor version `python` ("3.11"); "" when it allows all of it."""
    if not requires_python or SpecifierSet(requires_python).contains(f"{python}.0"):
        return ""
    return "".join(
        f' and python_full_version {spec.operator} "{spec.version}"' for spec in SpecifierSet(requires_python)
    )


def main():
    versions = closure(wanted())
    python = ".".join(platform.python_version_tuple()[:2])
    marker = (
        f'python_version == "{python}" and sys_platform == "{sys.platform}" '
        f'and platform_machine == "{platform.machine()}"'
    )
    lines = [
        f"# The versions `make test` passed with, on Python {python} ({sys.platform}, {platform.machine()}).",
        "# Written by tools/record_constraints.py (make constraints); do not edit by hand.",
        *(
            f"{name}=={version} ; {marker}{python_marker(requires, python)}"
            for name, (version, requires) in sorted(versions.items())
        ),
    ]
    (ROOT / "constraints.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"constraints.txt: {len(versions)} distributions")


if __name__ == "__main__":
    main()
