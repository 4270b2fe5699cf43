"""Prove that two to four batch-prediction outputs hold the same predictions, or say where not.

Rows are matched on the key, never by position. The comparison streams in two passes so that
memory stays bounded whatever the output size:

1. each side is read batch by batch and its rows are hash-partitioned by key into bucket
   files on disk (``common.parity.spill``), while score distributions are sampled on the way;
2. one bucket of every side is loaded at a time, keys are joined, and every common column is
   compared with type-aware rules (``common.parity.column_diff``).

With a named reference, each other side is compared against it and the others against each
other, so the report can say which engine left the reference.
"""

from __future__ import annotations

import contextlib
import itertools
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from common.errors import InputError, JobError
from common.parity.distribution import ScoreObserver, histogram, ks_statistic, psi
from common.parity.pair import PairComparison, count_duplicates, key_index
from common.parity.report_data import ParityReport, ScoreDistribution, SideSummary
from common.parity.spill import SideSource, bucket_count, open_side, read_bucket, spill_side
from common.parity.types import ColumnPlan, common_type, is_float_like, plan_column
from common.spec.parity import ParitySettings

DEFAULT_BUCKET_ROWS = 250_000


@dataclass(frozen=True)
class ColumnChoice:
    """Which columns a comparison looks at (``compare --columns / --ignore / --rename``).

    Attributes:
        columns: Compare only these (besides the key); each one missing on a side fails.
        ignore: Never compare these.
        rename: Old name to new name, applied on every side that has the old name (e.g. a
            production output's ``prediction`` compared with a run's ``score``).
        one_sided_fails: Whether a column on one side only fails the comparison (parity of one
            job's runs, whose outputs must have one schema) or is only reported (``compare`` of
            outputs written by different jobs), unless ``columns`` names it.
    """

    columns: tuple[str, ...] | None = None
    ignore: tuple[str, ...] = ()
    rename: Mapping[str, str] = field(default_factory=dict)
    one_sided_fails: bool = True

    def check(self, sources: Mapping[str, SideSource], keys: tuple[str, ...]) -> None:
        """A name that no side has, or a key in ``ignore``, is an error, never silently ignored."""
        present = {n for s in sources.values() for n in s.schema.names}
        for flag, names in (("--columns", self.columns or ()), ("--ignore", self.ignore)):
            for name in names:
                if name not in present:
                    raise JobError(
                        f"{flag}: no column '{name}' in the outputs ({', '.join(sorted(present))})"
                    )
                if flag == "--ignore" and name in keys:
                    raise JobError(f"--ignore: '{name}' is a key column; the key is always compared")

    def keeps(self, name: str) -> bool:
        return name not in self.ignore and (self.columns is None or name in self.columns)


