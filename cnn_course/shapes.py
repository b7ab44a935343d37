"""Output shapes and parameter counts of conv, pool and dense layers: the formulas the lessons teach.

Shapes are channels-last without the batch dimension, an image is (H, W, D):
  conv: padding 'same': ceil(H_in / S); 'valid': ceil((H_in - F + 1) / S) (likewise W);
        depth K (the filters); parameters K x F_h x F_w x D_in + K
  pool: the same with the pool size as F; depth unchanged; no parameters.
``conv-dims.py`` and ``pool-dims.py`` print them with the numbers put in. Nothing here
imports Keras (``--no-keras`` starts at once); ``cnn_course.keras_check`` compares with it.
Impossible values raise ValueError, one line saying which value is wrong and why.
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
_FIELDS = {"conv": (2, 5), "pool": (1, 3), "avgpool": (1, 3), "dense": (1, 2), "dropout": (0, 1)}  # least, most
CIFAR10_STACK = (
    "conv:16:2:same:relu,pool:2,conv:32:2:same:relu,pool:2,conv:64:2:same:relu,pool:2,"
    "dropout:0.3,flatten,dense:500:relu,dropout:0.4,dense:10:softmax"
)
STACK_HELP = "\n".join(
    [
        "--stack SPEC: layers separated by commas, the fields of a layer by colons.",
        *(f"  {fields:<37}{layer}" for fields, layer in _LAYER_USAGE.values()),
        "After K and F (or F alone for pooling) the optional fields come in any order:",
        "a size (N or HxW) is the stride S (default 1 for conv), valid or same the",
        "padding (default valid), any other word the activation (default none).",
        "Example, the lessons' CIFAR-10 CNN (528,054 parameters):",
        f"  --input-shape 32,32,3 --stack {CIFAR10_STACK}",
    ]
)
# Activations that change the shape they are given (the formulas assume they keep it): refused by name;
# keras_check.check_activation also tries every activation on a small tensor.
_NUMBER = r"\s*[-+]?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?\s*"  # what parse_size reads as a (perhaps wrong) size
SHAPE_CHANGING_ACTIVATIONS = {
    "glu": "GLU halves the channels (one half gates the other) and needs an even number of them"
}


def _whole(value):
    return not isinstance(value, bool) and isinstance(value, numbers.Integral) and value >= 1


def _positive_int(value, name):
    if not _whole(value):
        raise ValueError(f"{name} {value!r}: must be a positive integer")
    return int(value)


def _pair(value, name):
    """Return (height, width) from an int or a pair of them; raise ValueError otherwise."""
    if not isinstance(value, (tuple, list)):
        return (_positive_int(value, name),) * 2
    if len(value) != 2:
        raise ValueError(f"{name} {value!r}: must be one integer or two (height, width)")
    if not all(map(_whole, value)):
        raise ValueError(f"{name} {tuple(value)!r}: must be positive integers")
    return int(value[0]), int(value[1])


def _image_shape(shape, what="input_shape"):
    """Return shape as an (H, W, D) tuple of ints; raise ValueError if it is not one."""
    if not isinstance(shape, (tuple, list)) or len(shape) != 3:
        raise ValueError(f"{what} {shape!r}: must be (height, width, depth)")
    if not all(map(_whole, shape)):
        raise ValueError(f"{what} {tuple(shape)!r}: must be three positive integers")
    return tuple(int(v) for v in shape)


def _ceil_div(a, b):
    return -(-a // b)  # exact for integers of any size


def _window_output(input_shape, window, strides, padding, name):
    """Return (H_out, W_out) of a sliding window; raise ValueError if it cannot fit."""
    h, w, _ = _image_shape(input_shape)
    (fh, fw), (sh, sw) = _pair(window, name), _pair(strides, "strides")
    if padding not in PADDINGS:
        raise ValueError(f"padding {padding!r}: must be 'valid' or 'same'")
    if padding == "same":
        return _ceil_div(h, sh), _ceil_div(w, sw)
    if fh > h or fw > w:
        side, f, size = ("height", fh, h) if fh > h else ("width", fw, w)
        raise ValueError(
            f"{name} {fh}x{fw} does not fit the {h}x{w} input with padding='valid' ({side} {f} > "
            f"{size}, so the output would be empty): use a smaller {name} or padding='same'"
        )
    return _ceil_div(h - fh + 1, sh), _ceil_div(w - fw + 1, sw)


def conv_output_shape(input_shape, kernel_size, strides=1, padding="valid", filters=None):
    """Return the (H_out, W_out, filters or D) a Conv2D layer gives an (H, W, D) input. Raises ValueError
    for a size that is not a positive integer (or pair), an unknown padding, or a kernel that does not fit."""
    h_out, w_out = _window_output(input_shape, kernel_size, strides, padding, "kernel_size")
    return h_out, w_out, input_shape[2] if filters is None else _positive_int(filters, "filters")


def pool_output_shape(input_shape, pool_size, strides=None, padding="valid"):
    """Return the (H_out, W_out, D) of MaxPooling2D/AveragePooling2D; ValueError as conv_output_shape."""
    strides = pool_size if strides is None else strides
    return (*_window_output(input_shape, pool_size, strides, padding, "pool_size"), input_shape[2])


def conv_params(kernel_size, depth_in, filters):
    """Return a Conv2D layer's weights and biases, K x F_h x F_w x D_in + K; ValueError for a bad size."""
    fh, fw = _pair(kernel_size, "kernel_size")
    k = _positive_int(filters, "filters")
    return k * fh * fw * _positive_int(depth_in, "depth_in") + k


