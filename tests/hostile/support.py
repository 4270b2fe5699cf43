"""The hostile suite's base job and its checks: a small real job (tests.support.make_job: 50 rows,
a scikit-learn bundle), a mutation applied to it, and "nothing published, nothing else changed"."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from common.cli import main
from tests.support import make_job

ROWS = 50


def base_job(root: Path, template: Path | None = None) -> Path:
    """The job every row starts from: ``root/job/job.toml`` reading ``input.parquet`` with ``bundle``
    (a copy of ``template``'s, built once per module, when given: training the bundle costs a second)."""
    if template is None:
        return make_job(root / "job", rows=ROWS)
    shutil.copytree(template.parent, root / "job")
    return root / "job" / "job.toml"


def snapshot(root: Path) -> dict[str, str]:
    """Every entry under ``root`` but the output: path -> content hash (files), kind (others)."""
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != "out" and not d.startswith(".out.")]
        for name in filenames:
            path = Path(dirpath) / name
            mode = path.lstat().st_mode
            if stat.S_ISREG(mode):
                state[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                state[str(path)] = f"mode {stat.S_IFMT(mode)}"
    return state


def run(*args: str, capsys) -> tuple[int, str]:
    """``batch-predict ARGS`` in this process; argparse's exit counts as the exit code."""
    try:
        code = main(list(args))
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err.strip()


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if not line.startswith("progress: ")]


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, (old, path)
    path.write_text(text.replace(old, new, 1))


def add_transform(job: Path, body: str) -> None:
    bundle = job.parent / "bundle" / "bundle.toml"
    bundle.write_text(bundle.read_text() + "\n[[transforms]]\n" + body + "\n")


def rewrite_input(job: Path, change) -> None:
    """Replaces ``input.parquet`` with ``change(table)`` (a table, or kwargs for write_table)."""
    path = job.parent / "input.parquet"
    table = pq.read_table(path)
    new = change(table)
    options = {}
    if isinstance(new, tuple):
        new, options = new
    pq.write_table(new, path, **options)


def input_folder(job: Path, names: list[str]) -> None:
    """Splits the input into files ``names`` in a folder ``in`` and points the job at it."""
    table = pq.read_table(job.parent / "input.parquet")
    folder = job.parent / "in"
    folder.mkdir()
    step = -(-table.num_rows // len(names))
    for i, name in enumerate(names):
        pq.write_table(table.slice(i * step, step), folder / name)
    edit(job, 'path = "input.parquet"', 'path = "in"')


def csv_input(job: Path, text: str) -> None:
    (job.parent / "input.csv").write_text(text)
    edit(job, 'path = "input.parquet"', 'path = "input.csv"')


def with_column(table: pa.Table, name: str, values) -> pa.Table:
    return table.append_column(name, values)