def compare_outputs(
    sides: Mapping[str, str | Path],
    key: str | Sequence[str],
    settings: ParitySettings = ParitySettings(),
    reference: str | None = None,
    work_dir: Path | None = None,
    *,
    bucket_rows: int = DEFAULT_BUCKET_ROWS,
    choice: ColumnChoice = ColumnChoice(),
) -> ParityReport:
    """Compare the Parquet outputs in ``sides`` row by row, matched on ``key``.

    Args:
        sides: Side name (``"spark"``, ``"ray"``, ``"reference"``, ...) to a Parquet file or
            directory; two to four sides (``MAX_SIDES``).
        key: Column(s) that identify a row in every output.
        settings: Tolerances and report options.
        reference: With three or more sides, the side the others are judged against.
        work_dir: Where the spill files go (a temporary folder inside it, removed afterwards);
            the system temp folder when None.
        bucket_rows: Target rows per spill bucket; lower means less memory, more files.
        choice: Which columns are compared, under which names, and whether a column on one
            side only fails.

    Raises:
        JobError: Wrong number of sides, unknown reference, or settings naming unusable columns.
        InputError: A missing or unreadable output, or a key column that is absent or unusable.
    """
    started = time.perf_counter()
    names = _check_sides(sides, reference)
    keys = (key,) if isinstance(key, str) else tuple(key)
    if not keys or not all(isinstance(k, str) and k for k in keys):
        raise JobError(f"the comparison key must name one or more columns, got {key!r}")
    sources = {name: open_side(name, sides[name], choice.rename) for name in names}
    key_types = _key_types(sources, keys)
    choice.check(sources, keys)
    pairs = _pairs(names, reference)
    plans = {pair: _plan_pair(sources, *pair, keys, choice) for pair in pairs}
    score_columns = _check_settings(settings, sources, keys, plans)

    buckets = bucket_count(max(source.rows for source in sources.values()), bucket_rows)
    observers = {
        (side, column): ScoreObserver()
        for side in names
        for column in score_columns
        if column in sources[side].schema.names
    }
    summaries = {
        name: SideSummary(name, str(source.path), files=source.files) for name, source in sources.items()
    }
    types = _types_by_column(sources)
    comparisons = [
        PairComparison(left, right, plans[(left, right)], types, keys, settings, score_columns)
        for left, right in pairs
    ]
    for comparison in comparisons:
        for column in comparison.result.columns:
            column.required = choice.one_sided_fails or choice.columns is not None
    made_work_dir = work_dir is not None and not Path(work_dir).exists()
    if work_dir is not None:
        Path(work_dir).mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(prefix="parity-", dir=work_dir) as tmp:
            folders = {name: Path(tmp) / f"side-{i}" for i, name in enumerate(names)}
            for name in names:  # pass 1: spill every side into key buckets
                scores = [c for c in score_columns if c in sources[name].schema.names]
                spilled = spill_side(
                    sources[name],
                    [*keys, *dict.fromkeys([*_columns_of(name, plans), *scores])],
                    key_types,
                    buckets,
                    folders[name],
                    observe=_observer_for(name, observers),
                )
                summaries[name].rows, summaries[name].null_keys = spilled.rows, spilled.null_keys
            for bucket in range(buckets):  # pass 2: one bucket of every side at a time
                tables = {name: read_bucket(folders[name], bucket) for name in names}
                index = {name: key_index(tables[name], keys) for name in names}
                for name in names:
                    count_duplicates(summaries[name], index[name], keys, settings.sample_size)
                for comparison in comparisons:
                    comparison.add_bucket(tables, index)
    finally:
        if made_work_dir:  # the spill folder is gone; leave no empty folder behind
            with contextlib.suppress(OSError):
                Path(work_dir).rmdir()

    return ParityReport(
        key=keys,
        reference=reference,
        sides=[summaries[name] for name in names],
        pairs=[comparison.result for comparison in comparisons],
        distributions=_distributions(score_columns, names, observers, comparisons),
        settings=settings,
        buckets=buckets,
        seconds=time.perf_counter() - started,
    )


# reference, spark, ray and, for a bundle imported from a Spark ML pipeline, legacy.
MAX_SIDES = 4


def _check_sides(sides: Mapping[str, str | Path], reference: str | None) -> list[str]:
    names = list(sides)
    if not 2 <= len(names) <= MAX_SIDES:
        raise JobError(f"parity compares 2 to {MAX_SIDES} outputs, got {len(names)}: {', '.join(names)}")
    if reference is not None and reference not in sides:
        raise JobError(f"reference side '{reference}' is not one of the outputs: {', '.join(names)}")
    return names


def _pairs(names: list[str], reference: str | None) -> list[tuple[str, str]]:
    if reference is None:
        return list(itertools.combinations(names, 2))
    others = [name for name in names if name != reference]
    return [(reference, other) for other in others] + list(itertools.combinations(others, 2))


def _key_types(sources: Mapping[str, SideSource], keys: tuple[str, ...]) -> dict[str, pa.DataType]:
    types = {}
    for k in keys:
        common = None
        for source in sources.values():
            if k not in source.schema.names:
                raise InputError(
                    f"{source.name} output {source.path} has no key column '{k}' "
                    f"(columns: {', '.join(source.schema.names)})"
                )
            t = source.schema.field(k).type
            common = t if common is None else common_type(common, t)
            if common is None or pa.types.is_nested(common):
                found = ", ".join(f"{s.name}={s.schema.field(k).type}" for s in sources.values())
                raise InputError(f"key column '{k}' has types that cannot be matched: {found}")
        types[k] = common.value_type if pa.types.is_dictionary(common) else common
    return types


