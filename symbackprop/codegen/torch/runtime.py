"""The torch target's runtime: copied verbatim into every generated ``<name>_torch.py``.

Everything from the line ``GAMMA = ...`` on is the text the template includes (the generated
module imports math, numbers, re and torch itself, and carries symbackprop/safe_io.py before
it, as the NumPy module does, for reading and writing files). It is a real module so that it
is linted and tested directly: the portable PRNG of ``symbackprop/prng.py`` with torch instead of
NumPy (uint64 arithmetic as wrapping int64, logical shifts masked; float64 ``+ - * /`` and
``sqrt`` only, so the initial weights equal the NumPy and C targets' bit for bit), and the
weight-file format read and written exactly as the NumPy module does it. The only square root
is Python's ``math.sqrt`` (correctly rounded), not ``torch.sqrt``.
"""

import math
import numbers

import torch

from symbackprop.core.prng import distribution  # its source follows this file's in the module
from symbackprop.safe_io import (
    _BLANKS,
    _integer,
    _number,
    _text_lines,
    _words,
    write_bytes,
)

GAMMA = 0x9E3779B97F4A7C15
MASK64 = (1 << 64) - 1
SQRT2 = 1.4142135623730951
LN2 = 0.6931471805599453
_INV_ODD = [1.0 / d for d in range(23, 2, -2)]  # 1/23, 1/21, ..., 1/3 (innermost first)
_TWO_M53 = 2.0**-53


def _int64(z):
    """The int64 holding the bits of z mod 2**64 (torch has no uint64 arithmetic)."""
    z &= MASK64
    return z - (1 << 64) if z >> 63 else z


_GAMMA64 = _int64(GAMMA)
_MIX1 = _int64(0xBF58476D1CE4E5B9)
_MIX2 = _int64(0x94D049BB133111EB)


def _mix64_int(z):
    z &= MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def _shr(z, s):
    """Logical right shift of the uint64 bits in an int64 tensor (>> on int64 is arithmetic)."""
    return (z >> s) & ((1 << (64 - s)) - 1)


def _mix64(z):
    """splitmix64's output function on an int64 tensor (multiplication wraps, as uint64's)."""
    z = (z ^ _shr(z, 30)) * _MIX1
    z = (z ^ _shr(z, 27)) * _MIX2
    return z ^ _shr(z, 31)


def stream_key(seed, k):
    """Key of parameter tensor number k (seed is taken modulo 2**64)."""
    return _mix64_int(seed + (k + 1) * GAMMA)


def _u(key, idx):
    """u(key, i) in [0, 1) as float64 for an int64 index tensor."""
    z = _mix64(_int64(key) + (idx + 1) * _GAMMA64)
    return _shr(z, 11).to(torch.float64) * _TWO_M53


DROPOUT_STREAM = 1 << 33  # dropout layer i: stream_key(seed, DROPOUT_STREAM + i), then the step


def dropout_key(seed, step, layer):
    """The key of layer ``layer``'s dropout masks at step count ``step`` (core/prng.py's)."""
    return stream_key(stream_key(seed, DROPOUT_STREAM + layer), step)


ONE_ROW = ("batch_norm needs more than one value per channel in training mode (as PyTorch: "
           "'Expected more than 1 value per channel when training')")  # fmt: skip
DROPOUT_GOLDEN = 0x9E3779B9  # the masks' Weyl step (core/prng.py's)
_MASK32 = 0xFFFFFFFF


def hash32(x):
    """core/prng.py's 32-bit hash (lowbias32) of an int64 tensor of values below 2^32: each
    product stays below 2^63 and is cut back to 32 bits."""
    x = x & _MASK32
    x = x ^ (x >> 16)
    x = (x * 0x7FEB352D) & _MASK32
    x = x ^ (x >> 15)
    x = (x * 0x846CA68B) & _MASK32
    return x ^ (x >> 16)


def dropout_keep(key, first, rows, width, p):
    """Rows first..first+rows-1 of a batch's mask, [rows, width] booleans: element (r, j), index
    i = r * width + j, is kept when hash32(lo32(key) + (i + 1) * DROPOUT_GOLDEN mod 2^32) >=
    ceil(p * 2^32) (core/prng.py's)."""
    idx = torch.arange(first * width, (first + rows) * width, dtype=torch.int64)
    x = ((key & _MASK32) + (idx + 1) * DROPOUT_GOLDEN) & _MASK32
    return (hash32(x) >= math.ceil(float(p) * 2.0**32)).reshape(rows, width)


