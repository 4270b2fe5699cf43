"""Runs compiled SQL cases through Spark and compares: the differential half of ``sql_fuzz``.

Many expressions go into one ``selectExpr`` per ANSI mode. Under ANSI the compiled side says which
rows raise; those rows are masked on the Spark side (``CASE WHEN rid IN (...) THEN NULL ELSE e END``,
which Spark evaluates lazily) so that the other rows still compare, and the error class of the first
raising row is checked by a one-row query. A batch that Spark rejects is bisected down to the
expressions at fault. Each disagreement is shrunk to the smallest subexpression that still
disagrees on that row.
"""

from __future__ import annotations

import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import sqlglot
from sqlglot import exp

from common.sql import SqlCompileError
from common.sql import types as T
from common.sql.typecheck import _SparkCalls
from parity_tests.sql_fuzz import ULP_BUDGET, Case, compile_case, root_function, same_value

BATCH = 120


@dataclass
class Disagreement:
    case: Case
    row: int | None
    spark: object
    compiled: object
    note: str = ""
    smallest: str = ""

    def describe(self, table: pa.Table) -> str:
        mode = "ANSI on" if self.case.ansi else "ANSI off"
        lines = [f"[{mode}] {self.case.expr}"]
        if self.row is not None:
            names = sorted(
                {c.name for c in sqlglot.parse_one(self.case.expr, read=_SparkCalls).find_all(exp.Column)}
            )
            inputs = {n: table[n][self.row].as_py() for n in names if n in table.column_names}
            lines.append(f"  row rid={self.row}: {inputs}")
        lines.append(f"  spark:    {self.spark!r}")
        lines.append(f"  compiled: {self.compiled!r}")
        if self.note:
            lines.append(f"  {self.note}")
        if self.smallest and self.smallest != self.case.expr:
            lines.append(f"  smallest disagreeing subexpression: {self.smallest}")
        return "\n".join(lines)


@dataclass
class Outcome:
    cases: int = 0
    rows_compared: int = 0
    error_classes_checked: int = 0
    max_ulps: dict[str, int] = field(default_factory=dict)
    java_digit_choices: list[tuple[str, str]] = field(default_factory=list)
    disagreements: list[Disagreement] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


def error_class(error: Exception) -> str:
    condition = getattr(error, "getCondition", lambda: None)()
    if condition:
        return condition.split(".")[0]
    match = re.search(r"\[([A-Z_]+)(?:\.[A-Z_]+)?\]", str(error))
    return match.group(1) if match else type(error).__name__


class SparkSide:
    """The trap table registered in Spark, and queries against it."""

    def __init__(self, spark, table: pa.Table, interpreted: bool = False):
        from pyspark.logger import PySparkLogger

        for name in ("SQLQueryContextLogger", "DataFrameQueryContextLogger"):  # expected errors: no noise
            PySparkLogger.getLogger(name).setLevel(logging.CRITICAL + 1)
        self.spark = spark
        self.table = table
        self.conf = (
            {"spark.sql.codegen.wholeStage": "false", "spark.sql.codegen.factoryMode": "NO_CODEGEN"}
            if interpreted
            else {}
        )
        self.saved = {k: spark.conf.get(k, None) for k in [*self.conf, "spark.sql.ansi.enabled"]}
        for key, value in self.conf.items():
            spark.conf.set(key, value)
        self.df = spark.createDataFrame(table)
        self.df = self.df.coalesce(1).cache()
        self.df.count()
        self.df.createOrReplaceTempView("sql_traps")

    def close(self) -> None:
        """Restores the session's settings and drops the cached table."""
        for key, value in self.saved.items():
            if value is None:
                self.spark.conf.unset(key)
            else:
                self.spark.conf.set(key, value)
        self.df.unpersist()

    def set_ansi(self, ansi: bool) -> None:
        self.spark.conf.set("spark.sql.ansi.enabled", "true" if ansi else "false")

    def select(self, exprs: list[str]) -> pa.Table:
        columns = ["rid", *[f"{e} AS e{k}" for k, e in enumerate(exprs)]]
        return self.df.selectExpr(*columns).toArrow().sort_by("rid")

    def one_row(self, expr: str, row: int) -> pa.Table:
        return self.df.where(f"rid = {row}").selectExpr(f"{expr} AS e0").toArrow()


def _masked(case: Case) -> str:
    if not case.error_rows:
        return case.expr
    rows = ", ".join(str(r) for r in case.error_rows)
    return f"CASE WHEN rid IN ({rows}) THEN NULL ELSE ({case.expr}) END"


