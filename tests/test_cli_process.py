"""``batch-predict`` as a scheduler runs it, one process per job (issue 16).

- stdout holds the summary line and nothing else; stderr holds no engine log line (nothing at
  all on success, the one error line on failure);
- no process the CLI started (the JVM and its Python workers; Ray's raylet, GCS and workers) is
  alive 3 s after it exits: on success, on an error, on Ctrl-C and on SIGTERM.

Processes are traced by a tag in their environment, which every descendant inherits, whatever
session or process group it moves to. Each case is one cold CLI run, on each engine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from common.spec.backends import engine_names
from tests.support import make_job

pytestmark = [pytest.mark.spark, pytest.mark.ray, pytest.mark.slow]

GONE_WITHIN_S = 3.0
RUN_TIMEOUT_S = 300.0
TAG = "BATCH_PREDICT_TEST_TAG"

SLOW_HANDLER = '''
import time
from pathlib import Path

from common.model import ModelHandler


class SlowEcho(ModelHandler):
    """Returns x2; a batch of more than 16 rows (not the driver's preflight) waits a minute."""

    def load_model(self):
        return None

    def run_inference(self, batch, model):
        table = batch.table(["x2"])
        if table.num_rows > 16:
            Path(self.bundle.options["started"]).touch()
            time.sleep(60)
        return {"y": table.column("x2")}
'''


def tagged_processes(tag: str) -> list[str]:
    """ "pid cmdline" of every live process whose environment holds ``TAG=tag``."""
    needle = f"{TAG}={tag}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes()
            status = Path(f"/proc/{entry}/status").read_text()
        except OSError:
            continue
        if needle in environ.split(b"\0") and "\nState:\tZ" not in status:
            cmdline = (
                Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            )
            found.append(f"{entry} {cmdline[:120]}")
    return found


def left_behind(tag: str) -> list[str]:
    """What is still alive ``GONE_WITHIN_S`` after the CLI exited (then killed, so no test leaks)."""
    deadline = time.monotonic() + GONE_WITHIN_S
    while (alive := tagged_processes(tag)) and time.monotonic() < deadline:
        time.sleep(0.1)
    for line in alive:
        try:
            os.kill(int(line.split()[0]), signal.SIGKILL)
        except ProcessLookupError:
            pass
    return alive


def start_cli(job: Path, backend: str, tag: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "PYSPARK_PYTHON")}
    env[TAG] = tag
    cli = Path(sys.executable).with_name("batch-predict")
    return subprocess.Popen(
        [str(cli), "run", str(job), "--backend", backend, "--overwrite"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def finish(proc: subprocess.Popen) -> tuple[int, list[str], list[str]]:
    out, err = proc.communicate(timeout=RUN_TIMEOUT_S)
    return proc.returncode, out.splitlines(), err.splitlines()


@pytest.fixture(scope="module")
def one_row_job(tmp_path_factory) -> Path:
    return make_job(tmp_path_factory.mktemp("one-row"), rows=1)


@pytest.fixture(scope="module")
def slow_job(tmp_path_factory) -> Path:
    """100 rows through a python bundle whose engine batches sleep: a run to interrupt."""
    root = tmp_path_factory.mktemp("slow")
    job = make_job(root, rows=100)
    bundle = root / "slow_bundle"
    bundle.mkdir()
    (bundle / "slow_echo.py").write_text(SLOW_HANDLER)
    (bundle / "bundle.toml").write_text(
        'kind = "python"\nentrypoint = "slow_echo:SlowEcho"\nfeatures = ["x2"]\nbatch_size = 100\n'
        f'device = "cpu"\n[outputs]\ny = "float64"\n[options]\nstarted = "{root / "started"}"\n'
    )
    job.write_text(job.read_text().replace('bundle = "bundle"', 'bundle = "slow_bundle"'))
    return job


@pytest.mark.parametrize("backend", engine_names())
def test_success_prints_only_the_summary_and_leaves_nothing_running(one_row_job, backend):
    tag = uuid.uuid4().hex
    code, out, err = finish(start_cli(one_row_job, backend, tag))
    assert code == 0, err
    assert len(out) == 1 and out[0].startswith(f"{backend}: rows in 1, rows out 1,"), out
    # Only the harness's own progress line may appear (every ~10 s, when the machine is slow).
    assert [line for line in err if not line.startswith("progress: ")] == [], "engine lines on stderr"
    assert left_behind(tag) == []


@pytest.mark.parametrize("backend", engine_names())
def test_error_prints_one_line_and_leaves_nothing_running(one_row_job, backend):
    failing = one_row_job.with_name(f"failing-{backend}.toml")
    failing.write_text(one_row_job.read_text() + '\n[faults]\nmode = "raise_always"\nkey = 0\n')
    tag = uuid.uuid4().hex
    code, out, err = finish(start_cli(failing, backend, tag))
    assert code == 2
    assert out == []
    err = [line for line in err if not line.startswith("progress: ")]  # ~10 s lines on a slow machine
    assert len(err) == 1 and err[0].startswith("batch-predict: error: batch of 1 rows, id 0..0 failed"), err
    assert left_behind(tag) == []


@pytest.mark.parametrize("backend", engine_names())
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_interrupted_run_stops_its_engine(slow_job, backend, sig):
    started = slow_job.parent / "started"
    started.unlink(missing_ok=True)
    tag = uuid.uuid4().hex
    proc = start_cli(slow_job, backend, tag)
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not started.exists():  # the engine's worker is inside a batch
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the engine never started the batch"
        time.sleep(0.2)
    proc.send_signal(sig)
    code, out, err = finish(proc)
    assert code == 128 + sig
    assert out == []
    assert err[-1:] == [
        f"batch-predict: {'interrupted' if sig == signal.SIGINT else 'terminated'}; nothing published"
    ]
    assert not (slow_job.parent / "out").exists()
    assert left_behind(tag) == []


def test_building_the_examples_that_start_engines_prints_only_what_they_built(tmp_path):
    """``make demo`` builds the examples first: the one that trains in Spark and the one exported
    by torch.onnx print their ``built ...`` line and nothing of the engines' or exporters' logs."""
    tag = uuid.uuid4().hex
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "PYSPARK_PYTHON")}
    env[TAG] = tag
    script = (
        "import sys; from examples.spark_pipeline.build import build as spark_pipeline;"
        "from examples.tabular_onnx.build import build as onnx;"
        f"print('built', spark_pipeline(500, 0, {str(tmp_path / 'sp')!r}));"
        f"print('built', onnx(500, 0, {str(tmp_path / 'onnx')!r}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert proc.returncode == 0, proc.stderr
    assert [line.split()[0] for line in proc.stdout.splitlines()] == ["built", "built"], proc.stdout
    assert proc.stderr.splitlines() == [], "engine or exporter lines on stderr"
    assert left_behind(tag) == []
