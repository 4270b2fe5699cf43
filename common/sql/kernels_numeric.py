"""Numeric, comparison, logic and conditional kernels: torch on the batch's device.

Each kernel carries Spark's semantics: integer arithmetic is exact in the native dtype and either
raises ARITHMETIC_OVERFLOW (ANSI) or wraps (Java's two's complement); division by zero is null or
DIVIDE_BY_ZERO; NaN equals NaN and sorts above every number; ``%`` takes the dividend's sign;
AND, OR, CASE, COALESCE and IN stop evaluating where Spark stops, so an error there is masked.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from common.sql import types as T
from common.sql.vec import Ctx, Vec, and_masks, kernel

_I64_MIN = -(2**63)
_TWO63 = 2.0**63


def _dtype(typ: str) -> torch.dtype:
    return getattr(torch, T.TORCH_DTYPES[typ])


def _const(ctx: Ctx, value, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(value, dtype=like.dtype, device=like.device)


# ---- arithmetic --------------------------------------------------------------------------------


def _overflow(typ: str, op: str, a: torch.Tensor, b: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Rows where the wrapped integer result ``r`` of ``a op b`` differs from the exact one."""
    if op == "add":
        return ((a ^ r) & (b ^ r)) < 0
    if op == "sub":
        return ((a ^ b) & (a ^ r)) < 0
    # mul: r / a must give b back; a = 0 and a = -1 are checked without dividing (MIN / -1 traps)
    minimum = torch.iinfo(a.dtype).min
    safe = torch.where((a == 0) | (a == -1), torch.ones_like(a), a)
    back = torch.div(r, safe, rounding_mode="trunc")
    return torch.where(
        a == 0, torch.zeros_like(a, dtype=torch.bool), torch.where(a == -1, b == minimum, back != b)
    )


@kernel("add", "sub", "mul", null_intolerant=True)
def arithmetic(ctx: Ctx, node, args):
    a, b = args
    err = ctx.strict_err(args)
    valid = and_masks(a.valid, b.valid)
    x, y = a.data, b.data
    r = {"add": torch.add, "sub": torch.sub, "mul": torch.mul}[node.op](x, y)
    if node.type in T.INTEGRAL:
        over = _overflow(node.type, node.op, x, y, r)
        if node.params["ansi"]:
            err = ctx.raise_where(err, over & ctx.ok(a) & ctx.ok(b), "ARITHMETIC_OVERFLOW")
    return Vec(node.type, r, valid, err)


def _zero_divisor(ctx, node, args, error_class):
    """Spark's DivModLike order: the divisor first (null or, without ANSI, zero -> null), then the
    dividend (null -> null), then ANSI's error for a zero divisor."""
    a, b = args
    zero = b.data == 0
    b_ok, a_ok = ctx.ok(b), ctx.ok(a)
    ansi = node.params["ansi"]
    a_evaluated = b_ok if ansi else b_ok & ~zero
    err = ctx.errors((b.err, None), (a.err, a_evaluated))
    valid = and_masks(a.valid, b.valid)
    valid = ~zero if valid is None else valid & ~zero
    if ansi:
        err = ctx.raise_where(err, a_evaluated & a_ok & zero, error_class)
    return zero, valid, err


@kernel("divide", null_intolerant=True)
def divide(ctx: Ctx, node, args):
    zero, valid, err = _zero_divisor(ctx, node, args, "DIVIDE_BY_ZERO")
    return Vec(T.DOUBLE, args[0].data / args[1].data, valid, err)


@kernel("int_divide", null_intolerant=True)
def int_divide(ctx: Ctx, node, args):
    a, b = args
    zero, valid, err = _zero_divisor(ctx, node, args, "DIVIDE_BY_ZERO")
    x, y = a.data, b.data
    minus_one = y == -1
    safe = torch.where(zero | minus_one, torch.ones_like(y), y)
    q = torch.where(minus_one, -x, torch.div(x, safe, rounding_mode="trunc"))  # -MIN wraps to MIN, as Java
    if node.params["ansi"]:
        over = minus_one & (x == _I64_MIN) & ctx.ok(a) & ctx.ok(b)
        err = ctx.raise_where(err, over, "ARITHMETIC_OVERFLOW")
    return Vec(T.BIGINT, q, valid, err)


def exact_on_cpu(numpy_fn, torch_fn, *tensors: torch.Tensor) -> torch.Tensor:
    """``torch_fn`` on CUDA (IEEE-exact there); NumPy's IEEE-exact kernel on the CPU, where torch's
    vectorised float64 ``sqrt`` is not correctly rounded (sqrt(0.5) ends in ...475, not ...476)
    and its ``fmod`` returns NaN for a subnormal divisor."""
    if tensors[0].device.type != "cpu":
        return torch_fn(*tensors)
    with np.errstate(invalid="ignore", divide="ignore"):  # NaN results are values here, not warnings
        return torch.from_numpy(numpy_fn(*(t.numpy() for t in tensors)))


