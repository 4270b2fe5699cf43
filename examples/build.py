"""Builds every example's data and model locally (no downloads): ``python -m examples.build``.

python -m examples.build [--size ROWS] [NAME ...]
"""

from __future__ import annotations

import argparse
import importlib
import time
from pathlib import Path

EXAMPLES_DIR = Path(__file__).parent


def example_names() -> list[str]:
    """Every folder under examples/ with a job.toml and a build.py."""
    return sorted(
        p.name for p in EXAMPLES_DIR.iterdir() if (p / "job.toml").is_file() and (p / "build.py").is_file()
    )


def build_example(name: str, size: int | None = None) -> dict:
    module = importlib.import_module(f"examples.{name}.build")
    return module.build(size)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "names", nargs="*", help=f"examples to build (default: all of {', '.join(example_names())})"
    )
    parser.add_argument(
        "--size", type=int, default=None, help="rows to score per example (default: each example's own)"
    )
    args = parser.parse_args()
    for name in args.names or example_names():
        started = time.perf_counter()
        metrics = build_example(name, args.size)
        print(f"built {name} in {time.perf_counter() - started:.1f} s: {metrics}")


if __name__ == "__main__":
    main()
