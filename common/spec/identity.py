"""The identity of a job's result: the job settings that can change it, their hash, and which of
them changed.

Two features rest on it: a parity certificate (``common.rollout.certificate``) vouches for the
results of one identity, and a resumed run (``common.run.chunks``) must find the identity its
killed run was started with. Input and output paths are never part of it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import TYPE_CHECKING, Any

from common.spec.backends import engine_names

if TYPE_CHECKING:
    from common.spec.job import Job

# Settings that cannot change a prediction: where things run and how the work is spread.
# Everything else in the job counts, so a setting added later is covered until listed here.
_NOT_RESULT_SETTINGS = {
    "spark": {"master", "app_name"},
    "ray": {"address", "runtime_env", "concurrency", "num_cpus", "blocks_per_replica", "progress_bars"},
    "parity": {"sample_size", "certificate_dir"},
}


def result_settings(job: Job) -> dict[str, Any]:
    """The job's settings that can change its results, with defaults filled in (so writing a
    default out or leaving it implicit hashes the same); no paths."""
    settings: dict[str, Any] = {
        "job": {
            "key": list(job.key),
            "on_error": job.on_error,
            "passthrough": list(job.passthrough),
            "input_format": job.input_format,
        },
    }
    for name in engine_names():
        parsed = dataclasses.asdict(job.backend_settings(name))
        settings[name] = {k: v for k, v in parsed.items() if k not in _NOT_RESULT_SETTINGS.get(name, ())}
    parity = job.parity.to_dict()
    settings["parity"] = {k: v for k, v in parity.items() if k not in _NOT_RESULT_SETTINGS["parity"]}
    faults = job.faults
    settings["faults"] = None if faults is None else {"mode": faults.mode, "keys": list(faults.keys)}
    return json.loads(json.dumps(settings, sort_keys=True, default=str))


def settings_hash(settings: dict[str, Any]) -> str:
    """SHA-256 of ``result_settings``, key order aside."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()


def changed_settings(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the settings that differ, e.g. ``spark.udf``."""
    changed = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        if isinstance(a, dict) and isinstance(b, dict):
            changed += changed_settings(a, b, f"{prefix}{name}.")
        elif a != b:
            changed.append(f"{prefix}{name}")
    return changed
