"""The data layer's archives and files under attack, second round (issue 26): what
is read, what is accepted in place of a good copy, and what it says (the tests of
the `data import` command, dropped in issue 24, now go through the loaders).

Each test names the defect of issue 26 it guards against; each was checked
by removing its guard: it fails then.
"""

import os
import stat
import subprocess
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from cnn_course import data
from test_data import hermetic, jpeg_bytes, tar_folder, write_jpeg_tree, write_mnist, write_pickles  # noqa: F401
from test_data_guards import leftovers

REPO = Path(__file__).resolve().parents[1]


def run_cli(*argv, timeout=60, **env):
    """`python -m cnn_course ARGV`; a command still running after `timeout`
    seconds fails the test (TimeoutExpired) instead of hanging it."""
    return subprocess.run(
        [sys.executable, "-m", "cnn_course", *argv],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO), **env),
        timeout=timeout,
    )


def one_error_line(proc):
    """The one `error: ...` line of a failed command (asserted to be one)."""
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc.stderr


def encrypted(zip_path):
    """Mark every member of a zip as encrypted (the flag zipfile reads), as
    a zip made with a password has it."""
    raw = bytearray(Path(zip_path).read_bytes())
    for signature, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = raw.find(signature)
        while start >= 0:
            raw[start + flag_at] |= 0x1
            start = raw.find(signature, start + 4)
    Path(zip_path).write_bytes(bytes(raw))
    return zip_path


