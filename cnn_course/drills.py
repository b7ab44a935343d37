"""Shape drills that check themselves: predict a layer's output, then see.

``shape_quiz(5)`` in a notebook, or ``python conv-dims.py --quiz 5`` and
``python pool-dims.py --quiz`` in a terminal, draw random Conv2D or pooling
layers, ask for the output shape and the parameter count, and check the
answer against Keras building the layer (or only against the formulas of
``cnn_course.shapes`` when Keras is not wanted). A wrong answer gets the
working with the numbers put in (``shapes.conv_working``/``pool_working``).
It reads answers with ``input()``, so it works in a terminal, Jupyter and
Colab; Ctrl-D or Ctrl-C ends it with the score so far.

``check_answer("conv1 params, kernel 3", 448)`` checks one number from a
lesson's exercises (ANSWERS below, computed from the formulas) and says
right or wrong with a hint, never the answer itself.
"""

import numbers
import random
import re

from cnn_course import keras_check, shapes

KINDS = ("conv", "pool")
ANSWER_HINT = ("type four whole numbers, height width depth parameters, "
               "like: 30 30 8 224 (no thousands separators); Ctrl-D ends the quiz")


# ---- drawing a question ---------------------------------------------------------

def _draw_input(rng):
    """Return a random (H, W, D) input: mostly square, 5 to 64 pixels a side."""
    side = rng.randint(5, 64)
    width = side if rng.random() < 0.75 else rng.randint(5, 64)
    return side, width, rng.choice((1, 3, 8, 16, 32, 64))


def draw_layer(kind, rng):
    """Return (input_shape, layer) for a random layer of `kind` ('conv' or 'pool').

    The layer is a dict as ``shapes.parse_stack`` makes it, drawn from sensible
    ranges and always fitting its input. Raises ValueError for another kind.
    """
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r}: must be one of {', '.join(KINDS)}")
    input_shape = _draw_input(rng)
    padding = rng.choice(shapes.PADDINGS)
    if kind == "conv":
        window = rng.choice((1, 2, 3, 3, 5, 7))
        strides = rng.choice((1, 1, 2, 2, 3))
        layer = {"kind": "conv", "filters": rng.choice((4, 8, 16, 32, 64, 128)), "activation": None}
    else:
        window = rng.choice((2, 2, 3))
        strides = rng.choice((None, None, 1, 2, 3))
        layer = {"kind": rng.choice(("pool", "pool", "avgpool"))}
    window = min(window, *input_shape[:2])
    layer.update(window=(window, window), padding=padding,
                 strides=(window, window) if strides is None else (strides, strides),
                 default_strides=strides is None)
    layer["text"] = layer_code(layer)
    return input_shape, layer


def layer_code(layer):
    """Return the Keras call a drawn layer stands for, as text:
    "Conv2D(filters=8, kernel_size=3, strides=2, padding='same')"."""
    size, stride = layer["window"][0], layer["strides"][0]
    if layer["kind"] == "conv":
        return (f"Conv2D(filters={layer['filters']}, kernel_size={size}, strides={stride}, "
                f"padding='{layer['padding']}')")
    name = "MaxPooling2D" if layer["kind"] == "pool" else "AveragePooling2D"
    strides = "" if layer.get("default_strides") else f", strides={stride}"
    return f"{name}(pool_size={size}{strides}, padding='{layer['padding']}')"


# ---- the right answer ---------------------------------------------------------------

def working(input_shape, layer):
    """Return the lines that work out the layer's output, numbers put in (cnn_course.shapes)."""
    if layer["kind"] == "conv":
        return shapes.conv_working(input_shape, layer["window"], layer["strides"], layer["padding"],
                                   layer["filters"])
    return shapes.pool_working(input_shape, layer["window"], layer["strides"], layer["padding"])


def right_answer(input_shape, layer, keras=None):
    """Return (output shape, parameters) of the layer on an (H, W, D) input.

    With `keras` (the module) the answer is Keras's, from building the layer;
    without it, the formulas'. Raises ValueError if Keras and the formulas
    disagree (which would be a bug to report).
    """
    row = shapes.trace_stack(input_shape, [layer])[0]
    if keras is None:
        return tuple(row["shape"]), row["params"]
    model = keras_check.keras_stack(input_shape, [layer])
    problems = keras_check.keras_mismatches([row], model)
    if problems:
        raise ValueError(f"the formulas and Keras disagree, please report this: {problems[0]}")
    built = model.layers[0]
    return tuple(built.output.shape)[1:], built.count_params()


