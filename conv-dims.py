#!/usr/bin/env python3
"""What shape comes out of a Conv2D layer, how many parameters it has, and why.

    python conv-dims.py                 the lesson's layer: 16 filters, 2x2, stride 2
    python conv-dims.py --kernel-size 3x5 --padding same --input-shape 28,28,1
    python conv-dims.py --no-keras      the formulas only, without TensorFlow
    python conv-dims.py --input-shape 32,32,3 --stack SPEC    a whole CNN, layer by layer

Keras builds the layer and prints its summary; then the formulas
(cnn_course/shapes.py) work out the same numbers, and the two are compared
(cnn_course/keras_check.py). A layer too big to build in this machine's memory
is refused before Keras starts; --no-keras still works it out.
"""

import argparse
import sys

from cnn_course import drills, keras_check, shapes

PROG = "conv-dims.py"
# The lesson's layer: Conv2D(filters=16, kernel_size=2, strides=2, padding='valid', activation='relu')
DEFAULTS = {"filters": "16", "kernel_size": "2", "strides": "2", "padding": "valid", "activation": "relu"}
INPUT_SHAPE = "200,200,1"  # the lesson's input, unless --input-shape is given


# The options that take a value: "--kernel-size -1x3" is read as "--kernel-size=-1x3",
# so a negative size gets this script's message rather than argparse's.
VALUE_FLAGS = (
    "--filters",
    "--kernel-size",
    "--strides",
    "--padding",
    "--activation",
    "--input-shape",
    "--stack",
    "--quiz",
    "--seed",
)


def parse_args(argv):
    """Return the command line's options; every value is still text."""
    parser = argparse.ArgumentParser(
        prog=PROG, description=__doc__, epilog=shapes.STACK_HELP, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--filters", metavar="K", help="number of filters (default 16)")
    parser.add_argument("--kernel-size", metavar="F", help="N or HxW (default 2)")
    parser.add_argument("--strides", metavar="S", help="N or HxW (default 2)")
    parser.add_argument("--padding", metavar="valid|same", help="(default valid)")
    parser.add_argument(
        "--activation", metavar="NAME", help="relu, sigmoid, ... or none (default relu): one that keeps the shape"
    )
    parser.add_argument("--input-shape", metavar="H,W,D", help="(default 200,200,1)")
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
    if given:
        raise ValueError("--quiz draws its own layers; leave out --" + given[0].replace("_", "-"))
    return drills.quiz_command(args.quiz, args.seed, "conv", use_keras=not args.no_keras)


def main(argv=None):
    args = parse_args(argv)
    try:
        if args.quiz is not None or args.seed is not None:
            return quiz(args)
        input_shape = shapes.parse_input_shape(INPUT_SHAPE if args.input_shape is None else args.input_shape)
        if args.stack is not None:
            given = [name for name in DEFAULTS if getattr(args, name) is not None]
            if given:
                raise ValueError("--stack describes every layer itself; leave out --" + given[0].replace("_", "-"))
            return keras_check.show_stack(args.stack, input_shape, args.no_keras)
        text = {
            name: default if getattr(args, name) is None else getattr(args, name) for name, default in DEFAULTS.items()
        }
        filters = shapes.parse_positive_int(text["filters"], "--filters")
        kernel_size = shapes.parse_size(text["kernel_size"], "--kernel-size")
        strides = shapes.parse_size(text["strides"], "--strides")
        padding = shapes.parse_padding(text["padding"])
        activation = shapes.parse_activation(text["activation"])
        shape = shapes.conv_output_shape(input_shape, kernel_size, strides, padding, filters)
        params = shapes.conv_params(kernel_size, input_shape[2], filters)
        working = shapes.conv_working(input_shape, kernel_size, strides, padding, filters)
    except ValueError as err:
        return fail(err)

    if args.no_keras:
        print("\n".join(working))
        return 0
    try:
        keras_check.check_exact(input_shape, kernel_size, strides, filters, shape, params)
        keras_check.check_fits(params)  # before TensorFlow starts
        keras = keras_check.import_keras()
        keras_check.check_activation(keras, activation, f"--activation {text['activation']}")
        model = keras_check.build(
            lambda: keras.Sequential(
                [
                    keras.Input(shape=input_shape),
                    keras.layers.Conv2D(
                        filters=filters,
                        kernel_size=kernel_size,
                        strides=strides,
                        padding=padding,
                        activation=activation,
                    ),
                ]
            )
        )
    except ValueError as err:
        return fail(err)
    model.summary()
    print("The working:")
    print("\n".join("  " + line for line in working))
    rows = [{"layer": "Conv2D", "shape": shape, "params": params}]
    return keras_check.report_agreement(
        keras_check.keras_mismatches(rows, model), f"output {model.output_shape}, {model.count_params():,} parameters"
    )


if __name__ == "__main__":
    sys.exit(main())