def dense_params(n_in, units):
    """Return a Dense layer's weights and biases, units x n_in + units; ValueError for a bad size."""
    return _positive_int(units, "units") * _positive_int(n_in, "n_in") + units


def attach_dash_values(argv, flags):
    """Return argv with "FLAG -VALUE" written "FLAG=-VALUE" for each of `flags` (argparse would take
    "--kernel-size -1x3" for two options and say only "expected one argument")."""
    out, i = [], 0
    while i < len(argv):
        value = argv[i + 1] if i + 1 < len(argv) else ""
        if argv[i] in flags and value.startswith("-") and not value.startswith("--") and len(value) > 1:
            out.append(f"{argv[i]}={value}")
            i += 1
        else:
            out.append(argv[i])
        i += 1
    return out


def parse_positive_int(text, name):
    """Return the positive integer in text; raise ValueError naming `name` otherwise."""
    try:
        return _positive_int(int(text.strip()), name)
    except ValueError:
        raise ValueError(f"{name} {text}: must be a positive integer") from None


def parse_size(text, name):
    """Return (height, width) from "N" or "HxW"; raise ValueError naming `name` otherwise."""
    parts = text.strip().lower().split("x")
    if len(parts) > 2 or not all(re.fullmatch(_NUMBER, part) for part in parts):
        raise ValueError(f"{name} {text}: must be N or HxW, like 3 or 3x5")
    sizes = [int(part) if re.fullmatch(r"\s*[-+]?\d+\s*", part) else 0 for part in parts]
    if min(sizes) < 1:  # zero, negative or not whole (2.5)
        raise ValueError(f"{name} {text}: must be a positive integer")
    return sizes[0], sizes[-1]


def parse_input_shape(text, name="--input-shape"):
    """Return (H, W, D) from "H,W,D" (spaces and parentheses allowed); raise ValueError naming `name`."""
    try:
        shape = tuple(int(p) for p in text.strip().strip("()").split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"{name} {text}: must be H,W,D, three positive integers like 32,32,3")
    return shape


def parse_padding(text, name="--padding"):
    """Return 'valid' or 'same' (any case); raise ValueError naming `name` otherwise."""
    if text.strip().lower() not in PADDINGS:
        raise ValueError(f"{name} {text}: must be valid or same")
    return text.strip().lower()


def parse_activation(text, name="--activation"):
    """Return an activation name in lower case, or None for "none" (keras_check checks Keras has it).
    Raises ValueError naming `name` if it is not a word or in SHAPE_CHANGING_ACTIVATIONS."""
    word = text.strip().lower()
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", word):
        raise ValueError(f"{name} {text}: must be an activation name like relu or softmax")
    if word in SHAPE_CHANGING_ACTIVATIONS:
        raise ValueError(
            f"{name} {text}: {SHAPE_CHANGING_ACTIVATIONS[word]}, so the layer's output would not be "
            "what the formulas here describe; use an activation that keeps the shape, such as relu, "
            "sigmoid, tanh or softmax"
        )
    return None if word == "none" else word


def shape_text(shape):
    """Return a shape as Keras prints it, batch included: (None, 100, 100, 16)."""
    return "(None, " + ", ".join(map(str, shape)) + ")"