def uniforms(key, n):
    """u(key, 0), ..., u(key, n-1)."""
    return _u(key, torch.arange(n, dtype=torch.int64))


def uniforms32(key, n):
    """u32(key, 0), ..., u32(key, n-1) as float32."""
    return _u32(key, torch.arange(n, dtype=torch.int64))


def plog(s):
    """Portable natural log for 0 < s < 1 (+ - * / only; see symbackprop/prng.py)."""
    fm, e = torch.frexp(s)
    m = fm * 2.0
    k = e.to(torch.int64) - 1
    big = m > SQRT2
    m = torch.where(big, m / 2.0, m)
    k = k + big.to(torch.int64)
    f = (m - 1.0) / (m + 1.0)
    f2 = f * f
    p = torch.full_like(f, _INV_ODD[0])
    for c in _INV_ODD[1:]:
        p = c + f2 * p
    p = 1.0 + f2 * p
    return k.to(torch.float64) * LN2 + (2.0 * f) * p


def normals(key, n):
    """n standard normals (Marsaglia's polar method; rejected elements retried, r = 1, 2, ...)."""
    return _polar(key, n, _u, plog, torch.float64)


def _polar(key, n, u, log, dtype):
    """prng.py's _polar: the polar method on the uniforms u and the portable log, in dtype."""
    out = torch.empty(n, dtype=dtype)
    todo = torch.arange(n, dtype=torch.int64)
    r = 0
    while todo.numel():
        c = 2 * (todo + _int64(r * n))
        a = 2.0 * u(key, c) - 1.0
        b = 2.0 * u(key, c + 1) - 1.0
        s = a * a + b * b
        ok = (s > 0.0) & (s < 1.0)
        sa = s[ok]
        # math.sqrt is correctly rounded, as IEEE 754 requires; torch.sqrt is not on every CPU
        # (an AVX-512 build is 1 ulp off for about 1 value in 150); the float64 root of a
        # float32 number, rounded to float32, is its float32 root
        roots = [math.sqrt(q) for q in (-2.0 * log(sa) / sa).tolist()]
        out[todo[ok]] = a[ok] * torch.tensor(roots, dtype=torch.float64).to(dtype)
        todo = todo[~ok]
        r += 1
    return out


def _u32(key, idx):
    """u32(key, i) in [0, 1) as float32: the top 24 bits of the output (prng.py's float32 path)."""
    z = _mix64(_int64(key) + (idx + 1) * _GAMMA64)
    return _shr(z, 40).to(torch.float32) * 2.0**-24


def _f32(v):
    """A float32 scalar tensor: arithmetic with it stays float32, each operation rounded once."""
    return torch.tensor(v, dtype=torch.float32)


def plog32(s):
    """plog in float32 for 0 < s < 1 (prng.py's plog32)."""
    fm, e = torch.frexp(s)
    m = fm * 2.0
    k = e.to(torch.int64) - 1
    big = m > _f32(SQRT2)
    m = torch.where(big, m / 2.0, m)
    k = k + big.to(torch.int64)
    f = (m - 1.0) / (m + 1.0)
    f2 = f * f
    inv = [_f32(1.0) / _f32(float(d)) for d in range(13, 2, -2)]
    p = torch.full_like(f, 0.0) + inv[0]
    for c in inv[1:]:
        p = c + f2 * p
    p = 1.0 + f2 * p
    return k.to(torch.float32) * _f32(LN2) + (2.0 * f) * p


def normals32(key, n):
    """n standard normals in float32 (prng.py's normals32; sqrt correctly rounded to float32)."""
    return _polar(key, n, _u32, plog32, torch.float32)


def init_tensor(scheme, shape, *, seed, k, fan_in, fan_out, low=-1.0, high=1.0, std=1.0,
                gain=1.0, value=None, dtype=torch.float64):  # fmt: skip
    """Initial values of parameter tensor number k, on the CPU (prng.py's scheme table)."""
    n = math.prod(shape)
    if scheme == "values":
        if isinstance(value, numbers.Real):
            out = torch.full(shape, float(value), dtype=torch.float64)
        else:
            out = torch.tensor(value, dtype=torch.float64).reshape(shape)
    elif scheme == "zeros":
        out = torch.zeros(shape, dtype=torch.float64)
    else:
        kind, a, b = distribution(scheme, fan_in, fan_out, low, high, std, gain)
        key = stream_key(seed, k)
        if dtype == torch.float32:  # float32 throughout, as prng.py's float32 path
            a, b = _f32(a), _f32(b)
            out = a * normals32(key, n) if kind == "normal" else a + (b - a) * uniforms32(key, n)
            return out.reshape(shape)
        out = a * normals(key, n) if kind == "normal" else a + (b - a) * uniforms(key, n)
        out = out.reshape(shape)
    return out.to(dtype)


