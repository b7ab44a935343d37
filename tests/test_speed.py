"""precision_policy picks 16-bit maths only where it is faster, and says why.

Given the model, 16-bit only when measured faster than float32 (mixed_float16
on a GPU, mixed_bfloat16 on a CPU; the verdict cached per machine, backend and
model). Unmeasured: mixed_float16 on a GPU; on a CPU mixed_bfloat16 only with
TensorFlow on AMX units; float32 everywhere else.
"""

import json
from datetime import date

import numpy as np
import pytest

from cnn_course import speed

BF16_AMX = "model name\t: Intel(R) Xeon(R) Processor\nflags\t\t: fpu sse2 avx512f avx512_bf16 amx_bf16 amx_tile\n"
BF16_ONLY = "model name\t: AMD EPYC 9R14\nflags\t\t: fpu sse2 avx512f avx512_bf16\n"
PLAIN = "model name\t: Old CPU\nflags\t\t: fpu sse2 avx2\n"


@pytest.fixture
def cpu(tmp_path):
    """Return a function that writes a fake /proc/cpuinfo and returns its path."""

    def write(text):
        path = tmp_path / "cpuinfo"
        path.write_text(text)
        return path

    return write


def test_cpu_flags_are_read_from_cpuinfo(cpu, tmp_path):
    assert speed.cpu_has_bf16(cpu(BF16_ONLY)) and not speed.cpu_has_amx(cpu(BF16_ONLY))
    assert speed.cpu_has_bf16(cpu(BF16_AMX)) and speed.cpu_has_amx(cpu(BF16_AMX))
    assert speed.cpu_model(cpu(BF16_AMX)) == "Intel(R) Xeon(R) Processor"
    assert not speed.cpu_has_bf16(cpu(PLAIN))
    assert not speed.cpu_has_bf16(tmp_path / "missing") and speed.cpu_flags(tmp_path / "missing") == set()


