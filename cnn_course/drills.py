"""Shape drills that check themselves: predict a layer's output, then see.

``shape_quiz(5)`` in a notebook and ``conv-dims.py --quiz`` / ``pool-dims.py --quiz`` draw random
layers, ask for the output shape and parameter count with ``input()``, check the answer against
Keras (or the formulas alone) and show the working after a wrong one; Ctrl-D or Ctrl-C ends with the
score. ``check_answer(name, number)`` checks a number an exercise asks for, with a hint, never the answer.
"""

import numbers
import random
import re

from cnn_course import keras_check, shapes

KINDS = ("conv", "pool")
ANSWER_HINT = (
    "type four whole numbers, height width depth parameters, "
    "like: 30 30 8 224 (no thousands separators); Ctrl-D ends the quiz"
)


def draw_layer(kind, rng):
    """Return (input_shape, layer as shapes.parse_stack makes it) for a random `kind` layer ('conv' or
    'pool') that fits. Raises ValueError for another kind."""
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r}: must be one of {', '.join(KINDS)}")
    side = rng.randint(5, 64)
    input_shape = side, side if rng.random() < 0.75 else rng.randint(5, 64), rng.choice((1, 3, 8, 16, 32, 64))
    padding = rng.choice(shapes.PADDINGS)
    if kind == "conv":
        window, strides = rng.choice((1, 2, 3, 3, 5, 7)), rng.choice((1, 1, 2, 2, 3))
        layer = {"kind": "conv", "filters": rng.choice((4, 8, 16, 32, 64, 128)), "activation": None}
    else:
        window, strides = rng.choice((2, 2, 3)), rng.choice((None, None, 1, 2, 3))
        layer = {"kind": rng.choice(("pool", "pool", "avgpool"))}
    window = min(window, *input_shape[:2])
    layer.update(window=(window, window), padding=padding, strides=(strides or window,) * 2)
    if kind == "conv":  # the Keras call the layer stands for, as the question shows it
        call = f"Conv2D(filters={layer['filters']}, kernel_size={window}, strides={strides}"
    else:
        call = f"{'MaxPooling2D' if layer['kind'] == 'pool' else 'AveragePooling2D'}(pool_size={window}"
        call += "" if strides is None else f", strides={strides}"
    layer["text"] = f"{call}, padding='{padding}')"
    return input_shape, layer


def right_answer(input_shape, layer, keras=None):
    """Return (output shape, parameters): Keras's from building it with `keras` (the module), else the
    formulas'. Raises ValueError if the two disagree (a bug to report)."""
    row = shapes.trace_stack(input_shape, [layer])[0]
    if keras is None:
        return tuple(row["shape"]), row["params"]
    model = keras_check.keras_stack(input_shape, [layer])
    problems = keras_check.keras_mismatches([row], model)
    if problems:
        raise ValueError(f"the formulas and Keras disagree, please report this: {problems[0]}")
    return tuple(model.layers[0].output.shape)[1:], model.layers[0].count_params()


def parse_answer(text):
    """Return (shape, parameters) from "16 16 8 224", "(None, 16, 16, 8), 224" or "16x16x8 224".
    Raises ValueError, a one-line hint, unless four whole numbers."""
    tokens = [t for t in re.split(r"[\s,()\[\]]+|(?<=\d)[x×](?=\d)", text.strip().lower()) if t]
    tokens = tokens[1:] if tokens[:1] == ["none"] else tokens
    if not tokens:
        raise ValueError(f"no answer: {ANSWER_HINT}")
    bad = [t for t in tokens if not t.isdigit()]
    if bad:
        raise ValueError(f"{bad[0]!r} is not a whole number: {ANSWER_HINT}")
    if len(tokens) != 4:
        raise ValueError(f"{len(tokens)} numbers, not 4: {ANSWER_HINT}")
    return tuple(map(int, tokens[:3])), int(tokens[3])


def _ask_until_parsed(ask, prompt, say):
    """Return the first answer that parse_answer reads, with a hint after each other one."""
    while True:
        try:
            line = ask(prompt)
        except NotImplementedError:  # IPython's StdinNotImplementedError: a notebook run headless
            say("\nThis notebook cannot read input() here: run the quiz in Jupyter, Colab or a terminal.")
            raise EOFError from None
        try:
            return parse_answer(line)
        except ValueError as err:
            say(f"   {err}")


