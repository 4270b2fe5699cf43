"""The one strict TOML reader (and writer) behind the job file, the bundle, transforms, faults and parity."""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pytest

from common.errors import BundleError, JobError
from common.spec.toml import dump_toml, parse_table


@dataclass(frozen=True)
class _Table:
    name: str
    size: int = 1
    ratio: float = 0.5
    mode: Literal["a", "b"] = "a"
    share: Literal["auto"] | float = "auto"
    keys: str | tuple[str, ...] = ()
    extra: Mapping[str, int] = field(default_factory=dict)
    flag: bool = False

    def check(self, where: str) -> None:
        if self.size < 0:
            raise JobError(f'{where}: field "size" must be >= 0')


def test_values_are_converted_to_their_declared_types():
    got = parse_table(
        _Table, {"name": "x", "ratio": 2, "share": 3, "keys": ["a", "b"], "extra": {"k": 1}}, "f: [t]"
    )
    assert got == _Table(name="x", ratio=2.0, share=3.0, keys=("a", "b"), extra={"k": 1})
    assert isinstance(got.ratio, float) and isinstance(got.keys, tuple)
    assert parse_table(_Table, {"name": "x", "keys": "id"}, "f: [t]").keys == "id"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({}, 'f: [t]: missing field "name"'),
        (
            {"name": "x", "sise": 1},
            'f: [t]: unknown field "sise"; valid: extra, flag, keys, mode, name, ratio, share, size',
        ),
        ({"name": "x", "size": True}, 'f: [t]: field "size" must be an integer, got True'),
        ({"name": "x", "size": 1.0}, 'f: [t]: field "size" must be an integer, got 1.0'),
        ({"name": 3}, 'f: [t]: field "name" must be a string, got 3'),
        ({"name": "x", "ratio": "1"}, 'f: [t]: field "ratio" must be a number, got "1"'),
        ({"name": "x", "ratio": math.inf}, 'f: [t]: field "ratio" must be finite, got inf'),
        ({"name": "x", "mode": "c"}, 'f: [t]: field "mode" is "c"; valid: a, b'),
        (
            {"name": "x", "share": "most"},
            'f: [t]: field "share" must be one of "auto" or a number, got "most"',
        ),
        ({"name": "x", "keys": [1]}, 'f: [t]: field "keys" must be a string or a list of strings, got [1]'),
        ({"name": "x", "extra": {"k": "v"}}, "f: [t]: field \"extra\" must be a table, got {'k': 'v'}"),
        ({"name": "x", "flag": 1}, 'f: [t]: field "flag" must be true or false, got 1'),
        ({"name": "x", "size": -1}, 'f: [t]: field "size" must be >= 0'),
        ([1, 2], "f: [t]: must be a table, got an array"),
    ],
)
def test_errors_name_file_table_and_field_in_one_style(table, message):
    with pytest.raises(JobError) as caught:
        parse_table(_Table, table, "f: [t]")
    assert str(caught.value) == message


def test_error_class_is_the_callers():
    with pytest.raises(BundleError):
        parse_table(_Table, {}, "bundle.toml", BundleError)


def test_written_toml_reads_back_exactly():
    data = {
        "kind": "python",
        "ratio": 0.1 + 0.2,
        "count": np.int64(3),
        "weight": np.float32(0.1),
        "names": ["a", 'q"uote', "日本", "emoji \U0001f600", "tab\tnew\nline\x7f\x00 back\\slash"],
        "flag": False,
        "outputs": {"score": "float64", "odd key": "int64", "ключ": "string"},
        "transforms": [
            {"op": "clip", "column": "x", "lower": -1e-300, "upper": 1e300},
            {"op": "log1p", "column": "y"},
        ],
    }
    back = tomllib.loads(dump_toml(data))
    assert back == {**data, "count": 3, "weight": float(np.float32(0.1))}
