"""The SQL compiler against Spark itself: random expressions over a table of traps, and every
expression that ever disagreed (``sql_regressions.txt``), under ANSI on and off.

``SQL_DIFF_EXPRESSIONS`` raises the number of generated expressions (default 5000, half per ANSI
mode), ``SQL_DIFF_SEED`` picks another sequence, ``SQL_DIFF_CODEGEN=1`` runs the generated ones
through Spark's code generation instead of its interpreter (slower to compile; the regression file
always runs with code generation).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from parity_tests.sql_differential import SparkSide, run
from parity_tests.sql_fuzz import ULP_BUDGET, Generator, trap_table

EXPRESSIONS = int(os.environ.get("SQL_DIFF_EXPRESSIONS", "5000"))
SEED = int(os.environ.get("SQL_DIFF_SEED", "20261201"))
CODEGEN = os.environ.get("SQL_DIFF_CODEGEN") == "1"
REGRESSIONS = Path(__file__).with_name("sql_regressions.txt")


def load_regressions() -> list[tuple[bool, str]]:
    """(ansi, expression) per line ``on|expr`` or ``off|expr``; # starts a comment."""
    cases = []
    for line in REGRESSIONS.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            mode, expr = line.split("|", 1)
            cases.append((mode.strip() == "on", expr.strip()))
    return cases


def _compare(spark, pairs, interpreted: bool):
    table = trap_table()
    side = SparkSide(spark, table, interpreted=interpreted)
    try:
        outcome = run(side, pairs)
    finally:
        side.close()
    assert not outcome.refused, "the compiler refused generated expressions:\n" + "\n".join(
        outcome.refused[:20]
    )
    report = "\n\n".join(d.describe(table) for d in outcome.disagreements[:25])
    assert not outcome.disagreements, f"{len(outcome.disagreements)} disagreement(s) with Spark:\n{report}"
    for function, ulps in outcome.max_ulps.items():
        assert ulps <= ULP_BUDGET[function]
    print(
        f"\nsql differential: {outcome.cases} expressions, {outcome.rows_compared} rows compared, "
        f"{outcome.error_classes_checked} error classes checked, "
        f"max ULPs {dict(sorted(outcome.max_ulps.items()))}, "
        f"{len(outcome.java_digit_choices)} Java 17 digit choices, "
        f"e.g. {sorted(set(outcome.java_digit_choices))[:4]}"
    )
    return outcome


@pytest.mark.spark
@pytest.mark.slow
def test_generated_expressions_match_spark(spark):
    generator = Generator(random.Random(SEED))
    pairs = [(k % 2 == 1, generator.root()) for k in range(EXPRESSIONS)]
    outcome = _compare(spark, pairs, interpreted=not CODEGEN)
    assert outcome.cases == EXPRESSIONS
    assert outcome.rows_compared > EXPRESSIONS * 32  # most rows of most expressions are compared


@pytest.mark.spark
def test_every_expression_that_ever_disagreed_now_agrees(spark):
    _compare(spark, load_regressions(), interpreted=False)
