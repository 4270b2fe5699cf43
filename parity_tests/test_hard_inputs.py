"""Every transform op on a catalogue of hard inputs, each engine against the reference.

The probe bundle writes out every transformed feature, so a difference names the op. Integer,
string and label outputs must match exactly; floats within the declared tolerance (log1p only:
Java's StrictMath and torch may differ in the last place).
"""

from __future__ import annotations

import pytest

from parity_tests.conftest import assert_parity, run_against_reference, write_job
from parity_tests.hard_inputs import hard_table, write_layout, write_probe_bundle

LAYOUTS = ["one_file", "many_files", "tiny_partitions", "skewed", "empty", "single_row"]
PARITY = """
[parity.columns.out_x_log1p]
ulps = 1
"""


@pytest.fixture(scope="module")
def probe_bundle(tmp_path_factory):
    return write_probe_bundle(tmp_path_factory.mktemp("probe") / "bundle", batch_size=7)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_transforms_match_reference(backend, layout, probe_bundle, tmp_path):
    table = hard_table()
    if layout == "empty":
        table = table.slice(0, 0)
    elif layout == "single_row":
        table = table.slice(9, 1)
    input_dir = write_layout(table, tmp_path / "input", layout)
    job = write_job(tmp_path, input_dir, probe_bundle, PARITY, passthrough=("id", "s", "x"))
    report = run_against_reference(job, backend, tmp_path)
    assert_parity(report)