def _remainder(x: torch.Tensor, y: torch.Tensor, integral: bool) -> torch.Tensor:
    if integral:  # Java's %: the dividend's sign; MIN % -1 is 0 (C would trap)
        safe = torch.where((y == 0) | (y == -1), torch.ones_like(y), y)
        return torch.where(y == -1, torch.zeros_like(x), torch.fmod(x, safe))
    return exact_on_cpu(np.fmod, torch.fmod, x, y)


@kernel("mod", null_intolerant=True)
def mod(ctx: Ctx, node, args):
    zero, valid, err = _zero_divisor(ctx, node, args, "REMAINDER_BY_ZERO")
    return Vec(node.type, _remainder(args[0].data, args[1].data, node.type in T.INTEGRAL), valid, err)


@kernel("pmod", null_intolerant=True)
def pmod(ctx: Ctx, node, args):
    zero, valid, err = _zero_divisor(ctx, node, args, "REMAINDER_BY_ZERO")
    x, n = args[0].data, args[1].data
    integral = node.type in T.INTEGRAL
    r = _remainder(x, n, integral)
    r = torch.where(r < 0, _remainder(r + n, n, integral), r)  # Spark: if (r < 0) (r + n) % n else r
    return Vec(node.type, r, valid, err)


@kernel("neg", null_intolerant=True)
def neg(ctx: Ctx, node, args):
    (a,) = args
    err = a.err
    if node.type in T.INTEGRAL and node.params["ansi"]:
        err = ctx.raise_where(
            err, (a.data == torch.iinfo(a.data.dtype).min) & ctx.ok(a), "ARITHMETIC_OVERFLOW"
        )
    return Vec(node.type, -a.data, a.valid, err)


@kernel("abs", null_intolerant=True)
def abs_(ctx: Ctx, node, args):
    (a,) = args
    err = a.err
    if node.type in T.INTEGRAL and node.params["ansi"]:
        err = ctx.raise_where(
            err, (a.data == torch.iinfo(a.data.dtype).min) & ctx.ok(a), "ARITHMETIC_OVERFLOW"
        )
    return Vec(node.type, torch.abs(a.data), a.valid, err)


@kernel("sign", null_intolerant=True)
def sign(ctx: Ctx, node, args):
    (a,) = args
    x = a.data  # Math.signum: -0.0 and NaN come back unchanged
    out = torch.where(x > 0, _const(ctx, 1.0, x), torch.where(x < 0, _const(ctx, -1.0, x), x))
    return Vec(T.DOUBLE, out, a.valid, a.err)


def _unary_math(fn, null_at_or_below=None):
    def run(ctx: Ctx, node, args):
        (a,) = args
        x = a.data
        valid = a.valid
        if null_at_or_below is not None:  # Spark: log(x <= 0) is null, not -inf or NaN
            defined = ~(x <= null_at_or_below)
            x = torch.where(defined, x, torch.ones_like(x))
            valid = defined if valid is None else valid & defined
        return Vec(T.DOUBLE, fn(x), valid, a.err)

    return run


kernel("sqrt", null_intolerant=True)(_unary_math(lambda x: exact_on_cpu(np.sqrt, torch.sqrt, x)))
kernel("exp", null_intolerant=True)(_unary_math(torch.exp))
kernel("expm1", null_intolerant=True)(_unary_math(torch.expm1))
kernel("ln", null_intolerant=True)(_unary_math(torch.log, 0.0))
kernel("log10", null_intolerant=True)(_unary_math(torch.log10, 0.0))
kernel("log2", null_intolerant=True)(
    _unary_math(lambda x: torch.log(x) / math.log(2.0), 0.0)
)  # Spark: log(x) / log(2)
kernel("log1p", null_intolerant=True)(_unary_math(torch.log1p, -1.0))


@kernel("log_base", null_intolerant=True)
def log_base(ctx: Ctx, node, args):
    base, x = args
    err = ctx.strict_err(args)
    defined = ~(base.data <= 0) & ~(x.data <= 0)
    valid = and_masks(base.valid, x.valid, defined)
    one = torch.ones_like(x.data)
    out = torch.log(torch.where(defined, x.data, one)) / torch.log(torch.where(defined, base.data, one))
    return Vec(T.DOUBLE, out, valid, err)


@kernel("pow", null_intolerant=True)
def pow_(ctx: Ctx, node, args):
    a, b = args
    x, y = a.data, b.data
    out = torch.pow(x, y)
    # StrictMath.pow differs from C's pow: pow(1, NaN) and pow(+-1, +-inf) are NaN in Java
    java_nan = (torch.isnan(y) | ((x.abs() == 1) & torch.isinf(y))) & (y != 0)
    out = torch.where(java_nan, _const(ctx, math.nan, out), out)
    return Vec(T.DOUBLE, out, and_masks(a.valid, b.valid), ctx.strict_err(args))


