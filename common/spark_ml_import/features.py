"""Converters for Spark ML feature stages: each becomes transform ops (``common/model/spark_ml_ops.py``
and the string ops), one per output column or vector slot, with every parameter that changes the
result carried over. ``handleInvalid = "skip"`` is refused: Spark drops those rows, and a bundle
never loses a row silently.
"""

from __future__ import annotations

import math
from typing import Any

from common.errors import BundleError
from common.spark_ml_import.plan import Plan, Vector, converter, in_out_columns, unsupported
from common.spark_ml_import.saved import SavedStage, vector_values
from common.spec.transforms import one_hot_width, slot_name

IO = ("inputCol", "inputCols", "outputCol", "outputCols")
_SPECIAL = {"NaN": math.nan, "Inf": math.inf, "-Inf": -math.inf}


def spark_double(value: Any) -> float:
    """A double parameter as Spark's JSON writes it (NaN and infinities are strings)."""
    if isinstance(value, str) and value in _SPECIAL:
        return _SPECIAL[value]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BundleError(f"not a number: {value!r}")
    return float(value)


def _handle_invalid(stage: SavedStage, allowed: tuple[str, ...] = ("error", "keep")) -> str:
    value = stage.params.get("handleInvalid", "error")
    if value == "skip":
        raise unsupported(
            stage, "handleInvalid", value, 'Spark drops those rows; set it to "error" or "keep"'
        )
    if value not in allowed:
        raise unsupported(stage, "handleInvalid", value, f"expected one of {', '.join(allowed)}")
    return value


def _scalar_input(stage: SavedStage, plan: Plan, name: str) -> str:
    if name in plan.vectors:
        raise BundleError(
            f'{stage.describe()}: input column "{name}" is a vector; this stage reads a scalar column'
        )
    return name


@converter("StringIndexerModel", reads=(*IO, "handleInvalid"))
def string_indexer(stage: SavedStage, plan: Plan) -> None:
    handle = _handle_invalid(stage)
    row = stage.first_row()
    labels_array = row.get("labelsArray") or ([row["labels"]] if "labels" in row else None)
    pairs = in_out_columns(stage)
    if not labels_array or len(labels_array) != len(pairs):
        raise BundleError(
            f"{stage.describe()}: its saved labels do not match its {len(pairs)} input column(s)"
        )
    transforms = []
    for (source, target), labels in zip(pairs, labels_array, strict=True):
        if not labels:
            raise BundleError(f'{stage.describe()}: no labels for column "{source}"')
        transforms.append(
            {
                "op": "string_index",
                "column": _scalar_input(stage, plan, source),
                "output": target,
                "vocabulary": list(labels),
                "handle_invalid": handle,
            }
        )
    plan.add(
        stage, f"string_index ({handle}) of {len(transforms)} column(s)", transforms, [t for _, t in pairs]
    )


@converter("OneHotEncoderModel", reads=(*IO, "dropLast", "handleInvalid"))
def one_hot_encoder(stage: SavedStage, plan: Plan) -> None:
    handle = _handle_invalid(stage)
    drop_last = bool(stage.params.get("dropLast", True))
    sizes = stage.first_row()["categorySizes"]
    pairs = in_out_columns(stage)
    transforms = []
    for (source, target), size in zip(pairs, sizes, strict=True):
        transforms.append(
            {
                "op": "one_hot_index",
                "column": _scalar_input(stage, plan, source),
                "output": target,
                "size": int(size),
                "drop_last": drop_last,
                "handle_invalid": handle,
            }
        )
        width = one_hot_width(int(size), drop_last, handle)
        plan.vectors[target] = Vector(tuple(slot_name(target, j) for j in range(width)))
    plan.add(stage, f"one_hot_index (dropLast={drop_last}, {handle})", transforms, [t for _, t in pairs])


