"""Parity certificates: the proof, kept beside a job file, that Spark and Ray agreed on it.

Every ``batch-predict parity`` run writes ``<job file name>.parity.json`` beside the job (or in
``[parity] certificate_dir``, to keep it out of the team's repository): the
bundle's content hash, a hash of the job settings that affect results (never the input or output
paths), the versions of the engines and libraries that compute the results, the rows compared,
the date and the verdict. A failing or erroring run overwrites it with the failure, so the file
always holds the latest evidence. ``--backend auto`` trusts Ray only with a passing certificate
for the bundle and settings the job has now: a certificate for an older bundle never counts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import platform
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.spec.identity import changed_settings, result_settings, settings_hash

if TYPE_CHECKING:  # the CLI imports this module to parse its arguments: no pyarrow until needed
    from common.spec.bundle import Bundle

from common.spec.backends import AUTO as AUTO  # the name `--backend auto` is resolved from

FORMAT = 1
SUFFIX = ".parity.json"
CERTIFIED_BACKENDS = ("spark", "ray")
#: a certificate's verdict, as its file stores it: the parity run passed, failed, or could not finish.
PASS, FAIL, ERROR = "pass", "fail", "error"

#: the distributions every run computes with, recorded whether installed or not.
ENGINE_LIBRARIES = ("pyspark", "ray", "pyarrow", "numpy", "pandas")


def certificate_path(job) -> Path:
    """``job.toml`` -> ``job.toml.parity.json`` beside it; with ``[parity] certificate_dir`` (relative
    to the job's folder), ``job.toml.<8 hex digits of the job file's absolute path>.parity.json``
    there, so that jobs of one file name in several folders never share a certificate."""
    if job.parity.certificate_dir is None:
        return job.path.with_name(job.path.name + SUFFIX)
    folder = job.path.parent / Path(job.parity.certificate_dir).expanduser()
    where = hashlib.sha256(str(job.path.resolve()).encode()).hexdigest()[:8]
    return folder / f"{job.path.name}.{where}{SUFFIX}"


def short_hash(digest: str) -> str:
    """The first 6 hex digits, as messages show a hash."""
    return digest[:6]


def library_versions(bundle: Bundle) -> dict[str, str]:
    """Versions of Python, the engines and the libraries that compute ``bundle``'s results: its
    kind's (``common.model.kinds.kind_libraries``) and, when it has transforms, the transform
    ops' (``common.model.transform_ops.LIBRARIES``). Of a kind's CPU and GPU builds of one module,
    whichever is installed is recorded."""
    from common.model.kinds import kind_libraries
    from common.model.transform_ops import LIBRARIES as TRANSFORM_LIBRARIES

    versions = {"python": platform.python_version()}
    for name in ENGINE_LIBRARIES:
        versions[name] = _version(name) or "not installed"
    libraries = kind_libraries(bundle.kind) + (TRANSFORM_LIBRARIES if bundle.transforms else ())
    for name in libraries:
        found = _version(name)
        if found:
            versions[name] = found
    return versions


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


@dataclass(frozen=True)
class Fingerprint:
    """What a certificate must match: the bundle, the result settings and the library versions."""

    bundle_hash: str
    settings: dict[str, Any]
    versions: dict[str, str]

    @property
    def settings_hash(self) -> str:
        return settings_hash(self.settings)


def fingerprint(job) -> Fingerprint:
    """The current fingerprint of ``job`` (loads its bundle: raises BundleError when it is broken)."""
    from common.model.kinds import pin_remote_model
    from common.spec.bundle import load_bundle

    bundle = load_bundle(job.bundle_path)
    pin_remote_model(bundle)  # a model named by URI: its resolved bytes are part of the hash
    return Fingerprint(bundle.content_hash(), result_settings(job), library_versions(bundle))


def write_certificate(job, current: Fingerprint, *, report=None, runs=None, error: str | None = None) -> Path:
    """Writes the outcome of a parity run of ``job`` beside its job file; returns the path.

    Args:
        current: the job's fingerprint taken before the run.
        report: the ParityReport (None when the run raised ``error``).
        runs: RunResult by backend, for the rows and seconds.
        error: the one-line error of a run that could not finish.
    """
    verdict = ERROR if error is not None else (PASS if report.ok else FAIL)
    data = {
        "format": FORMAT,
        "job": str(job.path),
        "verdict": verdict,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "bundle": str(job.bundle_path),
        "bundle_hash": current.bundle_hash,
        "settings_hash": current.settings_hash,
        "settings": current.settings,
        "versions": current.versions,
        "backends": sorted(runs or {}),
        "rows_compared": _rows_compared(report) if report is not None else 0,
        "problems": ([error] if error is not None else report.problems()),
    }
    path = certificate_path(job)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    temporary.replace(path)
    return path


def _rows_compared(report) -> int:
    """Keys compared in every pair: the rows whose agreement the certificate vouches for."""
    return min((pair.matched for pair in report.pairs), default=0)


@dataclass(frozen=True)
class CertificateStatus:
    """Whether ``job`` is certified for Ray now, and the reason in words."""

    certified: bool
    reason: str
    path: Path
    certificate: dict[str, Any] | None = None


def check_certificate(job, current: Fingerprint | None = None) -> CertificateStatus:
    """Whether the certificate beside ``job`` passed for the job's current bundle, settings and
    library versions; the reason names what is missing or what changed."""
    current = current or fingerprint(job)
    path = certificate_path(job)
    bundle = short_hash(current.bundle_hash)
    none = f"no passing parity certificate for bundle {bundle}"
    if not path.exists():
        return CertificateStatus(
            False, f"{none} (no {path.name}; run batch-predict parity {job.path.name})", path
        )
    try:
        cert = json.loads(path.read_text())
        if not isinstance(cert, dict) or cert.get("format") != FORMAT:
            raise ValueError("not a certificate of this version")
    except (OSError, ValueError) as exc:
        return CertificateStatus(False, f"{none} ({path.name} is unreadable: {exc})", path)
    why = _mismatch(cert, current)
    if why:
        return CertificateStatus(False, f"{none}: {why}", path, cert)
    return CertificateStatus(
        True,
        f"parity passed for bundle {bundle} on {cert['date'][:10]} "
        f"({cert['rows_compared']:,} rows, {', '.join(cert['backends'])})",
        path,
        cert,
    )


def _mismatch(cert: dict[str, Any], current: Fingerprint) -> str | None:
    if cert.get("bundle_hash") != current.bundle_hash:
        return f"the certificate is for bundle {short_hash(str(cert.get('bundle_hash')))}"
    if cert.get("settings_hash") != current.settings_hash:
        changed = changed_settings(cert.get("settings") or {}, current.settings)
        return f"settings changed since certification: {', '.join(changed) or 'unknown'}"
    if cert.get("verdict") != PASS:
        problems = cert.get("problems") or []
        first = f": {problems[0]}" if problems else ""
        more = f" (+{len(problems) - 1} more)" if len(problems) > 1 else ""
        word = "failed" if cert.get("verdict") == FAIL else "could not finish"
        return f"the last parity run on {str(cert.get('date'))[:10]} {word}{first}{more}"
    missing = [b for b in CERTIFIED_BACKENDS if b not in cert.get("backends", [])]
    if missing:
        return f"the parity run did not include {', '.join(missing)}"
    if not cert.get("rows_compared"):
        return "the parity run compared no rows"
    versions = cert.get("versions") or {}
    moved = [
        f"{n} {versions.get(n, '?')} -> {v}" for n, v in current.versions.items() if versions.get(n) != v
    ]
    if moved:
        return f"versions changed since certification: {', '.join(moved)}"
    return None


def choose_backend(job) -> tuple[str, str]:
    """``--backend auto``: ray when ``job`` holds a passing certificate for its current bundle,
    settings and versions, else spark. Returns (backend, reason), the reason as the summary
    prints it: ``auto -> spark: no passing parity certificate for bundle 3f2a9c``."""
    status = check_certificate(job)
    backend = "ray" if status.certified else "spark"
    return backend, f"auto -> {backend}: {status.reason}"