# ---- reading an answer --------------------------------------------------------------

def parse_answer(text):
    """Return (shape, parameters) from a typed answer like "16 16 8 224".

    Spaces, commas, parentheses and an 'x' between digits separate the
    numbers, and a leading None (Keras's batch dimension) is ignored, so
    "(None, 16, 16, 8), 224" works too. Raises ValueError with a one-line hint
    unless it is four whole numbers.
    """
    tokens = [t for t in re.split(r"[\s,()\[\]]+|(?<=\d)[x×](?=\d)", text.strip().lower()) if t]
    if tokens[:1] == ["none"]:
        tokens = tokens[1:]
    if not tokens:
        raise ValueError(f"no answer: {ANSWER_HINT}")
    bad = [t for t in tokens if not t.isdigit()]
    if bad:
        raise ValueError(f"{bad[0]!r} is not a whole number: {ANSWER_HINT}")
    if len(tokens) != 4:
        raise ValueError(f"{len(tokens)} numbers, not 4: {ANSWER_HINT}")
    numbers = [int(t) for t in tokens]
    return tuple(numbers[:3]), numbers[3]


def _ask_until_parsed(ask, prompt, say):
    """Return the first answer `ask(prompt)` gives that parse_answer reads; print a
    hint with `say` after each one it cannot. EOFError and KeyboardInterrupt propagate."""
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


# ---- the quiz -----------------------------------------------------------------------

def score_line(right, asked, planned):
    """Return the quiz's last line: "Score: 4/5 right", and how far it got if stopped early."""
    line = f"Score: {right}/{asked} right"
    if asked < planned:
        line += f" (stopped after {asked} of {planned} questions)"
    return line


def _mark(answer, truth):
    """Return what is wrong with answer against truth, both (shape, params): '' when right."""
    wrong = [what for what, i in (("shape", 0), ("parameter count", 1)) if answer[i] != truth[i]]
    return " and ".join(f"the {what}" for what in wrong)


def run_quiz(n=5, seed=None, kinds=KINDS, use_keras=True, ask=None, say=print):
    """Ask `n` random layers of `kinds` and check each answer; print the score at the end.

    `seed` repeats a quiz (None draws one and says it). `ask(prompt)` returns
    a line (None: the builtin input(), looked up when called, so a notebook's
    or a test's own input() is used); `say(text)` prints. With `use_keras`
    the right answers come from Keras building each layer, else from the
    formulas.
    Ctrl-D (EOFError), Ctrl-C (KeyboardInterrupt) or a notebook with no
    keyboard (IPython's StdinNotImplementedError, run headless) end it early.
    Returns (right, asked, how it ended: 'done', 'eof' or 'interrupted').
    Raises ValueError for an n below 1 or an unknown kind.
    """
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
        raise ValueError(f"n {n!r}: must be a positive integer")
    for kind in kinds:
        if kind not in KINDS:
            raise ValueError(f"kind {kind!r}: must be one of {', '.join(KINDS)}")
    if seed is None:
        seed = random.SystemRandom().randrange(10**6)
    rng = random.Random(seed)
    ask = input if ask is None else ask
    right = asked = 0
    ended = "done"
    say(f"Shape quiz: {n} layer(s), seed {seed} (the same seed asks the same layers).")
    say("For each, type the output shape without the batch dimension and the parameter count,")
    say("four whole numbers: height width depth parameters. Ctrl-D stops.")
    try:
        keras = keras_check.import_keras() if use_keras else None
        for number in range(1, n + 1):
            input_shape, layer = draw_layer(rng.choice(list(kinds)), rng)
            truth = right_answer(input_shape, layer, keras)
            say(f"\n{number}/{n}. {layer['text']} on an input of "
                f"{' x '.join(map(str, input_shape))} (height x width x depth)")
            answer = _ask_until_parsed(ask, "   output height width depth, parameters? ", say)
            asked += 1
            wrong = _mark(answer, truth)
            shown = f"{shapes.shape_text(truth[0])}, {truth[1]:,} parameters"
            if not wrong:
                right += 1
                say(f"   Right: {shown}.")
                continue
            say(f"   Not quite: {wrong} {'is' if ' and ' not in wrong else 'are'} off. "
                f"You said {shapes.shape_text(answer[0])}, {answer[1]:,} parameters.")
            say("   The working:")
            for line in working(input_shape, layer):
                say(f"     {line}")
    except EOFError:
        ended = "eof"
    except KeyboardInterrupt:
        ended = "interrupted"
    say("\n" + score_line(right, asked, n))
    return right, asked, ended


