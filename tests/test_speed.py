"""precision_policy picks 16-bit maths only where the hardware has it."""

import pytest

from cnn_course import speed


def test_cpu_bf16_flags_are_read_from_cpuinfo(tmp_path):
    with_bf16 = tmp_path / "cpuinfo-bf16"
    with_bf16.write_text("flags\t\t: fpu sse2 avx512f avx512_bf16\n")
    without = tmp_path / "cpuinfo-plain"
    without.write_text("flags\t\t: fpu sse2 avx2\n")
    assert speed.cpu_has_bf16(with_bf16)
    assert not speed.cpu_has_bf16(without)
    assert not speed.cpu_has_bf16(tmp_path / "missing")


@pytest.mark.parametrize("gpu, bf16, expected", [
    ("NVIDIA H100", False, "mixed_float16"),
    (None, True, "mixed_bfloat16"),
    (None, False, "float32"),
])
def test_auto_policy_follows_the_hardware(monkeypatch, gpu, bf16, expected):
    monkeypatch.setattr(speed, "gpu_name", lambda: gpu)
    monkeypatch.setattr(speed, "cpu_has_bf16", lambda: bf16)
    assert speed.precision_policy("auto") == expected


def test_explicit_policy_is_kept_and_unknown_refused():
    assert speed.precision_policy("float32") == "float32"
    with pytest.raises(ValueError, match="PRECISION must be one of"):
        speed.precision_policy("half")
