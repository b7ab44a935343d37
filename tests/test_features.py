"""cnn_course.features: the feature pass's images, its .npz cache, photos to look at, ImageNet class names."""

import json
import re

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from cnn_course import data, features  # noqa: E402

SIZE = (16, 16)


@pytest.fixture
def offline_home(tmp_path, monkeypatch):
    """Empty data folder and Keras home, offline: nothing can be found or downloaded."""
    monkeypatch.setenv("CNN_COURSE_OFFLINE", "1")
    monkeypatch.setenv("CNN_COURSE_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    (tmp_path / "data").mkdir()
    (tmp_path / "keras").mkdir()
    monkeypatch.setattr(data.lookup, "REPO_DATA_DIR", tmp_path / "repo-data")
    return tmp_path


@pytest.fixture
def images(tmp_path):
    """Seven small PNG files with different random content; returns their paths."""
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    folder = tmp_path / "images"
    folder.mkdir()
    paths = []
    for i in range(7):
        path = folder / f"img{i}.png"
        cv2.imwrite(str(path), rng.integers(0, 256, (20, 24, 3), dtype=np.uint8))
        paths.append(path)
    return paths


def tiny_model(seed=0):
    """A small frozen 'base': one conv layer and a pooling layer, output (8, 8, 3)."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((*SIZE, 3)),
            keras.layers.Conv2D(3, 3, padding="same"),
            keras.layers.MaxPooling2D(2),
        ]
    )


def expected(model, paths):
    """The features computed the long way: read, preprocess, predict."""
    x = np.concatenate(list(data.read_images(paths, size=SIZE, batch_size=100)))
    x = keras.applications.vgg16.preprocess_input(x.astype("float32"))
    return model.predict(x, verbose=0)


def pass_of(model, calls=None):
    """The lesson's feature pass for `model`, recording each call's paths in `calls`."""

    def extract(paths):
        if calls is not None:
            calls.append(list(paths))
        out = [
            model.predict(keras.applications.vgg16.preprocess_input(b.astype("float32")), verbose=0)
            for b in features.image_batches(paths, size=SIZE, batch_size=3, progress=False)
        ]
        return np.concatenate(out)

    return extract


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    """A writable CNN_COURSE_DATA (the feature cache goes into its features/) and no repo data folder."""
    monkeypatch.setenv("CNN_COURSE_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(data.lookup, "REPO_DATA_DIR", tmp_path / "repo-data")
    return tmp_path / "data" / "features"


def test_image_batches_yield_every_image_in_order_with_a_bounded_bar(images, capsys):
    batches = list(features.image_batches(images, size=SIZE, batch_size=3, progress=True))
    assert [len(b) for b in batches] == [3, 3, 1]
    assert all(b.dtype == np.uint8 and b.shape[1:] == (*SIZE, 3) for b in batches)
    np.testing.assert_array_equal(
        np.concatenate(batches), np.concatenate(list(data.read_images(images, size=SIZE, batch_size=7)))
    )
    bar = capsys.readouterr().err
    assert "bottleneck features" in bar and "7/7" in bar and "8/7" not in bar


def test_no_progress_bar_unless_asked(images, capsys):
    list(features.image_batches(images, size=SIZE, progress=False))
    assert "bottleneck features" not in capsys.readouterr().err


def test_cached_features_compute_time_and_save_then_load_without_computing(images, cache_home, capsys):
    model, calls = tiny_model(), []
    first = features.cached_features("dogs-tiny-train", pass_of(model, calls), images, model, SIZE)
    assert first.shape == (7, 8, 8, 3) and first.dtype == np.float32
    np.testing.assert_allclose(first, expected(model, images), rtol=1e-5, atol=1e-5)
    out = capsys.readouterr().out
    assert re.search(
        r"^Features: dogs-tiny-train \(7, 8, 8, 3\) computed in [\d.]+ s \([\d.]+ images/s\), "
        r"saved to .*dogs-tiny-train\.npz$",
        out,
        re.MULTILINE,
    )
    assert (cache_home / "dogs-tiny-train.npz").is_file()
    second = features.cached_features("dogs-tiny-train", pass_of(model, calls), images, model, SIZE)
    assert len(calls) == 1  # the pass did not run again
    assert "loaded from the cache" in capsys.readouterr().out
    np.testing.assert_array_equal(first, second)


def test_other_paths_order_weights_or_size_recompute(images, cache_home, capsys):
    model, calls = tiny_model(), []
    run = lambda paths, m=model, size=SIZE: features.cached_features("f", pass_of(m, calls), paths, m, size)  # noqa: E731
    run(images)
    run(images[:5])
    reordered = run(images[::-1])
    np.testing.assert_allclose(reordered[0], expected(model, images[-1:])[0], rtol=1e-5, atol=1e-5)
    run(images[::-1], m=tiny_model(seed=1))
    assert len(calls) == 4
    with np.load(cache_home / "f.npz") as stored:
        assert stored["features"].shape == (7, 8, 8, 3)


def test_changed_image_content_recomputes(images, cache_home):
    cv2 = pytest.importorskip("cv2")
    model, calls = tiny_model(), []
    features.cached_features("f", pass_of(model, calls), images, model, SIZE)
    cv2.imwrite(str(images[0]), np.zeros((40, 40, 3), np.uint8))  # same path, new file size
    features.cached_features("f", pass_of(model, calls), images, model, SIZE)
    assert len(calls) == 2


def test_a_corrupt_cache_is_recomputed(images, cache_home):
    cache_home.mkdir(parents=True)
    (cache_home / "f.npz").write_bytes(b"not an npz file")
    model, calls = tiny_model(), []
    got = features.cached_features("f", pass_of(model, calls), images, model, SIZE)
    assert got.shape == (7, 8, 8, 3) and len(calls) == 1
    assert features.load_cached_features(cache_home / "f.npz", features.cache_key(model, images, SIZE)) is not None


def test_a_read_only_data_folder_is_never_written(images, tmp_path, monkeypatch, capsys):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o555)  # like ../shared/data: read-only, even for root
    monkeypatch.setenv("CNN_COURSE_DATA", str(shared))
    monkeypatch.setattr(data.lookup, "REPO_DATA_DIR", tmp_path / "repo-data")
    try:
        assert features.feature_cache_dir() == tmp_path / "repo-data" / "features"
        model = tiny_model()
        features.cached_features("f", pass_of(model), images, model, SIZE)
        assert not (shared / "features").exists()
        assert (tmp_path / "repo-data" / "features" / "f.npz").is_file()
    finally:
        shared.chmod(0o755)


def test_no_paths_or_a_short_pass_is_a_clear_error(images, cache_home):
    model = tiny_model()
    with pytest.raises(ValueError, match="no image paths"):
        features.cached_features("f", pass_of(model), [], model, SIZE)
    with pytest.raises(ValueError, match="6 rows computed for 7 images"):
        features.cached_features("f", lambda paths: pass_of(model)(paths)[:6], images, model, SIZE)
    assert not (cache_home / "f.npz").exists()


def test_a_missing_image_is_a_data_error_and_nothing_is_cached(images, tmp_path, cache_home):
    model = tiny_model()
    with pytest.raises(data.DataError, match="nope.jpg"):
        features.cached_features("f", pass_of(model), images + [tmp_path / "nope.jpg"], model, SIZE)
    assert not (cache_home / "f.npz").exists()


# --------------------------------------------------------------------------
# Photos to look at


def test_example_photos_are_dog_photos_of_different_breeds_when_found(tmp_path, monkeypatch, capsys):
    root = data.make_image_folder_standin(tmp_path / "data" / "dogImages", n_classes=5)
    monkeypatch.setenv("CNN_COURSE_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(data.lookup, "REPO_DATA_DIR", tmp_path / "repo-data")
    photos, names = features.example_photos(n=3, seed=1)
    assert len(photos) == 3 and len(set(names)) == 3
    assert all(p.dtype == np.uint8 and p.ndim == 3 for p in photos)
    assert set(names) <= {features.breed_name(c.name) for c in (root / "test").iterdir()}
    assert capsys.readouterr().out.startswith(f"Data: 3 dog photos (real, test split of {root}): ")
    assert features.example_photos(n=3, seed=1)[1] == names  # the same on every run


def test_example_photos_fall_back_to_scikit_learn_samples(offline_home, capsys):
    photos, names = features.example_photos()
    assert names == ["china.jpg", "flower.jpg"] and len(photos) == 2
    assert "Data: 2 photos from scikit-learn" in capsys.readouterr().out
    assert features.breed_name("001.Shih-Tzu") == "Shih-Tzu"
    assert features.breed_name("002.Rhodesian_ridgeback") == "Rhodesian ridgeback"


# --------------------------------------------------------------------------
# ImageNet class names


def write_class_index(folder, n=1000):
    folder.mkdir(parents=True, exist_ok=True)
    index = {str(i): [f"n{i:08d}", f"name_{i}"] for i in range(n)}
    (folder / features.CLASS_INDEX_FILE).write_text(json.dumps(index))


@pytest.mark.parametrize("where", ["data", "keras/models"])
def test_class_names_found_in_data_folder_or_keras_cache(offline_home, where, capsys):
    write_class_index(offline_home / where)
    names = features.imagenet_class_names()
    assert len(names) == 1000
    assert names[0] == "name_0" and names[999] == "name_999"
    assert str(offline_home / where) in capsys.readouterr().out


def test_an_incomplete_class_index_is_not_used(offline_home):
    write_class_index(offline_home / "data", n=10)
    with pytest.raises(data.DatasetNotFound):
        features.imagenet_class_names()


def test_offline_quick_gives_labelled_placeholders_without_downloading(offline_home, monkeypatch, capsys):
    monkeypatch.setattr(keras.utils, "get_file", lambda *a, **k: pytest.fail("tried to download"))
    names = features.imagenet_class_names(quick=True)
    assert len(names) == 1000
    assert all("STAND-IN" in name for name in names)
    assert "STAND-IN" in capsys.readouterr().out


def test_offline_full_mode_raises_naming_the_file_url_and_folder(offline_home, monkeypatch):
    monkeypatch.setattr(keras.utils, "get_file", lambda *a, **k: pytest.fail("tried to download"))
    with pytest.raises(data.DatasetNotFound) as error:
        features.imagenet_class_names()
    message = str(error.value)
    assert features.CLASS_INDEX_FILE in message
    assert features.CLASS_INDEX_URL in message
    assert str(offline_home / "data") in message
    assert "CNN_COURSE_OFFLINE" in message


def test_online_uses_keras_get_file_and_a_failed_download_is_a_clear_error(offline_home, monkeypatch):
    monkeypatch.setenv("CNN_COURSE_OFFLINE", "0")
    calls = []

    def fake_get_file(fname, origin, **kwargs):
        calls.append((fname, origin, kwargs.get("cache_subdir")))
        folder = offline_home / "keras" / "models"
        write_class_index(folder)
        return str(folder / fname)

    monkeypatch.setattr(keras.utils, "get_file", fake_get_file)
    assert features.imagenet_class_names()[5] == "name_5"
    assert calls == [(features.CLASS_INDEX_FILE, features.CLASS_INDEX_URL, "models")]

    (offline_home / "keras" / "models" / features.CLASS_INDEX_FILE).unlink()

    def failing_get_file(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(keras.utils, "get_file", failing_get_file)
    with pytest.raises(data.DatasetNotFound, match="download failed"):
        features.imagenet_class_names()
    assert "STAND-IN" in features.imagenet_class_names(quick=True)[0]