def run_quiz(n=5, seed=None, kinds=KINDS, use_keras=True, ask=None, say=print):
    """Ask `n` random layers of `kinds` (`seed` repeats a quiz; `ask`: input(); `say`: print; answers
    from Keras with `use_keras`) and print the score. Returns (right, asked, 'done', 'eof' or
    'interrupted'); raises ValueError for a bad n or kind."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n {n!r}: must be a positive integer")
    for kind in kinds:
        if kind not in KINDS:
            raise ValueError(f"kind {kind!r}: must be one of {', '.join(KINDS)}")
    seed = random.SystemRandom().randrange(10**6) if seed is None else seed
    rng, ask, right, asked, ended = random.Random(seed), input if ask is None else ask, 0, 0, "done"
    say(f"Shape quiz: {n} layer(s), seed {seed} (the same seed asks the same layers).")
    say("For each, type the output shape without the batch dimension and the parameter count,")
    say("four whole numbers: height width depth parameters. Ctrl-D stops.")
    try:
        keras = keras_check.import_keras() if use_keras else None
        for number in range(1, n + 1):
            input_shape, layer = draw_layer(rng.choice(list(kinds)), rng)
            truth = right_answer(input_shape, layer, keras)
            say(
                f"\n{number}/{n}. {layer['text']} on an input of {' x '.join(map(str, input_shape))} "
                "(height x width x depth)"
            )
            answer = _ask_until_parsed(ask, "   output height width depth, parameters? ", say)
            asked += 1
            wrong = " and ".join(
                f"the {what}" for what, i in (("shape", 0), ("parameter count", 1)) if answer[i] != truth[i]
            )
            if not wrong:
                right += 1
                say(f"   Right: {shapes.shape_text(truth[0])}, {truth[1]:,} parameters.")
                continue
            say(
                f"   Not quite: {wrong} {'are' if ' and ' in wrong else 'is'} off. "
                f"You said {shapes.shape_text(answer[0])}, {answer[1]:,} parameters."
            )
            say("   The working:")
            sizes = input_shape, layer["window"], layer["strides"], layer["padding"]
            for line in (
                shapes.conv_working(*sizes, layer["filters"])
                if layer["kind"] == "conv"
                else shapes.pool_working(*sizes)
            ):
                say(f"     {line}")
    except EOFError:
        ended = "eof"
    except KeyboardInterrupt:
        ended = "interrupted"
    stopped = f" (stopped after {asked} of {n} questions)" if asked < n else ""
    say(f"\nScore: {right}/{asked} right{stopped}")
    return right, asked, ended


def quiz_command(count, seed, kind, use_keras=True):
    """Run the dims scripts' --quiz (`count`, `seed`: the options' text). Returns 0, or 130 after
    Ctrl-C; raises ValueError naming the option for a bad value."""
    n = shapes.parse_positive_int(count, "--quiz")
    try:
        seed = None if seed is None else int(seed.strip())
    except ValueError:
        raise ValueError(f"--seed {seed}: must be a whole number") from None
    return 130 if run_quiz(n, seed, (kind,), use_keras)[2] == "interrupted" else 0


def shape_quiz(n=5, seed=None, kind="both"):
    """Ask `n` random layers ('conv', 'pool' or 'both') in a notebook, checked with Keras, and print
    the score. Raises ValueError for a bad n or kind."""
    run_quiz(n, seed, KINDS if kind == "both" else (kind,))


def answers():
    """Return the numbers the exercises ask for, computed from the formulas: {name: (value, hint)}."""

    def cifar10_cnn(spec=shapes.CIFAR10_STACK):  # lesson 3's CNN, changed
        rows = shapes.trace_stack((32, 32, 3), shapes.parse_stack(spec))
        return {kind: [row for row in rows if row["layer"].startswith(kind)] for kind in ("conv", "flatten", "dense")}

    bigger = cifar10_cnn(shapes.CIFAR10_STACK.replace(":2:same", ":3:same"))
    no_pool = cifar10_cnn(shapes.CIFAR10_STACK.replace("pool:2,", "", 1))
    return {
        "conv1 params, kernel 3": (
            bigger["conv"][0]["params"],
            "each of the 16 filters has a 3x3 weight grid for every one of the 3 colour channels, and one bias",
        ),
        "flatten size, no first pool": (
            no_pool["flatten"][0]["shape"][0],
            "with padding='same' only the pooling "
            "layers shrink the maps; count how many are left, then multiply height x "
            "width x the last layer's 64 filters",
        ),
        "dense1 params, no first pool": (
            no_pool["dense"][0]["params"],
            "a Dense layer has one weight per input per "
            "unit (500 units, one input per number out of Flatten) and one bias per unit",
        ),
        "edge filter params": (
            shapes.conv_params(4, 1, 1) - 1,  # use_bias=False: the weights without the bias
            "one 4x4 filter on a grey image (1 channel), and the layer has use_bias=False",
        ),
        "conv3 map size": (
            cifar10_cnn()["conv"][2]["shape"][0],
            "follow the 32-pixel image through lesson 3's CNN: "
            "padding='same' keeps the size, each MaxPooling2D(2) halves it",
        ),
    }


def check_answer(name, answer):
    """Print whether `answer` is right for the exercise number `name` (answers()), with a hint when not,
    never the answer; an unknown name lists the known ones. Returns None."""
    known = answers()
    if name not in known:
        print(f"No answer is kept under {name!r}; the names are: " + ", ".join(map(repr, known)))
    elif isinstance(answer, bool) or not isinstance(answer, numbers.Integral):
        print(f"{name}: give a whole number, like check_answer({name!r}, 123). Hint: {known[name][1]}.")
    elif answer == known[name][0]:
        print(f"{name}: {answer:,} is right.")
    else:
        print(f"{name}: {answer:,} is not right. Hint: {known[name][1]}.")