def _ceil_steps(top, stride):
    """Return '= ceil(x) = n' for ceil(top / stride), or '= n' for an exact division."""
    if top % stride == 0:
        return f"= {top // stride}"
    return f"= ceil({top / stride:.4f}".rstrip("0") + f") = {_ceil_div(top, stride)}"


def _window_working(input_shape, window, strides, padding, what):
    """Return the input line and the height and width lines of a sliding window's working."""
    (h, w, d), (fh, fw), (sh, sw) = input_shape, window, strides
    f = ("F", "F") if fh == fw else ("F_h", "F_w")
    s = ("S", "S") if sh == sw else ("S_h", "S_w")
    lines = [f"Input H_in x W_in x D_in = {h} x {w} x {d}; {what}, padding='{padding}'"]
    for label, n, sym, fi, si, fs, ss in (
        ("height", h, "H_in", fh, sh, f[0], s[0]),
        ("width ", w, "W_in", fw, sw, f[1], s[1]),
    ):
        if padding == "same":
            lines.append(f"{label}     = ceil({sym} / {ss}) = ceil({n} / {si}) {_ceil_steps(n, si)}")
        else:
            lines.append(
                f"{label}     = ceil(({sym} - {fs} + 1) / {ss}) = ceil(({n} - {fi} + 1) / {si}) "
                f"{_ceil_steps(n - fi + 1, si)}"
            )
    return lines


def conv_working(input_shape, kernel_size, strides, padding, filters):
    """Return the lines that work out a Conv2D layer's output; ValueError as conv_output_shape."""
    out = conv_output_shape(input_shape, kernel_size, strides, padding, filters)
    (fh, fw), (sh, sw), d = _pair(kernel_size, "kernel_size"), _pair(strides, "strides"), input_shape[2]
    params = conv_params(kernel_size, d, filters)
    return [
        *_window_working(
            input_shape, (fh, fw), (sh, sw), padding, f"K = {filters} filters, kernel {fh}x{fw}, strides {sh}x{sw}"
        ),
        f"depth      = K = {filters}",
        f"parameters = K x {'F x F' if fh == fw else 'F_h x F_w'} x D_in + K = {filters} x {fh} x {fw} x {d} "
        f"+ {filters} = {params:,}",
        f"Output shape {shape_text(out)}, {params:,} parameters",
    ]


def pool_working(input_shape, pool_size, strides=None, padding="valid"):
    """Return the lines that work out a pooling layer's output shape; ValueError as pool_output_shape."""
    strides = pool_size if strides is None else strides
    out = pool_output_shape(input_shape, pool_size, strides, padding)
    (fh, fw), (sh, sw) = _pair(pool_size, "pool_size"), _pair(strides, "strides")
    return [
        *_window_working(input_shape, (fh, fw), (sh, sw), padding, f"pool size F = {fh}x{fw}, strides S = {sh}x{sw}"),
        f"depth      = D_in = {input_shape[2]} (pooling keeps every feature map)",
        "parameters = 0 (pooling has nothing to learn)",
        f"Output shape {shape_text(out)}, 0 parameters",
    ]


def global_pool_working(input_shape):
    """Return the lines that work out a GlobalAveragePooling2D layer's output; ValueError for a bad shape."""
    h, w, d = _image_shape(input_shape)
    return [
        f"Input H_in x W_in x D_in = {h} x {w} x {d}",
        f"each of the D_in = {d} feature maps ({h} x {w} numbers) is averaged to one number",
        f"output     = D_in = {d}",
        "parameters = 0 (pooling has nothing to learn)",
        f"Output shape {shape_text((d,))}, 0 parameters",
    ]


def _parse_layer(text, where):
    """Return one stack layer as a dict; raise ValueError starting with `where`."""
    kind, *fields = [f.strip() for f in text.strip().lower().split(":")]
    kind = "pool" if kind in ("maxpool", "max") else kind
    if kind not in _LAYER_USAGE:
        raise ValueError(f"{where}: unknown layer {kind!r}; use one of {', '.join(_LAYER_USAGE)}")
    least, most = _FIELDS.get(kind, (0, 0))
    if not least <= len(fields) <= most:
        raise ValueError(f"{where}: expected {_LAYER_USAGE[kind][0]}")
    layer = {"kind": kind, "text": text.strip()}
    if kind == "conv":
        layer["filters"] = parse_positive_int(fields[0], f"{where}: filters")
    if kind in ("conv", "pool", "avgpool"):
        window = parse_size(fields[least - 1], f"{where}: {'kernel' if kind == 'conv' else 'pool'} size")
        layer.update(window=window, strides=(1, 1) if kind == "conv" else window, padding="valid", activation=None)
        seen = set()
        for field in fields[least:]:
            if re.fullmatch(f"{_NUMBER}(x{_NUMBER})?", field):
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
    elif kind == "dense":
        layer["units"] = parse_positive_int(fields[0], f"{where}: units")
        layer["activation"] = parse_activation(fields[1], f"{where}: activation") if len(fields) > 1 else None
    elif kind == "dropout":
        rate = fields[0] if fields else "0.5"
        try:
            layer["rate"] = float(rate)
        except ValueError:
            layer["rate"] = -1.0
        if not 0 <= layer["rate"] < 1:
            raise ValueError(f"{where}: rate {rate}: must be a number from 0 up to (not including) 1")
    return layer


