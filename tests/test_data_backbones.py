"""cnn_course.data for the transfer-learning lessons: backbone weights found like
datasets, dog photos from a .tar.gz, the original course's precomputed dog
features. Hermetic: temporary data, repo-data and Keras folders, offline."""

import json
import tarfile

import numpy as np
import pytest

from cnn_course import data
from cnn_course.__main__ import main
from cnn_course.data import backbones
from test_data import fake_get_file, install_fake_keras

MOBILENET_NOTOP = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top.h5"


@pytest.fixture
def home(tmp_path, monkeypatch):
    """CNN_COURSE_DATA, the repo's data folder and KERAS_HOME in tmp_path; offline."""
    for name in ("data", "repo-data", "keras"):
        (tmp_path / name).mkdir()
    monkeypatch.setenv("CNN_COURSE_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(data.lookup, "REPO_DATA_DIR", tmp_path / "repo-data")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setenv("CNN_COURSE_OFFLINE", "1")
    monkeypatch.delenv("CNN_COURSE_QUICK", raising=False)
    return tmp_path


def fake_h5(path, layers, block_16_width=None, top=False):
    """Write an .h5 with the attributes keras.applications weight files have (no real weights)."""
    import h5py

    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(layers) + (["predictions"] if top else [])
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([n.encode() for n in names])
        for name in names:
            f.create_group(name)
        if block_16_width:
            group = f.require_group("block_16_project")
            group.attrs["weight_names"] = np.array([b"block_16_project/kernel"])
            group.create_dataset("block_16_project/kernel", data=np.zeros((1, 1, 8, block_16_width), np.float32))
    return path


def mobilenet_h5(path, width=112, top=False):
    return fake_h5(path, ["Conv1", "block_16_project"], block_16_width=width, top=top)


# --------------------------------------------------------------------------
# Backbone weights


def test_keras_file_names_for_each_backbone():
    assert backbones.weights_file_name("VGG16") == "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    assert backbones.weights_file_name("VGG16", include_top=True) == "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
    assert backbones.weights_file_name("ResNet50") == "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    assert backbones.weights_file_name("MobileNetV2", alpha=0.35) == MOBILENET_NOTOP
    assert (
        backbones.weights_file_name("MobileNetV2", True, 1, 160)
        == "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_160.h5"
    )
    assert backbones.weights_file_name("MobileNetV2", alpha=0.5, size=64).endswith("_0.5_224_no_top.h5")


@pytest.mark.parametrize(
    "backbone, alpha, message",
    [
        ("VGG19", 1.0, "BACKBONE must be one of VGG16, ResNet50, MobileNetV2, not 'VGG19'"),
        ("MobileNetV2", 0.4, "ALPHA for MobileNetV2 must be one of 0.35, 0.5, 0.75, 1.0, 1.3, 1.4"),
        ("MobileNetV2", "wide", "ALPHA for MobileNetV2 must be one of"),
    ],
)
def test_unknown_backbone_or_alpha_is_one_clear_line(home, backbone, alpha, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")) as error:
        data.backbone_weights(backbone, alpha)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("where", ["data", "data/keras-models", "data/models", "repo-data", "keras/models"])
def test_weights_found_in_each_place(home, where, capsys):
    path = mobilenet_h5(home / where / MOBILENET_NOTOP)
    weights, description = data.backbone_weights("MobileNetV2", 0.35)
    assert weights == str(path)
    assert capsys.readouterr().out == f"Weights: MobileNetV2 (alpha 0.35) ImageNet weights (real, from {path})\n"
    assert data.found_weights() == [path]


def test_the_first_place_wins_in_the_documented_order(home):
    later = [mobilenet_h5(home / where / MOBILENET_NOTOP) for where in ("keras/models", "repo-data", "data/models")]
    first = mobilenet_h5(home / "data" / "keras-models" / MOBILENET_NOTOP)
    assert data.backbone_weights("MobileNetV2", 0.35)[0] == str(first)
    assert [label for label, _ in backbones.weights_folders()][0] == "$CNN_COURSE_DATA"
    assert set(data.found_weights()) == {first, *later}


def test_missing_weights_offline_full_mode_name_the_file_url_and_places(home):
    with pytest.raises(data.DatasetNotFound) as error:
        data.backbone_weights("ResNet50")
    message = str(error.value)
    assert "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert "https://storage.googleapis.com/tensorflow/keras-applications/resnet/" in message
    for where in ("data", "data/keras-models", "data/models", "repo-data", "keras/models"):
        assert str(home / where) in message
    assert "CNN_COURSE_OFFLINE=1" in message


def test_missing_weights_quick_stand_in_online_imagenet_optional_none(home, monkeypatch, capsys):
    weights, description = data.backbone_weights("VGG16", quick=True)
    assert weights is None and description.startswith("STAND-IN: random weights for VGG16")
    monkeypatch.setenv("CNN_COURSE_QUICK", "1")
    assert data.backbone_weights("VGG16")[0] is None  # quick=None reads CNN_COURSE_QUICK
    monkeypatch.delenv("CNN_COURSE_QUICK")
    assert data.backbone_weights("VGG16", include_top=True, required=False)[0] is None
    assert "with the top: not found (vgg16_weights_tf_dim_ordering_tf_kernels.h5)" in capsys.readouterr().out
    monkeypatch.setenv("CNN_COURSE_OFFLINE", "0")  # online: Keras downloads it into its cache
    calls = []
    install_fake_keras(monkeypatch, fake_get_file(calls, fake_h5(home / "fx.h5", ["block1_conv1"])))
    weights, description = data.backbone_weights("VGG16")
    assert weights == str(home / "keras" / "models" / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5")
    assert description.endswith(f"(real, from {weights})") and len(calls) == 1


def test_weights_with_the_top_bring_the_class_index_where_keras_reads_it(home):
    top = mobilenet_h5(
        home / "data" / "keras-models" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224.h5", top=True
    )
    # offline and no class names anywhere: decode_predictions could not work, so not available
    assert data.backbone_weights("MobileNetV2", 0.35, include_top=True, required=False)[0] is None
    index = {str(i): [f"n{i:08d}", f"name_{i}"] for i in range(1000)}
    (home / "data" / "keras-models" / "imagenet_class_index.json").write_text(json.dumps(index))
    assert data.backbone_weights("MobileNetV2", 0.35, include_top=True, required=False)[0] == str(top)
    copied = home / "keras" / "models" / "imagenet_class_index.json"
    assert json.loads(copied.read_text()) == index


def test_weights_with_an_external_link_are_refused(home):
    """Issue 26, high 9: a stub whose layers are links into another file."""
    import h5py

    real = mobilenet_h5(home / "elsewhere" / "real.h5")
    stub = home / "data" / MOBILENET_NOTOP
    with h5py.File(real, "r") as source, h5py.File(stub, "w") as f:
        for key, value in source.attrs.items():
            f.attrs[key] = value
        for name in source:
            f[name] = h5py.ExternalLink(str(real), name)
    with pytest.raises(data.DataError, match=f"{MOBILENET_NOTOP}: /Conv1 is a link to .*real.h5"):
        data.backbone_weights("MobileNetV2", 0.35)


def test_data_status_says_how_to_get_missing_weights_and_fetch_refuses_them(home, capsys):
    rows = {r["name"]: r for r in data.dataset_status()}
    assert not rows["weights"]["found"]
    assert "data fetch weights" in rows["weights"]["how"]  # the lessons' default backbone (tests/test_fetch.py)
    assert main(["data", "fetch", "weights"]) == 1  # offline here
    assert "Not downloading ImageNet weights of a backbone: CNN_COURSE_OFFLINE=1" in capsys.readouterr().err


# --------------------------------------------------------------------------
# Dog photos from a .tar.gz


def dog_tarball(path, top="dogImages"):
    """A .tar.gz of a small generated dogImages tree (5 breeds, 12/4/4 photos each)."""
    tree = data.make_image_folder_standin(path.parent.parent / f"tree-for-{path.parent.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for split in ("train", "valid", "test"):
            tar.add(tree / split, arcname=f"{top}/{split}" if top else split)
    return path


def test_a_dog_tarball_in_a_read_only_data_folder_is_unpacked_once_elsewhere(home, monkeypatch):
    shared = home / "shared"
    tarball = dog_tarball(shared / "dogImages-imagewoof10.tar.gz")
    shared.chmod(0o555)  # as ../shared/data: read-only, even for root
    monkeypatch.setenv("CNN_COURSE_DATA", str(shared))
    try:
        root = data.find_dog_images()
        assert root == home / "repo-data" / "dogImages-imagewoof10"
        assert sorted(p.name for p in shared.iterdir()) == ["dogImages-imagewoof10.tar.gz"]
        assert data.load_image_folder(root)["train"]["labels"].shape == (60,)
        stamp = (root / "train").stat().st_mtime_ns
        assert data.find_dog_images() == root and (root / "train").stat().st_mtime_ns == stamp  # once
        assert [r for r in data.dataset_status() if r["name"] == "dogs"][0]["where"] == str(tarball)
    finally:
        shared.chmod(0o755)


@pytest.mark.parametrize("top", ["dogImages", None])
def test_a_dog_tarball_given_as_the_path_is_unpacked_into_the_data_folder(home, top):
    tarball = dog_tarball(home / "downloads" / "dogs.tar.gz", top=top)
    root = data.find_dog_images(tarball)
    assert root == home / "data" / "dogs" and sorted(p.name for p in root.iterdir()) == ["test", "train", "valid"]
    assert data.find_dog_images(tarball) == root  # once


def test_a_tarball_without_train_is_a_clear_error_and_leaves_nothing(home):
    bad = home / "downloads" / "notdogs.tar.gz"
    bad.parent.mkdir()
    (home / "downloads" / "readme.txt").write_text("hello")
    with tarfile.open(bad, "w:gz") as tar:
        tar.add(home / "downloads" / "readme.txt", arcname="stuff/readme.txt")
    with pytest.raises(data.DataError, match="no train/ folder inside"):
        data.find_dog_images(bad)
    assert list((home / "data").iterdir()) == []


def test_a_damaged_weights_file_is_named_before_keras_reads_it(home, capsys):
    path = home / "data" / MOBILENET_NOTOP
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"<html>not the weights</html>")  # e.g. a proxy's error page saved under the name
    with pytest.raises(data.DataError, match="not an HDF5 file") as caught:
        data.backbone_weights("MobileNetV2", 0.35)
    assert str(path) in str(caught.value)
    assert "Weights:" not in capsys.readouterr().out