def dogs_zip(path, members):
    """A dogImages.zip holding {name: bytes} (ZipInfo names for special members)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w") as z:
        warnings.simplefilter("ignore")  # zipfile warns of a duplicate name, and writes it
        for name, payload in members:
            z.writestr(name, payload)
    return path


def good_dog_members(breeds=("001.A", "002.B")):
    return [
        (f"dogImages/{s}/{b}/{i}.jpg", jpeg_bytes([40 * i, 90, 30 * k], (8, 8)))
        for s in ("train", "valid", "test")
        for k, b in enumerate(breeds)
        for i in range(2)
    ]


# -------------------------------------------- High 2: encrypted zip members


def test_encrypted_npz_members_are_one_line(tmp_path, hermetic):
    src = encrypted(write_mnist(tmp_path / "mnist.npz"))
    with pytest.raises(data.DataError, match="x_train.npy is encrypted"):
        data.load_mnist(src)  # what benchmarks/train_speed.py --mnist-npz calls
    assert list(hermetic.iterdir()) == []


def test_an_encrypted_dogs_zip_is_one_line_and_unpacks_nothing(tmp_path, hermetic):
    with pytest.raises(data.DataError, match="is encrypted"):
        data.find_dog_images(encrypted(dogs_zip(tmp_path / "enc" / "dogImages.zip", good_dog_members())))
    assert not (hermetic / "dogImages").exists() and leftovers(tmp_path) == []


# ----------------------------------------- High 3: an .npz array's size limit


def npy_declaring(shape):
    """The bytes of an .npy whose header declares `shape` (float32) but
    which holds almost no data."""
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return buf.getvalue() + b"\0" * 64


def test_an_npz_declaring_a_huge_shape_is_refused_before_allocating(tmp_path, hermetic):
    npz = tmp_path / "mnist.npz"
    small = np.zeros((2, 28, 28), np.uint8)
    np.savez(npz, y_train=small[:, 0, 0], x_test=small, y_test=small[:, 0, 0])
    with zipfile.ZipFile(npz, "a") as z:
        z.writestr("x_train.npy", npy_declaring((10**9, 28, 28)))
    with pytest.raises(data.DataError, match=r"x_train declares shape .*over the 512 MiB limit"):
        data.load_mnist(npz)


def test_an_npz_over_the_limit_as_stored_is_refused(tmp_path, hermetic, monkeypatch):
    monkeypatch.setattr(data.formats, "MAX_NPZ_ARRAY_BYTES", 100_000)
    big = np.zeros((2000, 28, 28), np.uint8)  # 1.5 MB
    npz = tmp_path / "mnist.npz"
    np.savez_compressed(
        npz, x_train=big, y_train=big[:, 0, 0], x_test=big[:2], y_test=big[:2, 0, 0]
    )  # a deflate bomb in small
    with pytest.raises(data.DataError, match="over the 0 MiB limit"):
        data.load_mnist(npz)


# -------------------- High 9: shallow checks must not replace a good copy


def test_a_dogs_zip_of_junk_images_is_not_unpacked_into_place(tmp_path, hermetic):
    junk = [(name, b"not a JPEG at all") for name, _ in good_dog_members()]
    with pytest.raises(data.DataError, match=r"12 of 12 images cannot be used: .*is not a readable image"):
        data.find_dog_images(dogs_zip(tmp_path / "junk" / "dogImages.zip", junk))
    assert not (hermetic / "dogImages").exists() and leftovers(tmp_path) == []


def symlink_member(name, target):
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix, where the mode bits say "link"
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target


@pytest.mark.parametrize(
    "extra, match",
    [
        ([("dogImages/train/001.A/0.jpg", b"junk")], "appears twice"),  # a junk second copy
        ([symlink_member("dogImages/train/001.A/9.jpg", "/etc/passwd")], "a link or special file"),
    ],
)
def test_duplicate_and_symlink_zip_members_are_refused(tmp_path, hermetic, extra, match):
    zip_path = dogs_zip(tmp_path / "zips" / "dogImages.zip", good_dog_members() + extra)
    with pytest.raises(data.DataError, match=match):
        data.find_dog_images(zip_path)
    assert not (hermetic / "dogImages").exists() and leftovers(tmp_path) == []


# ----------------------- Low 2: messages name the user's file, and a few images


def test_errors_found_in_the_staged_copy_name_the_users_file(tmp_path, hermetic):
    no_valid = [(n, b) for n, b in good_dog_members() if "/valid/" not in n]
    zip_path = dogs_zip(tmp_path / "zips" / "dogImages.zip", no_valid)
    with pytest.raises(data.DataError) as caught:
        data.find_dog_images(zip_path)
    assert "no valid/" in str(caught.value) and str(zip_path) in str(caught.value)
    assert ".tmp-cnn-course" not in str(caught.value)


def test_many_bad_images_are_counted_and_a_few_named(tmp_path, hermetic):
    tree = write_jpeg_tree(tmp_path / "jpeg", per_class={"train": 70, "test": 1})
    bad = sorted((tree / "train").rglob("*.jpg"))[:7]  # 1% of 700: skipped with a warning
    for f in bad:
        f.write_bytes(b"junk")
    with pytest.warns(UserWarning, match="skipped 7 unusable image") as caught:
        data.load_cifar10(tree)
    message = next(str(w.message) for w in caught if "skipped 7" in str(w.message))
    named = [f for f in bad if str(f) in message]
    assert 0 < len(named) < len(bad) and f"and {len(bad) - len(named)} more" in message
    assert ".tmp-cnn-course" not in message


def test_train_speed_reads_an_encrypted_mnist_npz_as_one_clear_error(tmp_path):
    """benchmarks/train_speed.py --mnist-npz reads through the data layer's checks."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import train_speed
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    src = encrypted(write_mnist(tmp_path / "mnist.npz"))
    with pytest.raises(data.DataError, match="is encrypted"):
        train_speed._read_npz(src, "mnist")


# ------------------- High 1's sibling: what the lessons look up is not opened


def test_a_fifo_in_the_data_folder_is_named_by_status_not_opened(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    os.mkfifo(folder / "mnist.npz")
    proc = run_cli("data", "status", CNN_COURSE_DATA=str(folder))
    assert proc.returncode == 0
    assert any(
        line.startswith("mnist") and "BROKEN" in line and "mnist.npz" in line for line in proc.stdout.splitlines()
    )
