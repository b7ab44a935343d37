"""Output shapes and parameter counts of conv, pool and dense layers.

The formulas the lessons teach, as plain functions. ``conv-dims.py`` and
``pool-dims.py`` print them with the numbers put in, and the notebooks can
import them. Shapes are channels-last and leave out the batch dimension:
an image is (H, W, D).

- conv output: padding 'same':  ceil(H_in / S)
               padding 'valid': ceil((H_in - F + 1) / S)   (likewise W)
  depth = K, the number of filters; parameters = K x F_h x F_w x D_in + K
- pool output: the same shape rules with the pool size as F; depth unchanged;
  no parameters.

Nothing here imports Keras, so the scripts' --no-keras mode starts at once;
building the layers with Keras and comparing is ``cnn_course.keras_check``.
Impossible configurations raise ValueError saying which value is wrong and why.
"""

import math
import numbers
import re

PADDINGS = ("valid", "same")

_LAYER_USAGE = {  # kind: (its fields, the Keras layer it is)
    "conv": ("conv:K:F[:S][:PADDING][:ACTIVATION]", "Conv2D, K filters, kernel F (N or HxW)"),
    "pool": ("pool:F[:S][:PADDING]", "MaxPooling2D (S defaults to F)"),
    "avgpool": ("avgpool:F[:S][:PADDING]", "AveragePooling2D"),
    "gap": ("gap", "GlobalAveragePooling2D"),
    "dropout": ("dropout[:RATE]", "Dropout (rate 0.5 unless given)"),
    "flatten": ("flatten", "Flatten"),
    "dense": ("dense:UNITS[:ACTIVATION]", "Dense"),
}

CIFAR10_STACK = (
    "conv:16:2:same:relu,pool:2,conv:32:2:same:relu,pool:2,"
    "conv:64:2:same:relu,pool:2,dropout:0.3,flatten,dense:500:relu,"
    "dropout:0.4,dense:10:softmax"
)

STACK_HELP = "\n".join([
    "--stack SPEC: layers separated by commas, the fields of a layer by colons.",
    *(f"  {fields:<37}{layer}" for fields, layer in _LAYER_USAGE.values()),
    "After K and F (or F alone for pooling) the optional fields come in any order:",
    "a size (N or HxW) is the stride S (default 1 for conv), valid or same the",
    "padding (default valid), any other word the activation (default none).",
    "Example, the lessons' CIFAR-10 CNN (528,054 parameters):",
    f"  --input-shape 32,32,3 --stack {CIFAR10_STACK}",
])

_WORD = re.compile(r"[a-z_][a-z0-9_]*\Z")


# ---- checking arguments -------------------------------------------------

