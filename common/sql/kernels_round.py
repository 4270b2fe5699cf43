"""``round`` (HALF_UP) and ``bround`` (HALF_EVEN) as Spark computes them.

Doubles round their shortest decimal text (``BigDecimal(Double.toString(x)).setScale``), so
round(2.675, 2) = 2.68. Most rows are far from a tie and round in torch; the few whose scaled value
lies within a few ulps of .5 are redone exactly with ``decimal`` on the host. Integers round with
integer arithmetic; a result outside the type is ARITHMETIC_OVERFLOW under ANSI and wraps without.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal, localcontext

import torch

from common.sql import types as T
from common.sql.kernels_numeric import _overflow
from common.sql.vec import Ctx, Vec, kernel


def round_double(x: torch.Tensor, scale: int, mode: str) -> torch.Tensor:
    power = torch.tensor(10.0 ** abs(scale), dtype=x.dtype, device=x.device)
    scaled = (x * power if scale >= 0 else x / power).abs()
    whole = torch.floor(scaled)
    frac = scaled - whole
    up = frac > 0.5
    if mode == "half_even":
        up = up | ((frac == 0.5) & (torch.remainder(whole, 2) == 1))
    rounded = torch.copysign(whole + up.to(x.dtype), x)
    rounded = (rounded / power if scale >= 0 else rounded * power) + 0.0  # + 0.0: -0.0 becomes 0.0
    unchanged = ~torch.isfinite(x) | (scaled >= 2.0**54)
    near_tie = ~unchanged & ((frac - 0.5).abs() <= scaled * 2.0**-50)
    out = torch.where(unchanged, x, rounded)
    if bool(near_tie.any()):
        rows = near_tie.nonzero().squeeze(1)
        exact = [_round_decimal(v, scale, mode) for v in x[rows].cpu().tolist()]
        out[rows] = torch.tensor(exact, dtype=x.dtype).to(x.device)
    return out


def _round_decimal(value: float, scale: int, mode: str) -> float:
    with localcontext() as ctx:
        ctx.prec = 400
        quantum = Decimal(1).scaleb(-scale)
        rounding = ROUND_HALF_UP if mode == "half_up" else ROUND_HALF_EVEN
        return float(Decimal(repr(value)).quantize(quantum, rounding=rounding)) + 0.0


def _round_integral(ctx: Ctx, a: Vec, typ: str, scale: int, mode: str, ansi: bool) -> Vec:
    x = a.data.to(torch.int64)
    err = a.err
    if scale <= -19:  # 10**19 exceeds a long: only |x| >= 5e18 rounds away from 0, and overflows
        half = 5 * 10**18
        if scale == -19:  # compare without abs(): abs(MIN) overflows
            tie = (x == half) | (x == -half)
            away = (x > half) | (x < -half) | (tie & (mode == "half_up"))
        else:
            away = torch.zeros_like(x, dtype=torch.bool)
        wrapped = torch.full_like(x, (10**19 + 2**63) % 2**64 - 2**63)
        out = torch.where(away, torch.where(x > 0, wrapped, -wrapped), torch.zeros_like(x))
        if ansi:
            err = ctx.raise_where(err, away & ctx.ok(a), "ARITHMETIC_OVERFLOW")
        return Vec(typ, out.to(a.data.dtype), a.valid, err)
    p = 10 ** (-scale)
    q = torch.div(x, p, rounding_mode="trunc")
    r = (x - q * p).abs() * 2
    step = torch.where(x < 0, -torch.ones_like(x), torch.ones_like(x))
    up = r >= p if mode == "half_up" else (r > p) | ((r == p) & (torch.remainder(q, 2) != 0))
    q = q + torch.where(up, step, torch.zeros_like(x))
    pp = torch.full_like(q, p)
    out = q * pp
    over = _overflow(T.BIGINT, "mul", q, pp, out)
    if typ == T.INT:
        low, high = T.INT_RANGE[T.INT]
        over = over | (out < low) | (out > high)
    if ansi:
        err = ctx.raise_where(err, over & ctx.ok(a), "ARITHMETIC_OVERFLOW")
    return Vec(typ, out.to(a.data.dtype), a.valid, err)


@kernel("round", null_intolerant=True)
def round_(ctx: Ctx, node, args):
    (a,) = args
    scale, mode = node.params["scale"], node.params["mode"]
    if node.type in T.INTEGRAL:
        if scale >= 0:
            return a
        return _round_integral(ctx, a, node.type, scale, mode, node.params["ansi"])
    out = round_double(a.data.to(torch.float64), scale, mode).to(a.data.dtype)
    return Vec(node.type, out, a.valid, a.err)
