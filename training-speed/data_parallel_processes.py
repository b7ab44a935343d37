r"""Data parallelism past one machine: the data-parallel lesson's model trained by N processes.

`data_parallel.ipynb` trains one model on every device of one machine. Here
N processes, on one machine or on several, train one model together with
Keras's own distribution API: `keras.distribution.initialize` joins the
processes, and `keras.distribution.DataParallel` over the devices of all of
them keeps one replica of the model per device. Each process feeds only its
own slice of every global batch; the gradients are averaged over all
replicas, so every process ends with the same weights.

On two machines (process 0's address is the coordinator's), with the same
code and data on both:

    machine A:  KERAS_BACKEND=jax python data_parallel_processes.py \
                    --coordinator A_ADDRESS:1234 --processes 2 --process-id 0
    machine B:  KERAS_BACKEND=jax python data_parallel_processes.py \
                    --coordinator A_ADDRESS:1234 --processes 2 --process-id 1

On one machine, to see it work: `KERAS_BACKEND=jax python data_parallel_processes.py --launch 2`
starts both processes on 127.0.0.1 and prints what each says.

JAX only: `keras.distribution.initialize` supports only the JAX backend
(TensorFlow's `MultiWorkerMirroredStrategy` failed under Keras 3.15 here; see README.md).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import socket
import subprocess
import sys
import time


def positive_int(text):
    """argparse type: a whole number above 0. Raises ArgumentTypeError otherwise."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: must be a whole number above 0")
    return value


def build_parser():
    """Return the script's argument parser."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Run with KERAS_BACKEND=jax. See the module's docstring for two machines.",
    )
    parser.add_argument("--coordinator", metavar="HOST:PORT", help="process 0's address, the same for every process")
    parser.add_argument("--processes", type=positive_int, help="how many processes train together")
    parser.add_argument("--process-id", type=int, help="this process's number, 0 to processes - 1")
    parser.add_argument(
        "--launch",
        type=positive_int,
        metavar="N",
        help="start N processes on 127.0.0.1 (one machine) and wait for them",
    )
    parser.add_argument("--epochs", type=positive_int, default=2, help="passes over the training images (default 2)")
    parser.add_argument(
        "--batch-size",
        type=positive_int,
        default=128,
        help="images per device per step (default 128); the global batch is this x devices",
    )
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=0.05,
        help="SGD's step for each 128 images of the global batch (default 0.05)",
    )
    parser.add_argument(
        "--n-train", type=positive_int, default=10000, help="how many CIFAR-10 training images (default 10000)"
    )
    return parser


def check_arguments(args, parser):
    """Exit through parser.error (status 2, one line) for a combination that cannot run."""
    if args.launch is not None:
        if args.coordinator or args.processes or args.process_id is not None:
            parser.error(
                "--launch starts its own processes: give it without --coordinator, --processes or --process-id"
            )
        return
    if not (args.coordinator and args.processes and args.process_id is not None):
        parser.error("give --coordinator, --processes and --process-id (or --launch N on one machine)")
    if not 0 <= args.process_id < args.processes:
        parser.error(f"--process-id must be from 0 to {args.processes - 1}, not {args.process_id}")
    host, _, port = args.coordinator.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        parser.error(f"--coordinator {args.coordinator!r}: expected HOST:PORT, for example 10.0.0.1:1234")


def build_model():
    """The data-parallel lesson's small residual CNN (data_parallel.ipynb's build_model)."""
    import keras
    from keras import layers

    def conv_bn(x, filters, pool=False):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        if pool:
            x = layers.MaxPooling2D()(x)
        x = layers.BatchNormalization(momentum=0.9)(x)
        return layers.Activation("relu")(x)

    inputs = keras.Input((32, 32, 3), dtype="uint8")
    x = layers.Rescaling(1 / 64.0, offset=-2.0)(inputs)
    x = layers.Conv2D(24, 2)(x)
    x = layers.Activation("gelu")(x)
    for width in (64, 128, 256):
        x = conv_bn(x, width, pool=True)
        x = layers.Add()([x, conv_bn(x, width)])
    x = layers.GlobalMaxPooling2D()(x)
    x = layers.Dense(10, use_bias=False)(x)
    outputs = layers.Rescaling(0.125, dtype="float32")(x)
    return keras.Model(inputs, outputs, name="modern_cnn")


def weights_digest(model):
    """Return a short sha256 of the model's weights: equal on every process when they train in step."""
    digest = hashlib.sha256()
    for array in model.get_weights():
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def bypass_proxy(host):
    """Add `host` to no_proxy/NO_PROXY in this process's environment.

    The processes talk to the coordinator directly; through an HTTP proxy
    (http_proxy set for downloads) jax.distributed.initialize can hang.
    """
    for name in ("no_proxy", "NO_PROXY"):
        hosts = [h for h in os.environ.get(name, "").split(",") if h.strip()]
        if host not in hosts:
            os.environ[name] = ",".join(hosts + [host])