@converter("VectorAssembler", reads=("inputCols", "outputCol", "handleInvalid"))
def vector_assembler(stage: SavedStage, plan: Plan) -> None:
    handle = _handle_invalid(stage)
    target = stage.params["outputCol"]
    transforms, slots = [], []
    for source in stage.params.get("inputCols") or []:
        inputs = plan.vectors[source].slots if source in plan.vectors else (source,)
        for column in inputs:
            slot = slot_name(target, len(slots))
            entry = {"op": "assemble", "column": column, "output": slot, "handle_invalid": handle}
            if source in plan.vectors:
                entry["from_vector"] = True
            transforms.append(entry)
            slots.append(slot)
    if not slots:
        raise BundleError(f"{stage.describe()}: no input columns")
    plan.vectors[target] = Vector(tuple(slots))
    plan.add(stage, f"assemble ({handle}) into {len(slots)} slots", transforms, [target])


@converter("ImputerModel", reads=(*IO, "missingValue"))
def imputer(stage: SavedStage, plan: Plan) -> None:
    missing = spark_double(stage.params.get("missingValue", "NaN"))
    surrogates = stage.first_row()
    transforms = []
    for source, target in in_out_columns(stage):
        value = surrogates.get(source)
        if value is None or not math.isfinite(value):
            raise BundleError(
                f'{stage.describe()}: no finite surrogate for column "{source}" (got {value!r})'
            )
        entry = {
            "op": "impute",
            "column": _scalar_input(stage, plan, source),
            "output": target,
            "value": float(value),
            "cast_to_input": True,
        }
        if not math.isnan(missing):
            entry["missing_value"] = missing
        transforms.append(entry)
    plan.add(stage, f"impute (missingValue={missing!r})", transforms, [t["output"] for t in transforms])


def _per_slot(stage: SavedStage, plan: Plan, make) -> tuple[list[dict[str, Any]], list[str]]:
    """One transform per slot of the input vector: ``make(i, slot, output)`` gives its table."""
    source, target = stage.params["inputCol"], stage.params["outputCol"]
    slots = plan.vector(stage, source).slots
    outputs = [slot_name(target, i) for i in range(len(slots))]
    transforms = [make(i, slot, out) for i, (slot, out) in enumerate(zip(slots, outputs, strict=True))]
    plan.vectors[target] = Vector(tuple(outputs))
    return transforms, [target]


def _check_size(stage: SavedStage, plan: Plan, values, what: str) -> None:
    size = len(plan.vector(stage, stage.params["inputCol"]).slots)
    if len(values) != size:
        raise BundleError(f"{stage.describe()}: {what} has {len(values)} values for a vector of {size}")


@converter("StandardScalerModel", reads=("inputCol", "outputCol", "withMean", "withStd"))
def standard_scaler(stage: SavedStage, plan: Plan) -> None:
    row = stage.first_row()
    with_mean, with_std = bool(stage.params.get("withMean", False)), bool(stage.params.get("withStd", True))
    mean, std = vector_values(row["mean"]), vector_values(row["std"])
    _check_size(stage, plan, mean, "mean")

    def make(i, slot, out):
        entry = {"op": "scale_shift", "column": slot, "output": out}
        if with_mean:
            entry["shift"] = float(mean[i])
        if with_std:  # Spark multiplies by the reciprocal, 0 for a constant feature
            entry["scale"] = 0.0 if std[i] == 0 else 1.0 / float(std[i])
        return entry

    if not with_mean and not with_std:  # Spark returns the vector unchanged
        plan.vectors[stage.params["outputCol"]] = plan.vector(stage, stage.params["inputCol"])
        plan.add(stage, "identity (withMean and withStd both false)", [], [stage.params["outputCol"]])
        return
    transforms, columns = _per_slot(stage, plan, make)
    plan.add(stage, f"scale_shift (withMean={with_mean}, withStd={with_std})", transforms, columns)


