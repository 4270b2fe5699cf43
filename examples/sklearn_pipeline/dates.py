"""The Pipeline's own function, in a module of its own: a pickled Pipeline refers to it by
module and name, so every worker must be able to import it (``examples.sklearn_pipeline.dates``),
and ``build.py`` run as ``__main__`` would record ``__main__`` instead."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

EPOCH = dt.date(2020, 1, 1)


def days_since_2020(frame: pd.DataFrame) -> np.ndarray:
    """Dates (``datetime.date``, None for null) -> days since 2020-01-01, -1 for a null: see the module."""
    days = (pd.to_datetime(frame.iloc[:, 0]) - pd.Timestamp(EPOCH)).dt.days
    return days.fillna(-1).to_numpy(dtype=np.float64).reshape(-1, 1)