def train(args):
    """Join the other processes, train the lesson's model on this process's slices; return 0."""
    import keras

    if keras.backend.backend() != "jax":
        print(
            f"error: this script needs KERAS_BACKEND=jax (Keras runs on {keras.backend.backend()}): "
            "keras.distribution.initialize supports only JAX",
            file=sys.stderr,
        )
        return 2
    bypass_proxy(args.coordinator.rpartition(":")[0])
    keras.distribution.initialize(
        job_addresses=args.coordinator, num_processes=args.processes, process_id=args.process_id
    )
    import jax

    from cnn_course.data import load_lesson_data

    me, n = jax.process_index(), jax.process_count()
    devices = keras.distribution.list_devices()  # every process's devices
    local = len(jax.local_devices())
    distribution = keras.distribution.DataParallel(devices=devices)
    distribution.auto_shard_dataset = False  # each process passes its own slice of every global batch
    keras.distribution.set_distribution(distribution)
    keras.utils.set_random_seed(42)  # the same first weights in every process

    ((x_train, y_train), _), description = load_lesson_data("cifar10")
    y_onehot = keras.utils.to_categorical(y_train, 10)
    global_batch = args.batch_size * len(devices)
    local_batch = args.batch_size * local
    n_train = min(args.n_train, len(x_train)) // global_batch * global_batch
    if n_train == 0:
        print(
            f"error: {min(args.n_train, len(x_train))} training images make no global batch of {global_batch}",
            file=sys.stderr,
        )
        return 2
    # Process p takes images p, p + n, p + 2n, ...: its slice of each global batch.
    x_mine, y_mine = x_train[:n_train][me::n], y_onehot[:n_train][me::n]
    print(f"Process {me} of {n}: {local} local device(s) of {len(devices)} ({', '.join(devices)})")
    print(
        f"Process {me}: global batch {global_batch} = {n} processes x {local_batch} images; "
        f"this process trains on {len(x_mine)} of {n_train} images",
        flush=True,
    )

    model = build_model()
    learning_rate = args.learning_rate * global_batch / 128
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate, momentum=0.9, nesterov=True),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=0.2),
        metrics=["accuracy"],
    )
    history = model.fit(x_mine, y_mine, epochs=args.epochs, batch_size=local_batch, shuffle=False, verbose=2)
    losses = ", ".join(f"{loss:.4f}" for loss in history.history["loss"])
    print(f"Process {me}: loss per epoch {losses}")
    print(f"Process {me}: weights {weights_digest(model)} after {len(history.epoch)} epoch(s)", flush=True)
    return 0


def free_port():
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch(args, count):
    """Start `count` processes of this script on 127.0.0.1, relay their output; return the exit status.

    A process that fails stops the others (the rest would wait for it);
    Ctrl-C stops them all. No process outlives this one's return.
    """
    coordinator = f"127.0.0.1:{free_port()}"
    passed = [
        "--epochs",
        str(args.epochs),
        "--batch-size",
        str(args.batch_size),
        "--learning-rate",
        str(args.learning_rate),
        "--n-train",
        str(args.n_train),
    ]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                os.path.abspath(__file__),
                "--coordinator",
                coordinator,
                "--processes",
                str(count),
                "--process-id",
                str(i),
                *passed,
            ],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        for i in range(count)
    ]
    try:
        while any(p.poll() is None for p in procs):
            if any(p.returncode not in (None, 0) for p in procs):
                break
            time.sleep(0.2)
        codes = [p.poll() for p in procs]
        failed = [i for i, code in enumerate(codes) if code not in (None, 0)]
        if failed:
            print(
                f"error: process {failed[0]} exited with status {codes[failed[0]]}; the others were stopped",
                file=sys.stderr,
            )
            return 1
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def main(argv=None):
    """Run the command line; return the exit status (0, 1 a process failed, 2 usage, 130 Ctrl-C)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    check_arguments(args, parser)
    if args.launch is not None:
        return launch(args, args.launch)
    try:
        return train(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