@converter("MinMaxScalerModel", reads=("inputCol", "outputCol", "min", "max"))
def min_max_scaler(stage: SavedStage, plan: Plan) -> None:
    row = stage.first_row()
    low, high = spark_double(stage.params.get("min", 0.0)), spark_double(stage.params.get("max", 1.0))
    original_min, original_max = vector_values(row["originalMin"]), vector_values(row["originalMax"])
    _check_size(stage, plan, original_min, "originalMin")
    scale, constant = high - low, (low + high) / 2

    def make(i, slot, out):
        span = float(original_max[i]) - float(original_min[i])
        return {
            "op": "rescale",
            "column": slot,
            "output": out,
            "min": float(original_min[i]),
            "factor": scale / span if span != 0 else 0.0,
            "offset": low,
            "constant": constant,
        }

    transforms, columns = _per_slot(stage, plan, make)
    plan.add(stage, f"rescale to [{low!r}, {high!r}]", transforms, columns)


@converter("MaxAbsScalerModel", reads=("inputCol", "outputCol"))
def max_abs_scaler(stage: SavedStage, plan: Plan) -> None:
    max_abs = vector_values(stage.first_row()["maxAbs"])
    _check_size(stage, plan, max_abs, "maxAbs")

    def make(i, slot, out):
        return {
            "op": "scale_shift",
            "column": slot,
            "output": out,
            "scale": 1.0 if max_abs[i] == 0 else 1.0 / float(max_abs[i]),
        }

    transforms, columns = _per_slot(stage, plan, make)
    plan.add(stage, "scale_shift (1 / maxAbs)", transforms, columns)


@converter("ElementwiseProduct", reads=("inputCol", "outputCol", "scalingVec"))
def elementwise_product(stage: SavedStage, plan: Plan) -> None:
    scaling = stage.params.get("scalingVec")
    if not isinstance(scaling, dict):
        raise BundleError(f"{stage.describe()}: scalingVec is missing")
    factors = vector_values(scaling)
    _check_size(stage, plan, factors, "scalingVec")
    transforms, columns = _per_slot(
        stage,
        plan,
        lambda i, slot, out: {"op": "scale_shift", "column": slot, "output": out, "scale": float(factors[i])},
    )
    plan.add(stage, "scale_shift (scalingVec)", transforms, columns)


@converter("Bucketizer", reads=(*IO, "splits", "splitsArray", "handleInvalid"))
def bucketizer(stage: SavedStage, plan: Plan) -> None:
    handle = _handle_invalid(stage)
    pairs = in_out_columns(stage)
    if "splitsArray" in stage.params and "splits" not in stage.set_params:
        splits_list = stage.params["splitsArray"]
    else:
        splits_list = [stage.params.get("splits")]
    if len(splits_list) != len(pairs) or not all(splits_list):
        raise BundleError(f"{stage.describe()}: needs one list of splits per input column")
    transforms = []
    for (source, target), splits in zip(pairs, splits_list, strict=True):
        splits = [spark_double(s) for s in splits]
        transforms.append(
            {
                "op": "bucketize_splits",
                "column": _scalar_input(stage, plan, source),
                "output": target,
                "splits": splits,
                "handle_invalid": handle,
            }
        )
    plan.add(stage, f"bucketize_splits ({handle})", transforms, [t for _, t in pairs])


@converter("Binarizer", reads=(*IO, "threshold", "thresholds"))
def binarizer(stage: SavedStage, plan: Plan) -> None:
    pairs = in_out_columns(stage)
    if "thresholds" in stage.set_params:
        thresholds = [spark_double(v) for v in stage.params["thresholds"]]
    else:
        thresholds = [spark_double(stage.params.get("threshold", 0.0))] * len(pairs)
    transforms = []
    for (source, target), threshold in zip(pairs, thresholds, strict=True):
        if source not in plan.vectors:
            transforms.append({"op": "binarize", "column": source, "output": target, "threshold": threshold})
            continue
        slots = plan.vector(stage, source).slots
        outputs = [slot_name(target, i) for i in range(len(slots))]
        for slot, out in zip(slots, outputs, strict=True):
            # On a vector with a negative threshold Spark tests "not x <= t", so NaN gives 1.0.
            entry = {"op": "binarize", "column": slot, "output": out, "threshold": threshold}
            if threshold < 0:
                entry["nan_value"] = 1.0
            transforms.append(entry)
        plan.vectors[target] = Vector(tuple(outputs))
    plan.add(stage, "binarize", transforms, [t for _, t in pairs])