def _to_long(ctx: Ctx, f: torch.Tensor) -> torch.Tensor:
    """Java's (long) of a double: NaN -> 0, saturating at the int64 bounds."""
    clipped = torch.where(torch.isnan(f), torch.zeros_like(f), f).clamp(-_TWO63, _TWO63)
    as_long = torch.where(clipped >= _TWO63, torch.zeros_like(clipped), clipped).to(torch.int64)
    big = torch.full_like(as_long, 2**63 - 1)
    return torch.where(clipped >= _TWO63, big, as_long)


@kernel("floor", "ceil", null_intolerant=True)
def floor_ceil(ctx: Ctx, node, args):
    (a,) = args
    f = torch.floor(a.data) if node.op == "floor" else torch.ceil(a.data)
    err = a.err
    if node.params["ansi"]:
        over = ((f >= _TWO63) | (f < -_TWO63)) & ctx.ok(a)  # Spark: 2**63 itself does not fit a long
        err = ctx.raise_where(err, over, "ARITHMETIC_OVERFLOW")
    return Vec(T.BIGINT, _to_long(ctx, f), a.valid, err)


# ---- comparison and logic ----------------------------------------------------------------------


def _float_lt(x, y):
    return ~torch.isnan(x) & (torch.isnan(y) | (x < y))


def _float_eq(x, y):
    return (x == y) | (torch.isnan(x) & torch.isnan(y))


def compare_values(ctx: Ctx, op: str, a: Vec, b: Vec) -> torch.Tensor:
    """``a op b`` under Spark's ordering (NaN = NaN, NaN above all, -0.0 = 0.0); no nulls handled."""
    if a.type == T.STRING:
        import pyarrow.compute as pc

        fn = {
            "eq": pc.equal,
            "neq": pc.not_equal,
            "lt": pc.less,
            "lte": pc.less_equal,
            "gt": pc.greater,
            "gte": pc.greater_equal,
        }[op]
        result = pc.fill_null(fn(a.data, b.data), False)
        return ctx.from_host(result.to_numpy(zero_copy_only=False))
    x, y = a.data, b.data
    if a.type in T.FRACTIONAL and b.constant is not None and not math.isnan(b.constant[0]):
        # against a number: IEEE comparison is Spark's, except that NaN is above every number
        if op in ("eq", "neq", "lt", "lte"):
            return {"eq": torch.eq, "neq": torch.ne, "lt": torch.lt, "lte": torch.le}[op](x, y)
        return (torch.gt(x, y) if op == "gt" else torch.ge(x, y)) | torch.isnan(x)
    if a.type in T.FRACTIONAL:
        eq = _float_eq(x, y)
        if op == "eq":
            return eq
        if op == "neq":
            return ~eq
        lt = _float_lt(x, y) if op in ("lt", "lte") else _float_lt(y, x)
        return lt | eq if op in ("lte", "gte") else lt
    if a.type == T.BOOLEAN:
        x, y = x.to(torch.int8), y.to(torch.int8)
    return {
        "eq": torch.eq,
        "neq": torch.ne,
        "lt": torch.lt,
        "lte": torch.le,
        "gt": torch.gt,
        "gte": torch.ge,
    }[op](x, y)


@kernel("eq", "neq", "lt", "lte", "gt", "gte", null_intolerant=True)
def comparison(ctx: Ctx, node, args):
    a, b = args
    return Vec(T.BOOLEAN, compare_values(ctx, node.op, a, b), ctx.all_valid(args), ctx.strict_err(args))


@kernel("eq_null_safe", null_intolerant=False)
def eq_null_safe(ctx: Ctx, node, args):
    a, b = args
    va, vb = ctx.valid(a), ctx.valid(b)
    equal = compare_values(ctx, "eq", a, b)
    out = torch.where(va & vb, equal, ~va & ~vb)
    return Vec(T.BOOLEAN, out, None, ctx.strict_err(args, lazy=False))


@kernel("and", "or", null_intolerant=False)
def and_or(ctx: Ctx, node, args):
    a, b = args
    va, vb = ctx.valid(a), ctx.valid(b)
    x, y = a.data & va, b.data & vb  # value where known
    if node.op == "and":
        decided = va & ~a.data  # false AND anything: the right side is not evaluated
        out_false = (va & ~a.data) | (vb & ~b.data)
        out = va & vb & x & y
        valid = out_false | (va & vb)
        value = out & ~out_false
    else:
        decided = va & a.data
        out_true = (va & a.data) | (vb & b.data)
        valid = out_true | (va & vb)
        value = out_true
    err = ctx.errors((a.err, None), (b.err, ~decided))
    return Vec(T.BOOLEAN, value, valid, err)


