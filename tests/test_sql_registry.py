"""The SQL registries carry their facts: every op declares its null behaviour with its kernel, and
the function registry is what the README documents and what the differential fuzzer generates."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
import torch

from common.sql import types as T
from common.sql.evaluate import OPS
from common.sql.functions import FUNCTIONS
from common.sql.typecheck import check
from common.sql.vec import Ctx, kernel
from parity_tests.sql_fuzz import NOT_GENERATED, Generator, grammar_names, trap_table

README = Path(__file__).resolve().parents[1] / "README.md"


def test_a_kernel_cannot_be_registered_without_declaring_its_null_behaviour():
    with pytest.raises(TypeError, match="null_intolerant"):
        kernel("an_op_without_facts")
    assert "an_op_without_facts" not in OPS
    assert all(isinstance(op.null_intolerant, bool) for op in OPS.values())


def test_every_op_declared_null_intolerant_gives_null_where_an_argument_is_null():
    """Random expressions over the trap table (ANSI off): at every node whose op declares
    ``null_intolerant``, a row with a null argument is null; every op is met at least once."""
    table = trap_table(64)
    types = {n: T.sql_type_of_arrow(table.schema.field(n).type) for n in table.column_names}
    ctx = Ctx(table.num_rows, torch.device("cpu"))
    inputs = {n: ctx.column(table[n], typ) for n, typ in types.items()}
    generator, met, wrong = Generator(random.Random(3)), {"literal"}, set()

    def walk(node):  # evaluate's walk, checking each node against its arguments' values
        met.add(node.op)
        if node.op == "column":
            return inputs[node.params["name"]]
        args = [walk(a) for a in node.args]
        value = OPS[node.op].kernel(ctx, node, args)
        if args and OPS[node.op].null_intolerant:
            null_arg = ~torch.stack([ctx.valid(a) for a in args]).all(dim=0)
            if bool((null_arg & ctx.valid(value)).any()):
                wrong.add(node.op)
        return value

    rare = ["i1 = i2", "s1 <> s2", "d1 <=> f1", "lower(s1)"]  # rare in 500 roots: met for sure
    for expr in rare + [generator.root() for _ in range(500)]:
        walk(check(expr, types, False))
    assert not wrong, f"declared null_intolerant, yet non-null for a null argument: {sorted(wrong)}"
    assert set(OPS) <= met, f"never generated, so never checked: {sorted(set(OPS) - met)}"


def _readme_functions() -> set[str]:
    """The names in the first column of the README's SQL function table."""
    section = README.read_text().split('### `op = "sql"`', 1)[1].split("\n## ", 1)[0]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| ") and not line.startswith("| ---"):
            first = line.split(" | ", 1)[0]
            names.update(w.lower() for w in re.findall(r"[A-Za-z_][A-Za-z_0-9]*", first))
    return names


def test_every_registered_function_is_in_the_readme_table():
    missing = sorted(set(FUNCTIONS) - _readme_functions())
    assert not missing, f"README.md's SQL function table lacks: {missing}"


def test_every_registered_function_is_generated_by_the_fuzzer_or_excluded_with_a_reason():
    generated = grammar_names()
    missing = sorted(set(FUNCTIONS) - generated - set(NOT_GENERATED))
    assert not missing, f"parity_tests/sql_fuzz.py neither generates nor excludes: {missing}"
    stale = sorted(n for n in NOT_GENERATED if n not in FUNCTIONS or n in generated)
    assert not stale, f"NOT_GENERATED names functions that are unregistered or generated: {stale}"
    assert all(reason.strip() for reason in NOT_GENERATED.values())