# ---- weight files, read and written as the NumPy module does it --------------------------------
# Bytes, whatever the locale (latin-1 maps each byte to one character), no NUL byte, lines ending
# at "\n" only (a "\r" is a blank), numbers as C's strtod reads them, less hex.
def read_weights(path, shapes):
    """{name: float64 tensor} for every name of ``shapes`` from a weight file (any target's)."""
    lines = [ln for ln in _text_lines(path) if ln.strip(_BLANKS) and not ln.startswith("#")]
    arrays, i = {}, 0
    for name, shape in shapes.items():
        if i + 1 >= len(lines):
            raise ValueError(f"{path}: missing parameter {name}")
        head = _words(lines[i])
        if head[0] != name or tuple(_integer(s) for s in head[1:]) != shape:
            got = lines[i].strip(_BLANKS)
            raise ValueError(f"{path}: expected {name} {shape}, got {got[:60]!r}")
        words = _words(lines[i + 1])
        values = [_number(s) for s in words]
        if None in values:
            bad = words[values.index(None)]
            raise ValueError(f"{path}: {name}: not a number: {bad[:40]!r}")
        if len(values) != math.prod(shape):
            raise ValueError(f"{path}: {name} needs {math.prod(shape)} numbers, got {len(values)}")
        arrays[name] = torch.tensor(values, dtype=torch.float64).reshape(shape)
        i += 2
    return arrays


def write_weights(path, header, tensors):
    """Write ``header`` and each tensor as a name-and-shape line and a line of its values
    (17 significant digits: exact), as the NumPy module writes it (atomically for a regular
    file, in place for a device or FIFO: see safe_io.write_bytes)."""
    lines = [header]
    for name, value in tensors.items():
        lines.append(" ".join([name, *map(str, value.shape)]))
        flat = value.detach().to("cpu", torch.float64).reshape(-1).tolist()
        lines.append(" ".join(f"{v:.17g}" for v in flat))
    write_bytes(path, ("\n".join(lines) + "\n").encode("latin-1"))


# ---- elementwise helpers of the printed formulas -------------------------------------------------


def _step(x):
    """Heaviside step with H(0) = 0 as a float mask (relu'(0) = 0, as in PyTorch)."""
    return (x > 0).to(x.dtype)


def _log1pexp(u):
    """log(1 + exp(u)) without overflow: logaddexp(0, u), as the NumPy target computes it."""
    return torch.logaddexp(u.new_zeros(()), u)


_INVERSES = {}  # n -> 1/n as a float64 CPU scalar tensor


def _inverse(like, n):
    """1/n, to multiply the tensor ``like`` by in place: a cached float64 CPU scalar tensor where
    like is a plain tensor and n an int (eager mode: a tensor argument costs half what a Python
    number does, which becomes a new tensor at every call; a CPU scalar multiplies a tensor on
    any device, rounded to its dtype), else the Python number (torch.compile's fake tensors and
    symbolic sizes)."""
    if type(like) is not torch.Tensor or type(n) is not int:
        return 1.0 / n
    inverse = _INVERSES.get(n)
    if inverse is None:
        inverse = _INVERSES[n] = torch.tensor(1.0 / n, dtype=torch.float64, device="cpu")
    return inverse


def _linear_fill_defaults():
    """Make torch's fill-in of an op's default arguments linear in the op's arguments.

    Every call of a custom op whose autograd has a setup_context (ours) runs
    torch._library.utils.fill_defaults, which reads ``schema.arguments`` (a list of every
    argument, built anew in C++) once per argument: quadratic, about 10% of a training step of a
    small net (64-32-10, batch 32) in torch 2.13. This replaces it with the same loop over one
    read of that list: the same arguments, defaults and keywords, for every op of the process.
    Done once; nothing when torch has no such function (another version).
    """
    try:
        from torch._library import utils
    except ImportError:
        return
    slow = getattr(utils, "fill_defaults", None)
    if slow is None or getattr(slow, "linear", False):
        return

    def fill_defaults(schema, args, kwargs):
        new_args, new_kwargs = [], {}
        for i, info in enumerate(schema.arguments):
            if info.kwarg_only:
                name = info.name
                new_kwargs[name] = kwargs.get(name, info.default_value)
            else:
                new_args.append(args[i] if i < len(args) else info.default_value)
        return tuple(new_args), new_kwargs

    fill_defaults.linear = True
    fill_defaults.original = slow
    utils.fill_defaults = fill_defaults


