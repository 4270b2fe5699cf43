"""The backend contract: a new backend is one package and one registry entry, nothing else.

A third backend, written here as a real package on disk (its executor delegates to the reference
executor's), joins the job file, the CLI, parity and the runner by its entry in ``BACKENDS``.
"""

from __future__ import annotations

import sys
import textwrap

import pytest

from common.cli import build_parser
from common.errors import JobError
from common.parity.runner import run_parity
from common.spec import backends
from common.spec.job import load_job
from tests.support import make_job, read_output

PACKAGE = {
    "__init__.py": """
        from common.run.backends import EngineBackend
        from echo_backend.settings import EchoSettings

        BACKEND = EngineBackend(name="echo", settings_class=EchoSettings, executor="echo_backend.executor")
    """,
    "settings.py": """
        from dataclasses import dataclass

        @dataclass(frozen=True)
        class EchoSettings:
            label: str = "echo"
    """,
    "executor.py": """
        from common.run import reference

        def run(job, bundle, inputs, stage, settings):
            engine = reference.run(job, bundle, inputs, stage, None)
            engine.details = {"label": settings.label}
            return engine
    """,
}


@pytest.fixture
def echo_backend(tmp_path, monkeypatch):
    package = tmp_path / "pkgs" / "echo_backend"
    package.mkdir(parents=True)
    for name, text in PACKAGE.items():
        (package / name).write_text(textwrap.dedent(text))
    monkeypatch.syspath_prepend(str(package.parent))
    monkeypatch.setitem(backends.BACKENDS, "echo", "echo_backend")
    yield "echo"
    for name in [m for m in sys.modules if m.startswith("echo_backend")]:
        del sys.modules[name]


def test_a_registered_backend_joins_job_cli_runner_and_parity(echo_backend, tmp_path):
    job_path = make_job(tmp_path / "job", rows=120, extra='[echo]\nlabel = "third"\n')
    job = load_job(job_path)
    assert job.backend_settings("echo").label == "third"  # its own section, read by its settings class
    assert build_parser().parse_args(["run", str(job_path), "--backend", "echo"]).backend == "echo"
    report, _, runs = run_parity(job, tmp_path / "parity", backends=["echo"])
    assert report.ok and set(runs) == {"reference", "echo"}
    assert read_output(tmp_path / "parity" / "echo").num_rows == 120


def test_a_section_for_an_unregistered_backend_is_refused(tmp_path):
    job_path = make_job(tmp_path / "job", rows=10, extra='[echo]\nlabel = "third"\n')
    with pytest.raises(
        JobError, match=r"unknown section \[echo\]; valid: faults, input, job, legacy, model, output"
    ):
        load_job(job_path)


def test_a_backends_own_section_is_checked_strictly(echo_backend, tmp_path):
    job_path = make_job(tmp_path / "job", rows=10, extra='[echo]\nlable = "x"\n')
    with pytest.raises(JobError, match=r'\[echo\]: unknown field "lable"; valid: label'):
        load_job(job_path)


def test_engine_backends_mirror_each_other():
    """Every engine backend has the same shape: ``engine`` (start, running, stop), ``reading``,
    and an executor whose ``run`` takes ``Backend.run``'s arguments."""
    import importlib
    import importlib.util
    import inspect

    from common.run.backends import Backend, get_backend

    wanted = list(inspect.signature(Backend.run).parameters)[1:]  # less self
    for name in backends.engine_names():
        package, backend = backends.BACKENDS[name], get_backend(name)
        assert backend.engine == f"{package}.engine" and backend.executor == f"{package}.executor", name
        engine = importlib.import_module(backend.engine)
        assert all(callable(getattr(engine, f, None)) for f in ("start", "running", "stop")), name
        assert list(inspect.signature(engine.start).parameters) == ["settings"], name
        assert importlib.util.find_spec(f"{package}.reading") is not None, name
        assert list(inspect.signature(importlib.import_module(backend.executor).run).parameters) == wanted
