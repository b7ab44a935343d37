"""Several devices on a machine that has one, for the data-parallel lesson.

Without a GPU `split_cpu` makes the processor appear as several CPU devices, so that a
data-parallel strategy trains one replica on each (sharing the same cores: they show how data
parallelism works, not how fast it is). Call it after ``import keras`` and before anything
computes. `alternate_throughput` times training runs in turns (`cnn_course.timing.alternate`).
"""

import statistics
import time

from cnn_course.timing import alternate

BACKENDS = ("tensorflow", "jax")
MAX_CPU_DEVICES = 64  # more only multiplies the overhead on any laptop


class TooLate(RuntimeError):
    """The backend has already chosen its devices, so they can no longer be changed."""


def check_count(count):
    """Return `count` when it is a whole number from 1 to MAX_CPU_DEVICES; else raise ValueError."""
    if isinstance(count, bool) or not isinstance(count, int):
        raise ValueError(f"the number of CPU devices must be a whole number, not {count!r}")
    if not 1 <= count <= MAX_CPU_DEVICES:
        raise ValueError(f"the number of CPU devices must be from 1 to {MAX_CPU_DEVICES}, not {count}")
    return count


def split_cpu(count, backend=None):
    """Make the backend ("tensorflow" or "jax", default Keras's) see the CPU as `count` devices (again
    with the same count is a no-op). Returns `count`, or 0 when TensorFlow found a GPU and left the
    CPU alone. Raises ValueError (bad count or backend) and TooLate once the backend has started."""
    check_count(count)
    if backend is None:
        import keras

        backend = keras.backend.backend()
    if backend not in BACKENDS:
        raise ValueError(f"virtual CPU devices are for the Keras backends {' and '.join(BACKENDS)}, not {backend!r}")
    have = count
    try:
        if backend == "jax":
            import jax

            try:
                jax.config.update("jax_num_cpu_devices", count)
            except RuntimeError:  # "... should be updated before backends are initialized"
                have = len(jax.devices("cpu"))
                if have != count:
                    raise
        else:
            import tensorflow as tf

            if tf.config.list_physical_devices("GPU"):
                return 0
            cpu = tf.config.list_physical_devices("CPU")[0]
            have = len(tf.config.get_logical_device_configuration(cpu) or [None])
            if have != count:  # else already so
                tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:
        raise TooLate(
            f"the backend has already started with {have} CPU device(s), so it cannot have {count} now: "
            "call split_cpu before anything computes (restart the kernel and run the cells in order)"
        ) from None
    return count


def alternate_throughput(runs, rounds=3, warmup=2, per_round=False):
    """Time training runs ({name: function training a while and returning its image count}) in turns
    after `warmup` untimed calls each. Returns {name: median images/s}, or with `per_round` each
    round's. Raises ValueError for fewer than two runs or rounds < 1, and what a run raises."""
    if len(runs) < 2 or rounds < 1:  # before the warm-up spends its time
        raise ValueError("alternate_throughput needs at least two runs and one round")
    for train in runs.values():
        for _ in range(warmup):
            train()

    def timed(train):
        started = time.perf_counter()
        return train() / (time.perf_counter() - started)

    rates = alternate({name: (lambda t=train: timed(t)) for name, train in runs.items()}, rounds)
    return rates if per_round else {name: statistics.median(values) for name, values in rates.items()}