def parse_stack(spec, name="--stack"):
    """Return the layers of a stack SPEC (STACK_HELP) as dicts ('kind', 'text', and by kind 'filters',
    'window', 'strides', 'padding', 'activation', 'units', 'rate'). Raises ValueError naming the layer."""
    if not spec.strip():
        raise ValueError(f"{name}: is empty; give layers like conv:16:2,pool:2")
    layers = []
    for i, text in enumerate(spec.split(","), 1):
        if not text.strip():
            raise ValueError(f"{name} layer {i}: is empty (two commas in a row?)")
        layers.append(_parse_layer(text, f"{name} layer {i} ({text.strip()!r})"))
    return layers


def _trace_layer(shape, layer):
    """Return (output shape, parameters, formula text) of one layer on `shape`."""
    kind = layer["kind"]
    if kind in ("conv", "pool", "avgpool", "gap") and len(shape) != 3:
        raise ValueError(f"needs an H x W x D input but gets {shape_text(shape)}")
    if kind in ("conv", "pool", "avgpool"):
        (fh, fw), (sh, sw), (h, w, d) = layer["window"], layer["strides"], shape
        h_out, w_out = _window_output(
            shape, (fh, fw), (sh, sw), layer["padding"], "kernel_size" if kind == "conv" else "pool_size"
        )
        formula = (
            f"ceil({h}/{sh}) x ceil({w}/{sw})"
            if layer["padding"] == "same"
            else f"ceil(({h}-{fh}+1)/{sh}) x ceil(({w}-{fw}+1)/{sw})"
        )
        if kind != "conv":
            return (h_out, w_out, d), 0, f"{formula} x {d}"
        k = layer["filters"]
        return (h_out, w_out, k), conv_params((fh, fw), d, k), f"{formula} x {k}; params {k}x{fh}x{fw}x{d} + {k}"
    if kind == "gap":
        return (shape[2],), 0, f"one average per feature map: {shape[2]}"
    if kind == "flatten":
        return (math.prod(shape),), 0, " x ".join(map(str, shape)) + f" = {math.prod(shape)}"
    if kind == "dense":
        units, n_in = layer["units"], shape[-1]
        return (*shape[:-1], units), dense_params(n_in, units), f"params {units}x{n_in} + {units}"
    return shape, 0, "shape unchanged, nothing to learn"


def trace_stack(input_shape, layers, name="--stack"):
    """Return one dict per parsed layer ('layer', 'shape' without the batch, 'params', 'formula') for an
    (H, W, D) input. Raises ValueError naming the layer that cannot take its input."""
    shape, rows = _image_shape(input_shape), []
    for i, layer in enumerate(layers, 1):
        try:
            shape, params, formula = _trace_layer(shape, layer)
        except ValueError as err:
            raise ValueError(f"{name} layer {i} ({layer['text']!r}): {err}") from None
        rows.append({"layer": layer["text"], "shape": shape, "params": params, "formula": formula})
    return rows


def stack_table(rows):
    """Return the per-layer table of trace_stack rows and the total, as text."""
    table = [("#", "layer", "output shape", "params", "formula")]
    table += [
        (str(i), r["layer"], shape_text(r["shape"]), f"{r['params']:,}", r["formula"]) for i, r in enumerate(rows, 1)
    ]
    wide = [max(len(row[c]) for row in table) for c in range(4)]
    lines = [f"{a:>{wide[0]}}  {b:<{wide[1]}}  {c:<{wide[2]}}  {d:>{wide[3]}}  {e}" for a, b, c, d, e in table]
    return "\n".join([*lines, f"Total params: {sum(r['params'] for r in rows):,}"])