def _positive_int(value, name):
    """Return value as an int; raise ValueError unless it is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} {value!r}: must be a positive integer")
    return int(value)


def _pair(value, name):
    """Return (height, width) from an int or a 2-sequence of ints.

    Raises ValueError if either is not a positive integer.
    """
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{name} {value!r}: must be one integer or two (height, width)")
        for v in value:
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
                raise ValueError(f"{name} {tuple(value)!r}: must be positive integers")
        return int(value[0]), int(value[1])
    n = _positive_int(value, name)
    return n, n


def _image_shape(input_shape, what="input_shape"):
    """Return input_shape as an (H, W, D) tuple of ints; raise ValueError if it is not one."""
    if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3:
        raise ValueError(f"{what} {input_shape!r}: must be (height, width, depth)")
    for v in input_shape:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{what} {tuple(input_shape)!r}: must be three positive integers")
    return tuple(int(v) for v in input_shape)


def _check_padding(padding, name="padding"):
    """Return padding if it is 'valid' or 'same'; raise ValueError otherwise."""
    if padding not in PADDINGS:
        raise ValueError(f"{name} {padding!r}: must be 'valid' or 'same'")
    return padding


def _ceil_div(a, b):
    """Return ceil(a / b) for integers, exactly."""
    return -(-a // b)


def _window_output(input_shape, window, strides, padding, name):
    """Return (H_out, W_out) of a sliding window; raise ValueError if it cannot fit."""
    h, w, _ = _image_shape(input_shape)
    fh, fw = _pair(window, name)
    sh, sw = _pair(strides, "strides")
    _check_padding(padding)
    if padding == "same":
        return _ceil_div(h, sh), _ceil_div(w, sw)
    if fh > h or fw > w:
        side = "height" if fh > h else "width"
        size, f = (h, fh) if fh > h else (w, fw)
        raise ValueError(
            f"{name} {fh}x{fw} does not fit the {h}x{w} input with padding='valid' "
            f"({side} {f} > {size}, so the output would be empty): "
            f"use a smaller {name} or padding='same'"
        )
    return _ceil_div(h - fh + 1, sh), _ceil_div(w - fw + 1, sw)


# ---- the formulas ---------------------------------------------------------

def conv_output_shape(input_shape, kernel_size, strides=1, padding="valid", filters=None):
    """Return the (H_out, W_out, D_out) a Conv2D layer gives an (H, W, D) input.

    kernel_size and strides are an int or (height, width). D_out is filters,
    or the input depth when filters is None.
    Raises ValueError for a non-positive or non-integer size, an unknown
    padding, or a kernel larger than the input with padding='valid'.
    """
    h_out, w_out = _window_output(input_shape, kernel_size, strides, padding, "kernel_size")
    depth = input_shape[2] if filters is None else _positive_int(filters, "filters")
    return h_out, w_out, depth


def pool_output_shape(input_shape, pool_size, strides=None, padding="valid"):
    """Return the (H_out, W_out, D) a MaxPooling2D/AveragePooling2D layer gives.

    strides defaults to pool_size, as in Keras. The depth is unchanged.
    Raises ValueError as conv_output_shape does.
    """
    strides = pool_size if strides is None else strides
    h_out, w_out = _window_output(input_shape, pool_size, strides, padding, "pool_size")
    return h_out, w_out, input_shape[2]


def conv_params(kernel_size, depth_in, filters):
    """Return the weights and biases of a Conv2D layer: K x F_h x F_w x D_in + K.

    Raises ValueError unless every argument is a positive integer (or pair).
    """
    fh, fw = _pair(kernel_size, "kernel_size")
    d = _positive_int(depth_in, "depth_in")
    k = _positive_int(filters, "filters")
    return k * fh * fw * d + k


def dense_params(n_in, units):
    """Return the weights and biases of a Dense layer: units x n_in + units.

    Raises ValueError unless both are positive integers.
    """
    return _positive_int(units, "units") * _positive_int(n_in, "n_in") + units


# ---- parsing the scripts' command-line values ------------------------------

def attach_dash_values(argv, flags):
    """Return argv with "FLAG VALUE" written "FLAG=VALUE" for each of ``flags``
    whose value starts with one '-' ("--kernel-size -1x3"): argparse would
    take such a value for an option and say only "expected one argument",
    while the parse_* functions here say what is wrong with it."""
    argv = list(argv)
    out = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if (arg in flags and i + 1 < len(argv) and argv[i + 1].startswith("-")
                and not argv[i + 1].startswith("--") and len(argv[i + 1]) > 1):
            out.append(f"{arg}={argv[i + 1]}")
            i += 2
        else:
            out.append(arg)
            i += 1
    return out


def parse_positive_int(text, name):
    """Return the positive integer written in text; raise ValueError naming `name` otherwise."""
    try:
        value = int(text.strip())
    except ValueError:
        value = None
    if value is None or value < 1:
        raise ValueError(f"{name} {text}: must be a positive integer")
    return value


def parse_size(text, name):
    """Return (height, width) from "N" or "HxW" (e.g. "3" or "3x5").

    Raises ValueError naming `name` for anything else, zero or negative sizes included.
    """
    parts = text.strip().lower().split("x")
    if len(parts) > 2 or not all(p.strip() for p in parts):
        raise ValueError(f"{name} {text}: must be N or HxW, like 3 or 3x5")
    numbers_ = []
    for part in parts:
        try:
            numbers_.append(int(part))
        except ValueError:
            try:
                float(part)
            except ValueError:
                raise ValueError(f"{name} {text}: must be N or HxW, like 3 or 3x5") from None
            raise ValueError(f"{name} {text}: must be a positive integer") from None
    if min(numbers_) < 1:
        raise ValueError(f"{name} {text}: must be a positive integer")
    return numbers_[0], numbers_[-1]


def parse_input_shape(text, name="--input-shape"):
    """Return (H, W, D) from "H,W,D" (spaces and parentheses allowed, e.g. "(32, 32, 3)").

    Raises ValueError naming `name` unless it is three positive integers.
    """
    parts = text.strip().strip("()").split(",")
    try:
        shape = tuple(int(p) for p in parts)
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"{name} {text}: must be H,W,D, three positive integers like 32,32,3")
    return shape


def parse_padding(text, name="--padding"):
    """Return 'valid' or 'same' (any case); raise ValueError naming `name` otherwise."""
    padding = text.strip().lower()
    if padding not in PADDINGS:
        raise ValueError(f"{name} {text}: must be valid or same")
    return padding


# Activations that change the shape of what they are given: the formulas here
# are for layers whose activation keeps it, so these are refused by name
# (keras_check.check_activation also tries every activation on a small tensor).
SHAPE_CHANGING_ACTIVATIONS = {
    "glu": "GLU halves the channels (one half gates the other) and needs an even number of them",
}


def parse_activation(text, name="--activation"):
    """Return an activation name in lower case, or None for "none".

    Only the form is checked here (a word like relu or leaky_relu), and that
    it is not one of SHAPE_CHANGING_ACTIVATIONS; keras_check checks that Keras
    has it and that it keeps the shape.
    Raises ValueError naming `name` if it is not a word or changes the shape.
    """
    word = text.strip().lower()
    if not _WORD.match(word):
        raise ValueError(f"{name} {text}: must be an activation name like relu or softmax")
    if word in SHAPE_CHANGING_ACTIVATIONS:
        raise ValueError(f"{name} {text}: {SHAPE_CHANGING_ACTIVATIONS[word]}, so the layer's output "
                         "would not be what the formulas here describe; use an activation that "
                         "keeps the shape, such as relu, sigmoid, tanh or softmax")
    return None if word == "none" else word


# ---- the working, with the numbers put in ----------------------------------

def _ceil_steps(top, stride):
    """Return '= ceil(x) = n' text for ceil(top / stride), leaving out exact divisions."""
    if top % stride == 0:
        return f"= {top // stride}"
    return f"= ceil({top / stride:.4f}".rstrip("0") + f") = {_ceil_div(top, stride)}"


def _axis_lines(input_shape, window, strides, padding):
    """Return the height and width lines of the working, numbers put in."""
    h, w, _ = input_shape
    fh, fw = window
    sh, sw = strides
    f = ("F", "F") if fh == fw else ("F_h", "F_w")
    s = ("S", "S") if sh == sw else ("S_h", "S_w")
    lines = []
    for label, n_in, sym_in, fi, si, fsym, ssym in (
        ("height", h, "H_in", fh, sh, f[0], s[0]),
        ("width ", w, "W_in", fw, sw, f[1], s[1]),
    ):
        if padding == "same":
            lines.append(f"{label}     = ceil({sym_in} / {ssym}) = ceil({n_in} / {si}) "
                         f"{_ceil_steps(n_in, si)}")
        else:
            lines.append(f"{label}     = ceil(({sym_in} - {fsym} + 1) / {ssym}) = "
                         f"ceil(({n_in} - {fi} + 1) / {si}) {_ceil_steps(n_in - fi + 1, si)}")
    return lines


def shape_text(shape):
    """Return a shape as Keras prints it, batch included: (None, 100, 100, 16)."""
    return "(None, " + ", ".join(str(n) for n in shape) + ")"


def conv_working(input_shape, kernel_size, strides, padding, filters):
    """Return the lines that work out a Conv2D layer's output shape and parameters.

    Raises ValueError as conv_output_shape does.
    """
    out = conv_output_shape(input_shape, kernel_size, strides, padding, filters)
    fh, fw = _pair(kernel_size, "kernel_size")
    sh, sw = _pair(strides, "strides")
    h, w, d = input_shape
    params = conv_params(kernel_size, d, filters)
    f_sym = "F x F" if fh == fw else "F_h x F_w"
    return [
        f"Input H_in x W_in x D_in = {h} x {w} x {d}; K = {filters} filters, "
        f"kernel {fh}x{fw}, strides {sh}x{sw}, padding='{padding}'",
        *_axis_lines(input_shape, (fh, fw), (sh, sw), padding),
        f"depth      = K = {filters}",
        f"parameters = K x {f_sym} x D_in + K = {filters} x {fh} x {fw} x {d} + {filters} "
        f"= {params:,}",
        f"Output shape {shape_text(out)}, {params:,} parameters",
    ]


def pool_working(input_shape, pool_size, strides=None, padding="valid"):
    """Return the lines that work out a pooling layer's output shape.

    Raises ValueError as pool_output_shape does.
    """
    strides = pool_size if strides is None else strides
    out = pool_output_shape(input_shape, pool_size, strides, padding)
    fh, fw = _pair(pool_size, "pool_size")
    sh, sw = _pair(strides, "strides")
    h, w, d = input_shape
    return [
        f"Input H_in x W_in x D_in = {h} x {w} x {d}; pool size F = {fh}x{fw}, "
        f"strides S = {sh}x{sw}, padding='{padding}'",
        *_axis_lines(input_shape, (fh, fw), (sh, sw), padding),
        f"depth      = D_in = {d} (pooling keeps every feature map)",
        "parameters = 0 (pooling has nothing to learn)",
        f"Output shape {shape_text(out)}, 0 parameters",
    ]


def global_pool_working(input_shape):
    """Return the lines that work out a GlobalAveragePooling2D layer's output.

    Raises ValueError if input_shape is not three positive integers.
    """
    h, w, d = _image_shape(input_shape)
    return [
        f"Input H_in x W_in x D_in = {h} x {w} x {d}",
        f"each of the D_in = {d} feature maps ({h} x {w} numbers) is averaged to one number",
        f"output     = D_in = {d}",
        "parameters = 0 (pooling has nothing to learn)",
        f"Output shape {shape_text((d,))}, 0 parameters",
    ]


# ---- a whole stack of layers ------------------------------------------------

def _is_size(field):
    """Return True if field looks like a size: N or HxW."""
    return re.fullmatch(r"-?\d+(\.\d*)?(x-?\d+(\.\d*)?)?", field) is not None


def _parse_layer(text, where):
    """Return one stack layer as a dict; raise ValueError starting with `where`."""
    kind, *fields = [f.strip() for f in text.strip().lower().split(":")]
    if kind in ("maxpool", "max"):
        kind = "pool"
    layer = {"kind": kind, "text": text.strip()}
    if kind not in _LAYER_USAGE:
        raise ValueError(f"{where}: unknown layer {kind!r}; use one of {', '.join(_LAYER_USAGE)}")
    needed = {"conv": 2, "pool": 1, "avgpool": 1, "dense": 1}.get(kind, 0)
    most = {"conv": 5, "pool": 3, "avgpool": 3, "dense": 2, "dropout": 1}.get(kind, 0)
    if not needed <= len(fields) <= most:
        raise ValueError(f"{where}: expected {_LAYER_USAGE[kind][0]}")
    if kind == "conv":
        layer["filters"] = parse_positive_int(fields[0], f"{where}: filters")
    if kind in ("conv", "pool", "avgpool"):
        size_name = "kernel size" if kind == "conv" else "pool size"
        layer["window"] = parse_size(fields[needed - 1], f"{where}: {size_name}")
        layer["strides"] = (1, 1) if kind == "conv" else layer["window"]
        layer["padding"] = "valid"
        layer["activation"] = None
        seen = set()
        for field in fields[needed:]:
            if _is_size(field):
                key, value = "strides", parse_size(field, f"{where}: strides")
            elif field in PADDINGS:
                key, value = "padding", field
            elif kind == "conv":
                key, value = "activation", parse_activation(field, f"{where}: activation")
            else:
                raise ValueError(f"{where}: {field!r} is neither a stride nor valid/same")
            if key in seen:
                raise ValueError(f"{where}: {key} given twice")
            seen.add(key)
            layer[key] = value
    if kind == "dense":
        layer["units"] = parse_positive_int(fields[0], f"{where}: units")
        layer["activation"] = parse_activation(fields[1], f"{where}: activation") if len(fields) > 1 else None
    if kind == "dropout":
        rate = fields[0] if fields else "0.5"
        try:
            layer["rate"] = float(rate)
        except ValueError:
            layer["rate"] = -1.0
        if not 0 <= layer["rate"] < 1:
            raise ValueError(f"{where}: rate {rate}: must be a number from 0 up to (not including) 1")
    return layer


def parse_stack(spec, name="--stack"):
    """Return the layers of a stack SPEC (see STACK_HELP) as a list of dicts.

    Each dict has 'kind' and 'text' and, by kind, 'filters', 'window',
    'strides', 'padding', 'activation', 'units', 'rate'.
    Raises ValueError naming the layer (1-based) that is wrong and why.
    """
    texts = spec.split(",")
    if not spec.strip():
        raise ValueError(f"{name}: is empty; give layers like conv:16:2,pool:2")
    layers = []
    for i, text in enumerate(texts, 1):
        where = f"{name} layer {i} ({text.strip()!r})"
        if not text.strip():
            raise ValueError(f"{name} layer {i}: is empty (two commas in a row?)")
        layers.append(_parse_layer(text, where))
    return layers


def _trace_layer(shape, layer):
    """Return (output shape, parameters, formula text) of one layer on `shape`."""
    kind = layer["kind"]
    if kind in ("conv", "pool", "avgpool", "gap") and len(shape) != 3:
        raise ValueError(f"needs an H x W x D input but gets {shape_text(shape)}")
    if kind in ("conv", "pool", "avgpool"):
        (fh, fw), (sh, sw), padding = layer["window"], layer["strides"], layer["padding"]
        h, w, d = shape
        name = "kernel_size" if kind == "conv" else "pool_size"
        h_out, w_out = _window_output(shape, (fh, fw), (sh, sw), padding, name)
        if padding == "same":
            formula = f"ceil({h}/{sh}) x ceil({w}/{sw})"
        else:
            formula = f"ceil(({h}-{fh}+1)/{sh}) x ceil(({w}-{fw}+1)/{sw})"
        if kind != "conv":
            return (h_out, w_out, d), 0, f"{formula} x {d}"
        k = layer["filters"]
        return ((h_out, w_out, k), conv_params((fh, fw), d, k),
                f"{formula} x {k}; params {k}x{fh}x{fw}x{d} + {k}")
    if kind == "gap":
        return (shape[2],), 0, f"one average per feature map: {shape[2]}"
    if kind == "flatten":
        n = math.prod(shape)
        return (n,), 0, " x ".join(str(s) for s in shape) + f" = {n}"
    if kind == "dense":
        units, n_in = layer["units"], shape[-1]
        return (*shape[:-1], units), dense_params(n_in, units), f"params {units}x{n_in} + {units}"
    return shape, 0, "shape unchanged, nothing to learn"


def trace_stack(input_shape, layers, name="--stack"):
    """Follow an (H, W, D) input through parsed stack layers.

    Returns one dict per layer: 'layer' (its SPEC text), 'shape' (output
    shape without the batch dimension), 'params' and 'formula' (text).
    Raises ValueError naming the layer that cannot take its input.
    """
    shape = _image_shape(input_shape)
    rows = []
    for i, layer in enumerate(layers, 1):
        try:
            shape, params, formula = _trace_layer(shape, layer)
        except ValueError as err:
            raise ValueError(f"{name} layer {i} ({layer['text']!r}): {err}") from None
        rows.append({"layer": layer["text"], "shape": shape, "params": params, "formula": formula})
    return rows


def stack_table(rows):
    """Return the per-layer table of trace_stack rows and the total, as text."""
    header = ("#", "layer", "output shape", "params", "formula")
    body = [(str(i), r["layer"], shape_text(r["shape"]), f"{r['params']:,}", r["formula"])
            for i, r in enumerate(rows, 1)]
    widths = [max(len(row[c]) for row in [header, *body]) for c in range(4)]
    lines = []
    for row in [header, *body]:
        lines.append(f"{row[0]:>{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  "
                     f"{row[3]:>{widths[3]}}  {row[4]}")
    lines.append(f"Total params: {sum(r['params'] for r in rows):,}")
    return "\n".join(lines)