@kernel("not", null_intolerant=True)
def not_(ctx: Ctx, node, args):
    (a,) = args
    return Vec(T.BOOLEAN, ~a.data, a.valid, a.err)


@kernel("is_null", null_intolerant=False)
def is_null(ctx: Ctx, node, args):
    (a,) = args
    return Vec(T.BOOLEAN, ~ctx.valid(a), None, a.err)


@kernel("isnan", null_intolerant=False)
def isnan(ctx: Ctx, node, args):
    (a,) = args
    return Vec(T.BOOLEAN, torch.isnan(a.data) & ctx.valid(a), None, a.err)


@kernel("in", null_intolerant=False)
def in_(ctx: Ctx, node, args):
    value, *items = args
    v_ok = ctx.ok(value)
    found = torch.zeros(ctx.rows, dtype=torch.bool, device=ctx.device)
    has_null = torch.zeros_like(found)
    pairs = [(value.err, None)]
    for item in items:
        evaluated = v_ok & ~found  # Spark stops at the first match
        pairs.append((item.err, evaluated))
        i_ok = ctx.ok(item)
        match = evaluated & i_ok & compare_values(ctx, "eq", value, item)
        has_null |= evaluated & ~ctx.valid(item)
        found |= match
    valid = ctx.valid(value) & (found | ~has_null)
    return Vec(T.BOOLEAN, found, valid, ctx.errors(*pairs))


# ---- conditionals ------------------------------------------------------------------------------


def select(ctx: Ctx, mask: torch.Tensor, a: Vec, b: Vec) -> Vec:
    """Rows of ``a`` where ``mask``, else of ``b`` (values and validity; errors are the caller's,
    who returns a new Vec with them: an input Vec may be a column shared by the whole tree)."""
    if a.type == T.STRING:
        import pyarrow.compute as pc

        return Vec(T.STRING, pc.if_else(ctx.arrow_mask(mask), a.data, b.data))
    data = torch.where(mask, a.data, b.data)
    if a.valid is None and b.valid is None:
        return Vec(a.type, data)
    return Vec(a.type, data, torch.where(mask, ctx.valid(a), ctx.valid(b)))


@kernel("case", null_intolerant=False)
def case(ctx: Ctx, node, args):
    *pairs, default = args
    conditions, values = pairs[0::2], pairs[1::2]
    hits = [cond.data if cond.valid is None else cond.data & cond.valid for cond in conditions]
    out = default
    for k in range(len(values) - 1, -1, -1):  # from the last branch back: the first true one wins
        out = select(ctx, hits[k], values[k], out)
    if all(a.err is None for a in args):
        return out
    # errors: condition k is evaluated while no earlier one was true; a value only where chosen
    err_pairs, undecided = [], torch.ones(ctx.rows, dtype=torch.bool, device=ctx.device)
    for cond, value, hit in zip(conditions, values, hits, strict=True):
        err_pairs.append((cond.err, undecided))
        clean = undecided if cond.err is None else undecided & (cond.err == 0)
        err_pairs.append((value.err, clean & hit))
        undecided = clean & ~hit
    err_pairs.append((default.err, undecided))
    return Vec(out.type, out.data, out.valid, ctx.errors(*err_pairs))


@kernel("coalesce", null_intolerant=False)
def coalesce(ctx: Ctx, node, args):
    out = args[-1]
    for a in reversed(args[:-1]):
        out = select(ctx, ctx.valid(a), a, out)
    pairs, still_null = [], None
    for a in args:  # argument k is evaluated only where all before it were null
        pairs.append((a.err, still_null))
        null = ~ctx.valid(a) if a.err is None else ~ctx.valid(a) & (a.err == 0)
        still_null = null if still_null is None else still_null & null
    return Vec(out.type, out.data, out.valid, ctx.errors(*pairs))


@kernel("nanvl", null_intolerant=False)
def nanvl(ctx: Ctx, node, args):
    a, b = args
    nan = torch.isnan(a.data) & ctx.ok(a)
    out = select(ctx, nan, b, a)
    return Vec(out.type, out.data, out.valid, ctx.errors((a.err, None), (b.err, nan)))


def _greater(ctx: Ctx, a: Vec, b: Vec) -> torch.Tensor:
    return compare_values(ctx, "gt", a, b)


@kernel("greatest", "least", null_intolerant=False)
def extremum(ctx: Ctx, node, args):
    op = "gt" if node.op == "greatest" else "lt"
    out = args[0]
    for a in args[1:]:  # a later value replaces only a strictly greater (smaller) one, or a null
        take = ctx.valid(a) & (~ctx.valid(out) | compare_values(ctx, op, a, out))
        out = select(ctx, take, a, out)
    return Vec(out.type, out.data, out.valid, ctx.strict_err(args, lazy=False))