@pytest.fixture
def machine(monkeypatch, cpu, tmp_path):
    """Return a function that fakes the machine: GPU name, cpuinfo text, backend."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv("CNN_COURSE_QUICK", raising=False)
    real = speed.choose_precision

    def fake(gpu=None, cpuinfo=PLAIN, backend="tensorflow"):
        path = cpu(cpuinfo)
        monkeypatch.setattr(speed, "gpu_name", lambda: gpu)
        monkeypatch.setattr(speed, "backend_version", lambda: (backend, "9.9"))
        monkeypatch.setattr(
            speed,
            "choose_precision",
            lambda model=None, data=None, cache=None, cpuinfo=path, quick=None: real(
                model, data, cache, cpuinfo, quick
            ),
        )

    return fake


@pytest.mark.parametrize(
    "gpu, cpuinfo, backend, expected, why",
    [
        ("NVIDIA H100", PLAIN, "jax", "mixed_float16", "GPU NVIDIA H100"),
        (None, PLAIN, "tensorflow", "float32", "no bfloat16 instructions"),
        (None, BF16_AMX, "tensorflow", "mixed_bfloat16", "TensorFlow on a CPU with AMX"),
        (None, BF16_ONLY, "tensorflow", "float32", "without AMX units"),  # issue 12: VGG16 slower in bf16 there
        (None, BF16_AMX, "jax", "float32", "on jax"),
        (None, BF16_AMX, "torch", "float32", "on torch"),
    ],
)
def test_unmeasured_auto_is_conservative_and_says_why(machine, capsys, gpu, cpuinfo, backend, expected, why):
    machine(gpu, cpuinfo, backend)
    assert speed.precision_policy("auto") == expected
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(f"Precision: {expected} (") and why in line


def test_explicit_policy_is_kept_silently_and_unknown_refused(capsys):
    assert speed.precision_policy("float32") == "float32"
    assert speed.precision_policy("mixed_bfloat16") == "mixed_bfloat16"
    assert capsys.readouterr().out == ""
    with pytest.raises(ValueError, match="PRECISION must be one of"):
        speed.precision_policy("half")


def _fake_measure(monkeypatch, speedup, calls, build=False):
    """Replace measure_precision by one that returns ``speedup`` (and, with ``build``, builds the model twice)."""

    def measure(model, data, rounds=6, budget_s=6.0, sixteen="mixed_bfloat16"):
        calls.append(sixteen)
        if build:
            model(), model()
        return {"float32_s": 1.0, f"{sixteen}_s": 1.0 / speedup, "speedup": speedup, "rounds": rounds}

    monkeypatch.setattr(speed, "measure_precision", measure)
    if not build:
        monkeypatch.setattr(speed, "model_signature", lambda model, data: "tiny:42")


@pytest.mark.parametrize(
    "speedup, expected, why",
    [
        (1.6, "mixed_bfloat16", "measured 1.60x faster than float32 on this CPU with jax"),
        (1.05, "float32", "mixed_bfloat16 measured 1.05x the speed of float32 on this CPU with jax"),  # noise
        (0.7, "float32", "mixed_bfloat16 measured 0.70x the speed of float32 on this CPU with jax"),  # slower
    ],
)
def test_measured_auto_never_picks_a_slower_setting(machine, monkeypatch, capsys, speedup, expected, why):
    machine(None, BF16_ONLY, "jax")
    calls = []
    _fake_measure(monkeypatch, speedup, calls)
    assert speed.precision_policy("auto", model=lambda: None, data=(np.zeros((2, 3)), None)) == expected
    (line,) = capsys.readouterr().out.splitlines()
    assert line == f"Precision: {expected} ({why})"
    assert calls == ["mixed_bfloat16"]


@pytest.mark.parametrize(
    "speedup, expected, why",
    [
        (1.6, "mixed_float16", "measured 1.60x faster than float32 on this GPU (NVIDIA H200) with jax"),
        (0.95, "float32", "mixed_float16 measured 0.95x the speed of float32 on this GPU (NVIDIA H200) with jax"),
    ],
)
def test_on_a_gpu_auto_measures_float16_against_float32(machine, monkeypatch, capsys, speedup, expected, why):
    machine("NVIDIA H200", PLAIN, "jax")
    calls = []
    _fake_measure(monkeypatch, speedup, calls)
    assert speed.precision_policy("auto", model=lambda: None, data=(np.zeros((2, 3)), None)) == expected
    assert capsys.readouterr().out.splitlines() == [f"Precision: {expected} ({why})"]
    assert calls == ["mixed_float16"]
    ((key, entry),) = json.loads(speed.cache_path().read_text()).items()
    assert key.startswith("GPU NVIDIA H200 | ") and entry["policy"] == expected
    monkeypatch.setenv("CNN_COURSE_QUICK", "1")  # a quick run does not spend its time measuring
    assert speed.precision_policy("auto", model=lambda: None, data=(np.zeros((2, 3)), None)) == "mixed_float16"
    assert "quick run, not measured: GPU NVIDIA H200" in capsys.readouterr().out
    assert calls == ["mixed_float16"]


def test_measured_verdict_is_cached_per_machine_and_written_atomically(machine, monkeypatch, capsys, tmp_path):
    machine(None, BF16_AMX, "jax")
    calls = []
    _fake_measure(monkeypatch, 0.8, calls)
    data = (np.zeros((2, 3)), None)
    assert speed.precision_policy("auto", model=lambda: None, data=data) == "float32"
    path = speed.cache_path()
    assert path == tmp_path / "keras" / "cnn_course" / "precision.json"
    ((key, entry),) = json.loads(path.read_text()).items()
    assert "Intel(R) Xeon(R) Processor" in key and "amx_bf16" in key and "jax 9.9" in key and "tiny:42" in key
    assert entry["policy"] == "float32" and entry["speedup"] == 0.8
    assert [p.name for p in path.parent.iterdir()] == ["precision.json"]  # no temporary file left
    capsys.readouterr()

    # the second call reads the cache and measures nothing
    assert speed.precision_policy("auto", model=lambda: None, data=data) == "float32"
    assert calls == ["mixed_bfloat16"]
    assert (
        capsys.readouterr()
        .out.rstrip()
        .endswith(f"on this CPU with jax on {date.today().isoformat()}; cached in {path})")
    )

    # another backend is another verdict
    machine(None, BF16_AMX, "tensorflow")
    _fake_measure(monkeypatch, 1.5, calls)
    assert speed.precision_policy("auto", model=lambda: None, data=data) == "mixed_bfloat16"
    assert calls == ["mixed_bfloat16"] * 2 and len(json.loads(path.read_text())) == 2


def test_an_unwritable_cache_still_gives_a_verdict(machine, monkeypatch, capsys, tmp_path):
    machine(None, BF16_AMX, "jax")
    _fake_measure(monkeypatch, 1.5, [])
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder should be")
    monkeypatch.setattr(speed, "cache_path", lambda: blocked / "cnn_course" / "precision.json")
    assert speed.precision_policy("auto", model=lambda: None, data=(np.zeros((2, 3)), None)) == "mixed_bfloat16"
    assert "not cached" in capsys.readouterr().out


def test_measure_precision_times_both_policies_and_restores_the_global_one():
    keras = pytest.importorskip("keras")

    def build():
        net = keras.Sequential(
            [
                keras.Input((8,)),
                keras.layers.Dense(16, activation="relu"),
                keras.layers.Dense(2, activation="softmax", dtype="float32"),
            ]
        )
        net.compile(optimizer="sgd", loss="categorical_crossentropy")
        return net

    x = np.random.default_rng(0).random((32, 8), dtype="float32")
    y = np.eye(2)[np.arange(32) % 2]
    keras.mixed_precision.set_global_policy("float32")
    result = speed.measure_precision(build, (x, y), rounds=2, budget_s=0)
    assert keras.mixed_precision.global_policy().name == "float32"
    assert result["float32_s"] > 0 and result["mixed_bfloat16_s"] > 0 and result["rounds"] == 2
    assert result["speedup"] == pytest.approx(result["float32_s"] / result["mixed_bfloat16_s"])
    signature = speed.model_signature(build, (x, y))
    assert "Dense,Dense" in signature and ":train:(32, 8)" in signature


@pytest.mark.parametrize("labels", ["one-hot", "class numbers"])
def test_measure_precision_times_a_lessons_uncompiled_model(labels):
    """The lessons give their builder before they compile: it is compiled for the timing."""
    keras = pytest.importorskip("keras")

    def build():
        return keras.Sequential(
            [
                keras.Input((8,)),
                keras.layers.Dense(16, activation="relu"),
                keras.layers.Dense(2, activation="softmax", dtype="float32"),
            ]
        )

    x = np.random.default_rng(0).random((32, 8), dtype="float32")
    y = np.arange(32) % 2 if labels == "class numbers" else np.eye(2)[np.arange(32) % 2]
    result = speed.measure_precision(build, (x, y), rounds=2, budget_s=0)
    assert result["float32_s"] > 0 and result["mixed_bfloat16_s"] > 0 and result["rounds"] == 2
    assert keras.mixed_precision.global_policy().name == "float32"


def test_a_quick_run_does_not_measure_and_says_so(machine, monkeypatch, capsys):
    machine(None, BF16_ONLY, "tensorflow")
    calls = []
    _fake_measure(monkeypatch, 1.6, calls)
    monkeypatch.setenv("CNN_COURSE_QUICK", "1")
    assert speed.precision_policy(model=lambda: None, data=(np.zeros((2, 3)), None)) == "float32"
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("Precision: float32 (quick run, not measured: ") and "without AMX" in line
    assert calls == [] and not speed.cache_path().exists()


@pytest.mark.parametrize("damage", ["not json", "a list", "an entry without its fields", "an unknown policy"])
def test_a_damaged_cache_is_measured_again_and_rewritten(machine, monkeypatch, capsys, damage):
    machine(None, BF16_ONLY, "jax")
    calls = []
    _fake_measure(monkeypatch, 1.6, calls)
    data = (np.zeros((2, 3)), None)
    assert speed.precision_policy(model=lambda: None, data=data) == "mixed_bfloat16"
    path = speed.cache_path()
    ((key, entry),) = json.loads(path.read_text()).items()
    path.write_bytes(
        {
            "not json": b"\xff{\x00 half a file",
            "a list": b"[1, 2, 3]",
            "an entry without its fields": json.dumps({key: {"policy": "float32"}}).encode(),
            "an unknown policy": json.dumps({key: dict(entry, policy="int4")}).encode(),
        }[damage]
    )
    capsys.readouterr()
    assert speed.precision_policy(model=lambda: None, data=data) == "mixed_bfloat16"
    assert calls == ["mixed_bfloat16"] * 2
    (line,) = capsys.readouterr().out.splitlines()
    assert line == "Precision: mixed_bfloat16 (measured 1.60x faster than float32 on this CPU with jax)"
    assert json.loads(path.read_text())[key]["policy"] == "mixed_bfloat16"


@pytest.mark.parametrize("cached", [False, True])
def test_choosing_after_the_seed_leaves_the_lessons_random_numbers_alone(machine, monkeypatch, cached):
    """A lesson seeds, then chooses its precision (building models), then builds its model:
    the same starting weights as without the choice, measured or cached."""
    keras = pytest.importorskip("keras")
    machine(None, BF16_ONLY, "jax")
    _fake_measure(monkeypatch, 1.6, [], build=True)

    def build():
        return keras.Sequential([keras.Input((4,)), keras.layers.Dropout(0.2), keras.layers.Dense(3)])

    data = (np.zeros((2, 4), dtype="float32"), np.zeros((2, 3), dtype="float32"))
    if cached:
        speed.precision_policy(model=build, data=data, verbose=False)
    keras.utils.set_random_seed(7)
    expected = [w.copy() for w in build().get_weights()]
    keras.utils.set_random_seed(7)
    speed.precision_policy(model=build, data=data, verbose=False)
    assert all(np.array_equal(a, b) for a, b in zip(build().get_weights(), expected, strict=True))


def test_measuring_leaves_a_layer_shared_by_the_builder_unchanged():
    """Lesson 4's builder reuses its `augment` model: timing must not advance its random state
    (nor train a shared layer's weights), or a measured run would train differently from a cached one."""
    keras = pytest.importorskip("keras")
    augment = keras.Sequential([keras.layers.RandomFlip("horizontal")], name="augment")
    shared = keras.layers.Dense(4, activation="relu")

    def build():
        return keras.Sequential(
            [
                keras.Input((2, 2, 1)),
                augment,
                keras.layers.Flatten(),
                shared,
                keras.layers.Dense(2, activation="softmax", dtype="float32"),
            ]
        )

    build()  # builds the shared Dense layer
    before = [keras.ops.convert_to_numpy(v) for v in augment.variables + shared.variables]
    assert before, "the augmentation keeps a random state"
    x = np.random.default_rng(0).random((8, 2, 2, 1), dtype="float32")
    speed.measure_precision(build, (x, np.eye(2)[np.arange(8) % 2]), rounds=2, budget_s=0)
    after = [keras.ops.convert_to_numpy(v) for v in augment.variables + shared.variables]
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))
