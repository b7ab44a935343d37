#!/usr/bin/env python3
"""What shape comes out of a pooling layer, and why (it has no parameters).

    python pool-dims.py                 the lesson's layer: MaxPooling2D, 2x2, stride 2
    python pool-dims.py --pool-size 3 --strides 1 --padding same
    python pool-dims.py --type global-average --input-shape 7,7,512
    python pool-dims.py --no-keras      the formulas only, without TensorFlow
    python pool-dims.py --input-shape 32,32,3 --stack SPEC    a whole CNN, layer by layer

Keras builds the layer and prints its summary; then the formulas
(cnn_course/shapes.py) work out the same numbers, and the two are compared
(cnn_course/keras_check.py).
"""

import argparse
import sys

from cnn_course import drills, keras_check, shapes

PROG = "pool-dims.py"
# The lesson's layer: MaxPooling2D(pool_size=2, strides=2) on a 100 x 100 x 15 input.
DEFAULTS = {"pool_size": "2", "strides": None, "padding": "valid"}  # strides: the pool size
TYPES = ("max", "average", "global-average")
INPUT_SHAPE = "100,100,15"  # the lesson's input, unless --input-shape is given


# The options that take a value: "--kernel-size -1x3" is read as "--kernel-size=-1x3",
# so a negative size gets this script's message rather than argparse's.
VALUE_FLAGS = ("--pool-size", "--strides", "--padding", "--type", "--input-shape", "--stack", "--quiz", "--seed")


def parse_args(argv):
    """Return the command line's options; every value is still text."""
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, epilog=shapes.STACK_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pool-size", metavar="F", help="N or HxW (default 2)")
    parser.add_argument("--strides", metavar="S", help="N or HxW (default: the pool size, as in Keras)")
    parser.add_argument("--padding", metavar="valid|same", help="(default valid)")
    parser.add_argument("--type", metavar="|".join(TYPES), default="max", help="(default max)")
    parser.add_argument("--input-shape", metavar="H,W,D", help="(default 100,100,15)")
    parser.add_argument("--stack", metavar="SPEC", help="trace a stack of layers instead of one (SPEC below)")
    parser.add_argument(
        "--quiz",
        metavar="N",
        nargs="?",
        const="5",
        help="ask N random layers (default 5): you predict the output shape and parameters, Keras checks; Ctrl-D stops",
    )
    parser.add_argument("--seed", metavar="S", help="with --quiz: the same S asks the same layers")
    parser.add_argument(
        "--no-keras", action="store_true", help="print the formulas' answer only, without importing TensorFlow"
    )
    return parser.parse_args(shapes.attach_dash_values(sys.argv[1:] if argv is None else argv, VALUE_FLAGS))


def fail(message):
    """Print a one-line error for the student and return exit status 2."""
    print(f"{PROG}: error: " + " ".join(str(message).splitlines()), file=sys.stderr)
    return 2


def quiz(args):
    """Run --quiz (drills.quiz_command) and return its exit status: 0, or 130 after Ctrl-C.

    Raises ValueError for --seed without --quiz, a layer option beside it, or a bad N or S.
    """
    if args.quiz is None:
        raise ValueError("--seed goes with --quiz: it repeats a quiz's layers")
    given = [name for name in (*DEFAULTS, "input_shape", "stack") if getattr(args, name) is not None]
    given += ["type"] if args.type != "max" else []
    if given:
        raise ValueError("--quiz draws its own layers; leave out --" + given[0].replace("_", "-"))
    return drills.quiz_command(args.quiz, args.seed, "pool", use_keras=not args.no_keras)


def main(argv=None):
    args = parse_args(argv)
    try:
        if args.quiz is not None or args.seed is not None:
            return quiz(args)
        input_shape = shapes.parse_input_shape(INPUT_SHAPE if args.input_shape is None else args.input_shape)
        given = [name for name in DEFAULTS if getattr(args, name) is not None]
        if args.stack is not None:
            if given or args.type != "max":
                raise ValueError(
                    "--stack describes every layer itself; leave out --" + (given + ["type"])[0].replace("_", "-")
                )
            return keras_check.show_stack(args.stack, input_shape, args.no_keras)
        kind = args.type.strip().lower()
        if kind not in TYPES:
            raise ValueError(f"--type {args.type}: must be max, average or global-average")
        if kind == "global-average":
            if given:
                raise ValueError(
                    f"--{given[0].replace('_', '-')} does not apply to --type "
                    "global-average: it averages each whole feature map"
                )
            shape = (input_shape[2],)
            working = shapes.global_pool_working(input_shape)
        else:
            text = {
                name: default if getattr(args, name) is None else getattr(args, name)
                for name, default in DEFAULTS.items()
            }
            pool_size = shapes.parse_size(text["pool_size"], "--pool-size")
            strides = pool_size if text["strides"] is None else shapes.parse_size(text["strides"], "--strides")
            padding = shapes.parse_padding(text["padding"])
            shape = shapes.pool_output_shape(input_shape, pool_size, strides, padding)
            working = shapes.pool_working(input_shape, pool_size, strides, padding)
    except ValueError as err:
        return fail(err)

    if args.no_keras:
        print("\n".join(working))
        return 0
    try:  # before TensorFlow starts
        keras_check.check_exact(input_shape, shape, *(() if kind == "global-average" else (pool_size, strides)))
        keras = keras_check.import_keras()  # a missing backend: one line saying what to install
    except ValueError as err:
        return fail(err)
    if kind == "global-average":
        layer = keras.layers.GlobalAveragePooling2D()
    elif kind == "average":
        layer = keras.layers.AveragePooling2D(pool_size=pool_size, strides=strides, padding=padding)
    else:
        layer = keras.layers.MaxPooling2D(pool_size=pool_size, strides=strides, padding=padding)
    model = keras.Sequential([keras.Input(shape=input_shape), layer])
    model.summary()
    print("The working:")
    print("\n".join("  " + line for line in working))
    rows = [{"layer": type(layer).__name__, "shape": shape, "params": 0}]
    return keras_check.report_agreement(
        keras_check.keras_mismatches(rows, model), f"output {model.output_shape}, {model.count_params():,} parameters"
    )


if __name__ == "__main__":
    sys.exit(main())
