"""What makes training fast on the machine at hand.

The lessons call ``precision_policy()`` so that one parameter, ``PRECISION``,
picks 16-bit mixed precision where the hardware has fast 16-bit arithmetic
and plain float32 elsewhere. The training benchmark uses the same functions.
"""

from pathlib import Path

POLICIES = ("auto", "float32", "mixed_bfloat16", "mixed_float16")


def cpu_has_bf16(cpuinfo="/proc/cpuinfo"):
    """Return True when the CPU lists bfloat16 instructions (avx512_bf16 or amx_bf16).

    Reads ``cpuinfo`` (Linux); returns False where it cannot be read (macOS,
    Windows). Raises nothing.
    """
    try:
        flags = Path(cpuinfo).read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def gpu_name():
    """Return the name of the first GPU that Keras's backend sees, or None.

    Imports Keras and its backend (TensorFlow, JAX or PyTorch). Raises nothing
    of its own.
    """
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        gpus = [d for d in jax.devices() if d.platform == "gpu"]
        return gpus[0].device_kind if gpus else None
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            return None
        return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
    if backend == "torch":
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return None


def precision_policy(choice="auto"):
    """Return the Keras dtype policy name for ``choice``.

    "auto" gives "mixed_float16" on a GPU, "mixed_bfloat16" on a CPU with
    bfloat16 instructions, else "float32"; any other allowed name is returned
    as it is. Raises ValueError for a name not in POLICIES.
    """
    if choice not in POLICIES:
        raise ValueError(f"PRECISION must be one of {', '.join(map(repr, POLICIES))}, not {choice!r}")
    if choice != "auto":
        return choice
    if gpu_name():
        return "mixed_float16"
    return "mixed_bfloat16" if cpu_has_bf16() else "float32"