def _types_by_column(sources: Mapping[str, SideSource]) -> dict[str, dict[str, pa.DataType]]:
    types: dict[str, dict[str, pa.DataType]] = {}
    for name, source in sources.items():
        for f in source.schema:
            types.setdefault(f.name, {})[name] = f.type
    return types


def _plan_pair(sources, left: str, right: str, keys, choice) -> dict[str, ColumnPlan | None | str]:
    """Per column of a pair: its plan, None when incompatible, or the side lacking it."""
    ls, rs = sources[left].schema, sources[right].schema
    names = [n for n in dict.fromkeys([*ls.names, *rs.names]) if n not in keys and choice.keeps(n)]
    plans: dict[str, ColumnPlan | None | str] = {}
    for name in names:
        if name not in rs.names:
            plans[name] = right
        elif name not in ls.names:
            plans[name] = left
        else:
            plans[name] = plan_column(name, {left: ls.field(name).type, right: rs.field(name).type})
    return plans


def _columns_of(side: str, plans) -> list[str]:
    """Columns a side must spill: those some pair of this side actually compares."""
    wanted: dict[str, None] = {}
    for (left, right), columns in plans.items():
        if side in (left, right):
            wanted.update({n: None for n, p in columns.items() if isinstance(p, ColumnPlan)})
    return list(wanted)


def _check_settings(settings: ParitySettings, sources, keys, plans) -> list[str]:
    """Fail on settings that would otherwise be silently ignored; return the score columns."""
    present = {n for s in sources.values() for n in s.schema.names if n not in keys}
    compared = {n: p for columns in plans.values() for n, p in columns.items() if isinstance(p, ColumnPlan)}
    for name in settings.columns:
        if name in keys:
            raise JobError(f"parity.columns.{name}: '{name}' is a key column; keys match exactly")
        if name not in present:
            raise JobError(f"parity.columns.{name}: no column '{name}' in the outputs")
        if name in compared and not is_float_like(compared[name]):
            raise JobError(
                f"parity.columns.{name}: column '{name}' is {compared[name].target}; "
                "tolerances apply only to float and list-of-float columns"
            )
    for name in settings.label_columns:
        if name not in present:
            raise JobError(f"parity.label_columns: no column '{name}' in the outputs")

    def is_float_everywhere(name: str) -> bool:
        types = [s.schema.field(name).type for s in sources.values() if name in s.schema.names]
        return all(pa.types.is_floating(t) for t in types)

    if settings.score_columns is None:
        return [n for n, p in compared.items() if p.kind == "float" and is_float_everywhere(n)]
    for name in settings.score_columns:
        if name not in present:
            raise JobError(f"parity.score_columns: no column '{name}' in the outputs")
        if not is_float_everywhere(name):
            raise JobError(f"parity.score_columns: column '{name}' is not a float column on every side")
    return list(settings.score_columns)


def _observer_for(side: str, observers):
    mine = {column: obs for (s, column), obs in observers.items() if s == side}
    if not mine:
        return None

    def observe(batch: pa.RecordBatch, hashes: np.ndarray) -> None:
        for column, observer in mine.items():
            observer.add(batch.column(column), hashes)

    return observe


def _distributions(score_columns, names, observers, comparisons) -> list[ScoreDistribution]:
    results = []
    for column in score_columns:
        mine = {side: observers[(side, column)] for side in names if (side, column) in observers}
        samples = {side: obs.sample() for side, obs in mine.items()}
        edges, counts = histogram(samples)
        summaries = {side: obs.summary() for side, obs in mine.items()}
        dist = ScoreDistribution(column, summaries, edges, counts)
        for comparison in comparisons:
            left, right = comparison.left, comparison.right
            if left in samples and right in samples:
                col = comparison.columns.get(column)
                dist.comparisons.append(
                    {
                        "left": left,
                        "right": right,
                        "ks": ks_statistic(samples[left], samples[right]),
                        "psi": psi(samples[left], samples[right]),
                        "threshold_flips": None if col is None else col.decision_flips,
                        "compared": None if col is None else col.compared,
                    }
                )
        results.append(dist)
    return results