@converter("SQLTransformer", reads=("statement",))
def sql_transformer(stage: SavedStage, plan: Plan) -> None:
    """``SELECT *, <expr> AS <name>[, ...] FROM __THIS__``: one ``sql`` transform per new column.
    Anything else (a WHERE, a join, a GROUP BY, a column dropped or replaced) is refused: it would
    change rows or columns in a way a bundle's transforms do not."""
    import sqlglot
    from sqlglot import exp

    statement = stage.params.get("statement") or ""
    form = "SELECT *, <expr> AS <name>[, ...] FROM __THIS__"

    def refuse(reason: str) -> BundleError:
        return unsupported(stage, "statement", statement, f"{reason}; only {form} is imported")

    try:
        tree = sqlglot.parse_one(statement, read="spark")
    except sqlglot.errors.SqlglotError as error:
        raise refuse(f"cannot parse it ({str(error).splitlines()[0]})") from None
    if not isinstance(tree, exp.Select):
        raise refuse("it is not a plain SELECT")
    extra = sorted(k for k, v in tree.args.items() if v and k not in ("expressions", "from", "from_"))
    if extra:
        raise refuse(f"it has {extra[0].upper()}")
    source = tree.args.get("from") or tree.args.get("from_")
    if (
        not isinstance(source, exp.From)
        or not isinstance(source.this, exp.Table)
        or source.this.name != "__THIS__"
    ):
        raise refuse("it does not select FROM __THIS__ alone")
    star, *columns = tree.expressions
    if not isinstance(star, exp.Star) or any(star.args.values()) or not columns:
        raise refuse("it does not start with a plain * followed by new columns")
    made: list[str] = []
    for column in columns:
        if not isinstance(column, exp.Alias) or not column.alias:
            raise refuse(f"{column.sql(dialect='spark')} has no AS <name>")
        reads = {c.name for c in column.this.find_all(exp.Column)}
        if reads & set(made):  # Spark resolves names against __THIS__, not against this SELECT
            raise refuse(f"{column.alias} reads {sorted(reads & set(made))[0]}, made in the same SELECT")
        made.append(column.alias)
    texts = _projection_texts(statement)[1:]
    if len(texts) != len(made):
        raise refuse("its columns could not be told apart")
    transforms = [{"op": "sql", "output": name, "expr": text} for name, text in zip(made, texts, strict=True)]
    plan.add(stage, f"sql ({len(transforms)} expression(s))", transforms, made)


def _projection_texts(statement: str) -> list[str]:
    """Each SELECT column's expression exactly as written (its ``AS name`` cut off): the split
    follows sqlglot's tokens, at the commas outside parentheses between SELECT and FROM."""
    from sqlglot.dialects.dialect import Dialect
    from sqlglot.tokens import TokenType

    tokens = Dialect.get_or_raise("spark").tokenize(statement)
    texts, depth, start, alias_at = [], 0, None, None
    for token in tokens[1:]:  # after SELECT
        if token.token_type in (TokenType.L_PAREN, TokenType.L_BRACKET):
            depth += 1
        elif token.token_type in (TokenType.R_PAREN, TokenType.R_BRACKET):
            depth -= 1
        if depth == 0 and token.token_type in (TokenType.COMMA, TokenType.FROM):
            texts.append(statement[start : alias_at if alias_at is not None else token.start].strip())
            start, alias_at = None, None
            if token.token_type == TokenType.FROM:
                break
            continue
        if start is None:
            start = token.start
        if depth == 0 and token.token_type == TokenType.ALIAS:
            alias_at = token.start
    return texts
