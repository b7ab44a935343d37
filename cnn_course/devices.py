"""Several devices on a machine that has one, for the data-parallel lesson.

On a machine without a GPU `split_cpu` makes the processor appear as several
CPU devices, so that `keras.distribution.list_devices()` lists them and a
data-parallel strategy trains one replica on each (they share the same cores:
they show how data parallelism works, not how fast it is). The backend fixes
its devices when it first computes, so call it after ``import keras`` and
before anything computes; it keeps no state of its own.
`alternate_throughput` times training runs in turns (`cnn_course.timing.alternate`).
"""

BACKENDS = ("tensorflow", "jax")

# More virtual devices than this only multiplies the overhead on any laptop.
MAX_CPU_DEVICES = 64


class TooLate(RuntimeError):
    """The backend has already chosen its devices, so they can no longer be changed."""


def check_count(count):
    """Return `count` when it is a whole number of devices from 1 to MAX_CPU_DEVICES.

    Raises ValueError, with a one-line message, otherwise (also for bool and float).
    """
    if isinstance(count, bool) or not isinstance(count, int):
        raise ValueError(f"the number of CPU devices must be a whole number, not {count!r}")
    if not 1 <= count <= MAX_CPU_DEVICES:
        raise ValueError(f"the number of CPU devices must be from 1 to {MAX_CPU_DEVICES}, not {count}")
    return count


def split_cpu(count, backend=None):
    """Make Keras's backend see the CPU as `count` devices, when no GPU is present.

    `backend` is "tensorflow" or "jax" (default: the one Keras runs on).
    TensorFlow: when a GPU is present nothing changes (the GPUs are the
    devices to train on); otherwise the CPU becomes `count` logical devices
    (`tf.config.set_logical_device_configuration`). JAX: the CPU platform gets
    `count` devices (`jax_num_cpu_devices`); with a GPU present JAX trains on
    the GPUs and the CPU devices go unused. Calling it again with the same
    count, even after the backend started, changes nothing and succeeds.

    Returns the number of CPU devices the backend will have (`count`), or 0
    when TensorFlow found a GPU and left the CPU alone. Raises ValueError for
    a bad count or a backend other than TensorFlow or JAX, and TooLate when
    the backend has already started with a different number of CPU devices
    (call it before anything computes, or restart the kernel).
    """
    check_count(count)
    if backend is None:
        import keras

        backend = keras.backend.backend()
    if backend == "tensorflow":
        return _split_tensorflow_cpu(count)
    if backend == "jax":
        return _split_jax_cpu(count)
    raise ValueError(f"virtual CPU devices are for the Keras backends {' and '.join(BACKENDS)}, not {backend!r}")


def _too_late(count, have):
    return TooLate(
        f"the backend has already started with {have} CPU device(s), so it cannot have {count} now: "
        "call split_cpu before anything computes (restart the kernel and run the cells in order)"
    )


def _split_tensorflow_cpu(count):
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return 0
    cpu = tf.config.list_physical_devices("CPU")[0]
    wanted = [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
    have = len(tf.config.get_logical_device_configuration(cpu) or [None])
    if have == count:
        return count  # already so: configured before, or one device and none asked for
    try:
        tf.config.set_logical_device_configuration(cpu, wanted)
    except RuntimeError:  # "Virtual devices cannot be modified after being initialized"
        raise _too_late(count, have) from None
    return count


def _split_jax_cpu(count):
    import jax

    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError:  # "... should be updated before backends are initialized"
        have = len(jax.devices("cpu"))
        if have != count:
            raise _too_late(count, have) from None
    return count


def alternate_throughput(runs, rounds=3, warmup=2, per_round=False):
    """Measure how many images per second each of several training runs gets, taking turns.

    `runs` maps a name to a function that trains for a while and returns how
    many images it trained on. Each function is first called `warmup` times
    untimed (compiling: a JAX model's second `fit` compiles again), then the functions take turns for `rounds` rounds,
    in the given order on even rounds and reversed on odd ones (ABBA), so
    that all meet the same machine load.

    Returns {name: median images per second over the rounds}, or with
    `per_round` {name: [images per second of each round, in round order]}
    (for `cnn_course.timing.paired_ratio`, which takes the speed-up as the
    median of the per-round ratios). Raises ValueError when `runs` has fewer
    than two runs or `rounds` < 1 (`cnn_course.timing.alternate`), and
    whatever a run raises.
    """
    import statistics
    import time

    from cnn_course.timing import alternate

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