def derived_op(qualname, forward):
    """torch.library.custom_op(qualname, forward, mutates_args=()), whose autograd kernel calls
    the registered setup_context and backward with less fixed cost per call.

    A custom op's own autograd kernel (torch/_library/autograd.py) wraps each call of the
    forward in a dataclass, Function.apply's Python checks, a redispatch through the
    dispatcher to a kernel wrapped in dynamo's disable and an aliasing check, and the fill-in of
    default arguments: about a fifth of a training step of a small net (64-32-10, batch 32). This
    one, while grad is on, some argument requires it and no functorch transform is active, goes
    straight to the C++ half of autograd.Function.apply with a Function whose forward calls the
    op's forward and the registered setup_context, and whose backward calls the registered
    backward (both read at call time: register_autograd works as on any custom op). Every other
    call (no grad, vmap and grad transforms, list arguments, keywords) takes the custom op's own
    kernel. The op is a CustomOpDef like any other: opcheck, register_fake, register_autograd,
    torch.compile. Without the torch internals this needs (another version), a plain custom_op.
    """
    try:
        from torch._library import autograd as library_autograd
        from torch._library.custom_ops import CustomOpDef
    except ImportError:
        CustomOpDef = None
    if not hasattr(CustomOpDef, "_register_autograd_dispatcher_impl"):
        return torch.library.custom_op(qualname, forward, mutates_args=())

    class DerivedOp(CustomOpDef):
        def _register_autograd_dispatcher_impl(self):
            fallback = library_autograd.make_autograd_impl(self._opoverload, self)
            schema = self._opoverload._schema
            if any(a.kwarg_only or not a.type.isSubtypeOf(torch._C.TensorType.get())
                   for a in schema.arguments):  # fmt: skip
                self._lib.impl(self._name, fallback, "Autograd", with_keyset=True)
                return
            op = self

            def setup_forward(ctx, *args):
                out = op._init_fn(*args)
                op._setup_context_fn(ctx=ctx, inputs=args, output=out)
                return out

            def backward(ctx, *grads):
                return op._backward_fn(ctx, *grads)

            name = f"GeneratedBackwardFor_{self._namespace}_{self._name}_default"
            methods = {"forward": staticmethod(setup_forward), "backward": staticmethod(backward)}
            function = type(name, (torch.autograd.Function,), methods)
            apply = super(torch.autograd.Function, function).apply  # the C++ apply

            def kernel(keyset, *args, **kwargs):
                if (not kwargs and op._setup_context_fn is not None
                        and op._backward_fn is not None and C.is_grad_enabled()
                        and C._any_requires_grad(*args)
                        and not C._are_functorch_transforms_active()):  # fmt: skip
                    return apply(*args)
                return fallback(keyset, *args, **kwargs)

            self._lib.impl(self._name, kernel, "Autograd", with_keyset=True)
            self._apply = apply

        def __call__(self, *args, **kwargs):
            # An eager call that the dispatcher would send straight to the Autograd kernel
            # above (no compiler, tracer, __torch_function__ override or mode, functorch
            # transform; grad on and wanted) calls its C++ apply without the dispatcher's
            # round trip through Python (OpOverload, boxing, the kernel): the same Function,
            # the same autograd node. Any other call goes through the op as usual.
            apply = self._apply
            if (apply is not None and not kwargs and self._setup_context_fn is not None
                    and self._backward_fn is not None and C.is_grad_enabled()
                    and not torch.compiler.is_compiling() and C._get_tracing_state() is None
                    and not C._has_torch_function_variadic(*args)
                    and not C._are_functorch_transforms_active()
                    and C._any_requires_grad(*args)):  # fmt: skip
                return apply(*args)
            return self._opoverload(*args, **kwargs)

    C = torch._C
    DerivedOp._apply = None

    namespace, name = qualname.split("::")
    schema = torch.library.infer_schema(forward, mutates_args=())
    op = DerivedOp(namespace, name, schema, forward, None)
    op.register_kernel(None)(forward)
    return op
