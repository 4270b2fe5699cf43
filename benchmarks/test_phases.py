"""The phase trace's own parts, without an engine: measuring a process tree from outside, the
job files it writes, and its summary and targets (``benchmarks.phases``, ``benchmarks.fresh``)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from types import SimpleNamespace

from benchmarks.phases import job_file, summarize
from benchmarks.targets import phases as phase_targets


def test_fresh_run_sees_a_detached_grandchild_and_its_cpu(tmp_path):
    """A daemon that detaches (new session, parent gone) is still waited for and counted."""
    work = "sum(range(4 * 10**7))"  # about 0.5 CPU-seconds (10**7 took only 0.12 s on an idle CPU)
    script = (
        "import subprocess, sys\n"
        f"subprocess.Popen([sys.executable, '-c', {work!r}], start_new_session=True)\n"
        "print('started')\n"
    )
    code = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from benchmarks.fresh import *; become_subreaper(); "
            f"r = run_fresh([{sys.executable!r}, '-c', {script!r}], linger=10); "
            "print(r.returncode, r.all_gone_seconds > r.exit_seconds, r.cpu_seconds > 0.3, r.lingering, "
            "r.stdout.strip())",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert code.stdout.split() == ["0", "True", "True", "[]", "started"], code.stderr


def test_fresh_run_kills_and_names_what_lingers(tmp_path):
    script = "import subprocess, sys; subprocess.Popen(['sleep', '30'], start_new_session=True)"
    code = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from benchmarks.fresh import *; become_subreaper(); "
            f"r = run_fresh([{sys.executable!r}, '-c', {script!r}], linger=0.5); "
            "print(len(r.lingering), r.lingering[0])",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert code.stdout.split()[0] == "1" and "sleep 30" in code.stdout, code.stdout + code.stderr


def test_job_file_points_the_workload_at_one_size_and_sets_engine_fields(tmp_path):
    (tmp_path / "w").mkdir()
    job = tmp_path / "w" / "job.toml"
    job.write_text(
        '[job]\nkey = "id"\n[input]\npath = "data"\n[output]\npath = "out"\n[model]\nbundle = "m"\n'
        '[ray]\nconcurrency = 1\naddress = ""\n'
    )
    prepared = SimpleNamespace(
        job_path=job, folder=tmp_path / "w", input_dir=lambda rows: tmp_path / "in" / str(rows)
    )
    path = job_file(
        prepared, 1, tmp_path, "-warm", {"ray": {"address": "auto"}, "spark": {"remote": "sc://h:1"}}
    )
    data = tomllib.loads(path.read_text())
    assert data["input"]["path"] == str(tmp_path / "in" / "1")
    assert data["output"]["path"] == str(tmp_path / "out")
    assert data["model"]["bundle"] == str(tmp_path / "w" / "model")
    assert data["ray"] == {"concurrency": 1, "address": "auto"}
    assert data["spark"] == {"remote": "sc://h:1"}


def test_summary_ratios_and_targets():
    def run(name, exit_s, cpu, rows=1, lingering=()):
        trace = [
            {"event": "start engine start", "wall": 1.0, "tree_cpu": 0.5},
            {"event": "end engine start", "wall": exit_s - 1, "tree_cpu": cpu - 1},
        ]
        return {
            "contender": name,
            "rows": rows,
            "round": 0,
            "returncode": 0,
            "exit_seconds": exit_s,
            "all_gone_seconds": exit_s,
            "cpu_seconds": cpu,
            "lingering": list(lingering),
            "load_average": 1.0,
            "trace": trace if name.startswith(("cli", "warm")) else None,
        }

    records = [
        run("cli ray", 6.0, 6.0),
        run("floor ray", 10.0, 8.0),
        run("cli spark", 9.0, 9.0),
        run("floor spark", 10.0, 10.0),
        run("warm ray", 2.5, 2.0),
        run("warm spark", 4.0, 3.0, lingering=["1 x"]),
    ]
    summary = summarize(records)
    by_name = {e["contender"]: e for e in summary["start_to_exit"]}
    assert by_name["cli ray"]["exit_vs_floor"] == 0.6 and by_name["cli spark"]["exit_vs_floor"] == 0.9
    met = {t["target"]: t["met"] for t in phase_targets(summary)}
    assert met == {
        "ray cold job <= 0.75x its hand-written floor": True,
        "spark cold job <= 0.75x its hand-written floor": False,
        "ray job on a warm engine <= 3 s": True,
        "spark job on a warm engine <= 3 s": False,
        "nothing outlives the CLI (warm spark)": False,
    }
    phases = {(p["contender"], p["phase"]) for p in summary["phases"]}
    assert ("cli ray", "engine start") in phases and ("cli ray", "exit (after main returned)") in phases