def quiz_command(count, seed, kind, use_keras=True):
    """Run the quiz of conv-dims.py or pool-dims.py (`kind` 'conv' or 'pool').

    count and seed are the text of --quiz and --seed (seed may be None).
    Returns the exit status: 0, or 130 when Ctrl-C ended it. Raises ValueError,
    naming the option, unless count is a positive integer and seed an integer.
    """
    n = shapes.parse_positive_int(count, "--quiz")
    if seed is not None:
        try:
            seed = int(seed.strip())
        except ValueError:
            raise ValueError(f"--seed {seed}: must be a whole number") from None
    _, _, ended = run_quiz(n, seed, (kind,), use_keras)
    return 130 if ended == "interrupted" else 0


def shape_quiz(n=5, seed=None, kind="both"):
    """Ask `n` random layers in a notebook (input()), checked with Keras; print the score.

    kind: 'conv', 'pool' or 'both'. Returns None (the score is printed, so
    that the notebook shows no extra value). Raises ValueError for a bad n or kind.
    """
    kinds = KINDS if kind == "both" else (kind,)
    run_quiz(n, seed, kinds)


# ---- one number from an exercise ------------------------------------------------------------

def _cifar10_cnn(**changes):
    """Return trace_stack rows of lesson 3's CNN on 32x32x3, with `changes` made to the spec:
    kernel=N makes the three kernels NxN, first_pool=False drops the first pooling layer."""
    spec = shapes.CIFAR10_STACK
    if "kernel" in changes:
        spec = spec.replace(":2:same", f":{changes['kernel']}:same")
    if changes.get("first_pool") is False:
        spec = spec.replace("pool:2,", "", 1)
    return shapes.trace_stack((32, 32, 3), shapes.parse_stack(spec))


def _first(rows, kind):
    """Return the first row of trace_stack rows whose layer text starts with `kind`."""
    return next(row for row in rows if row["layer"].startswith(kind))


def answers():
    """Return the numbers the exercises ask for, keyed by name: {name: (value, hint)}.

    Computed from the formulas (cnn_course.shapes), not typed in. Raises nothing.
    """
    bigger = _cifar10_cnn(kernel=3)
    no_pool = _cifar10_cnn(first_pool=False)
    lesson3 = _cifar10_cnn()
    convs = [row for row in lesson3 if row["layer"].startswith("conv")]
    return {
        "conv1 params, kernel 3": (
            _first(bigger, "conv")["params"],
            "each of the 16 filters has a 3x3 weight grid for every one of the 3 colour "
            "channels, and one bias"),
        "flatten size, no first pool": (
            _first(no_pool, "flatten")["shape"][0],
            "with padding='same' only the pooling layers shrink the maps; count how many are "
            "left, then multiply height x width x the last layer's 64 filters"),
        "dense1 params, no first pool": (
            _first(no_pool, "dense")["params"],
            "a Dense layer has one weight per input per unit (500 units, one input per number "
            "out of Flatten) and one bias per unit"),
        "edge filter params": (
            shapes.conv_params(4, 1, 1) - 1,  # use_bias=False: the weights without the bias
            "one 4x4 filter on a grey image (1 channel), and the layer has use_bias=False"),
        "conv3 map size": (
            convs[2]["shape"][0],
            "follow the 32-pixel image through lesson 3's CNN: padding='same' keeps the size, "
            "each MaxPooling2D(2) halves it"),
    }


def check_answer(name, answer):
    """Print whether `answer` is right for the exercise number called `name` (see answers()).

    Right: says so. Wrong, or not a whole number: says so with a hint, never
    the answer. An unknown name: lists the known ones. Returns None (it only
    prints, so the notebook shows no extra value); raises nothing.
    """
    known = answers()
    if name not in known:
        print(f"No answer is kept under {name!r}; the names are: " + ", ".join(map(repr, known)))
        return
    value, hint = known[name]
    if isinstance(answer, bool) or not isinstance(answer, numbers.Integral):
        print(f"{name}: give a whole number, like check_answer({name!r}, 123). Hint: {hint}.")
    elif answer == value:
        print(f"{name}: {answer:,} is right.")
    else:
        print(f"{name}: {answer:,} is not right. Hint: {hint}.")