def run(spark_side: SparkSide, pairs: list[tuple[bool, str]], max_error_checks: int = 40) -> Outcome:
    """Compiles and compares every (ansi, expression) on every row.

    Spark works on one batch in a background thread while the next batch compiles here.
    ``max_error_checks`` caps the one-row error-class queries per ANSI mode (each costs a Spark
    job); the other rows of the remaining erroring expressions are still compared.
    """
    outcome = Outcome()
    table = spark_side.table
    with ThreadPoolExecutor(max_workers=1) as spark_thread:
        pending = []
        for ansi in (False, True):
            pending.append(spark_thread.submit(spark_side.set_ansi, ansi))
            mode_cases, batch = [], []
            for case_ansi, expr in pairs:
                if case_ansi != ansi:
                    continue
                try:
                    case = compile_case(expr, ansi, table)
                except SqlCompileError as error:
                    outcome.refused.append(f"{expr}: {error}")
                    continue
                if case.planning_error:  # Spark fails any query holding it: compare the error alone
                    pending.append(spark_thread.submit(_check_error_class, spark_side, case, outcome))
                    outcome.cases += 1
                    continue
                batch.append(case)
                if len(batch) == BATCH:
                    pending.append(spark_thread.submit(_compare_batch, spark_side, batch, outcome))
                    mode_cases += batch
                    batch = []
            if batch:
                pending.append(spark_thread.submit(_compare_batch, spark_side, batch, outcome))
                mode_cases += batch
            erroring = [c for c in mode_cases if c.error_rows][:max_error_checks]
            for case in erroring:
                pending.append(spark_thread.submit(_check_error_class, spark_side, case, outcome))
            outcome.cases += len(mode_cases)
        for future in pending:
            future.result()
    for d in outcome.disagreements:
        d.smallest = shrink(spark_side, d)
    return outcome


def _compare_batch(side: SparkSide, batch: list[Case], outcome: Outcome) -> None:
    try:
        result = side.select([_masked(c) for c in batch])
    except Exception as error:  # noqa: BLE001 - Spark raised: find the expressions at fault
        if len(batch) == 1:
            case = batch[0]
            outcome.disagreements.append(
                Disagreement(
                    case,
                    None,
                    f"raised {error_class(error)}",
                    f"no error (type {case.spark_type})",
                    note=str(error).splitlines()[0][:300],
                )
            )
            return
        half = len(batch) // 2
        _compare_batch(side, batch[:half], outcome)
        _compare_batch(side, batch[half:], outcome)
        return
    for k, case in enumerate(batch):
        column = result.column(f"e{k}")
        spark_type = T.sql_type_of_arrow(column.type)
        if spark_type != case.spark_type:
            outcome.disagreements.append(
                Disagreement(case, None, f"type {column.type}", f"type {case.spark_type}")
            )
            continue
        _compare_values(case, plain(column), outcome)


def plain(column: pa.Array | pa.ChunkedArray) -> list:
    """Python values; dates and timestamps as their integers (Spark's range exceeds Python's)."""
    if pa.types.is_date32(column.type):
        column = column.cast(pa.int32())
    elif pa.types.is_timestamp(column.type):
        column = column.cast(pa.int64())
    return column.to_pylist()


def _compare_values(case: Case, spark_values: list, outcome: Outcome) -> None:
    ours = plain(case.values)
    function = root_function(case.expr)
    budget = ULP_BUDGET.get(function, 0) if function else 0
    skip = set(case.error_rows)
    for row, (a, b) in enumerate(zip(spark_values, ours, strict=True)):
        if row in skip:
            continue
        outcome.rows_compared += 1
        equal, ulps = same_value(a, b, case.spark_type, budget)
        if not equal and case.java_digits and _same_float_text(a, b, case.java_digits):
            outcome.java_digit_choices.append((a, b))
            continue
        if function and ulps:
            outcome.max_ulps[function] = max(outcome.max_ulps.get(function, 0), ulps)
        if not equal:
            outcome.disagreements.append(Disagreement(case, row, a, b))
            return  # one row per expression is enough to reproduce


def _same_float_text(a, b, width: str) -> bool:
    """Both texts name the same number: Java 17 printed other (longer) digits than the shortest."""
    try:
        return (
            a is not None and b is not None and np.float32(a) == np.float32(b)
            if width == "float"
            else float(a) == float(b)
        )
    except ValueError:
        return False


def _check_error_class(side: SparkSide, case: Case, outcome: Outcome) -> None:
    row, expected = case.error_rows[0], case.error_classes[0]
    outcome.error_classes_checked += 1
    try:
        value = side.one_row(case.expr, row).column(0)
    except Exception as error:  # noqa: BLE001
        if error_class(error) != expected:
            outcome.disagreements.append(
                Disagreement(case, row, f"raised {error_class(error)}", f"raised {expected}")
            )
        return
    outcome.disagreements.append(
        Disagreement(case, row, plain(value)[0] if len(value) else None, f"raised {expected}")
    )


def shrink(side: SparkSide, d: Disagreement) -> str:
    """The shortest subexpression that still disagrees on the row (the expression if none does)."""
    if d.row is None:
        return d.case.expr
    tree = sqlglot.parse_one(d.case.expr, read=_SparkCalls)
    subs = sorted(
        {
            s.sql(dialect="spark")
            for s in tree.walk()
            if not isinstance(
                s, (exp.Column, exp.Literal, exp.Identifier, exp.DataType, exp.Null, exp.Boolean, exp.Var)
            )
        },
        key=len,
    )
    one = side.table.slice(d.row, 1)
    side.set_ansi(d.case.ansi)
    for sub in subs:
        try:
            ours = compile_case(sub, d.case.ansi, one)
        except Exception:  # noqa: BLE001 - not a well-typed expression on its own
            continue
        try:
            theirs = side.one_row(sub, d.row).column(0)
            theirs_value, theirs_type = plain(theirs)[0], T.sql_type_of_arrow(theirs.type)
        except Exception as error:  # noqa: BLE001
            if ours.error_classes[:1] != [error_class(error)]:
                return sub
            continue
        if ours.error_rows or theirs_type != ours.spark_type:
            return sub
        if not same_value(theirs_value, plain(ours.values)[0], ours.spark_type, 0)[0]:
            return sub
    return d.case.expr
