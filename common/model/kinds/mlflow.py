"""MLflow ``pyfunc`` models: an ``artifact`` folder holding an MLflow model, or a ``model_uri``.

``model_uri`` is ``models:/name/3``, ``models:/name@alias``, ``models:/name/latest`` or
``runs:/<run id>/<path>``, at the tracking server and registry of ``MLFLOW_TRACKING_URI`` /
``MLFLOW_REGISTRY_URI`` (MLflow's own settings). The driver resolves it once per process to one
version and copies that version into ``<bundle>/.mlflow/`` (git-ignored); ``pin.json`` there names
the copy. The bundle's content hash, which the parity certificate records, covers that copy, so a
moved alias or a new ``latest`` is a new bundle. Workers never talk to the server: they load the
pinned copy with ``mlflow.pyfunc.load_model``. The model is handed the features as a typed
DataFrame (``FeatureBatch.dataframe``), as ``mlflow.pyfunc.spark_udf`` hands it a pandas frame.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import threading
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from common.model.handler import ModelHandler
from common.model.kinds._shared import bundle_error, import_library

if TYPE_CHECKING:
    from common.spec.bundle import Bundle

#: what can change an mlflow bundle's results: mlflow itself (either distribution) and the model
#: libraries of the flavours it serves; whichever are installed are recorded.
LIBRARIES = ("mlflow", "mlflow-skinny", "scikit-learn", "xgboost", "xgboost-cpu", "lightgbm")
CACHE = ".mlflow"
PIN = "pin.json"
PYFUNC = "python_function"
_MODELS = re.compile(r"models:/(?P<name>[^/@]+)(?:/(?P<version>[^/@]+)|@(?P<alias>[^/@]+))")
_RUNS = re.compile(r"runs:/(?P<run>[0-9A-Za-z_-]+)/(?P<path>.+)")
_RESOLVED: dict[tuple, Path] = {}  # (bundle folder, uri, tracking, registry) -> pinned copy, per process
_LOCK = threading.Lock()


class MlflowHandler(ModelHandler):
    """Runs ``PyFuncModel.predict`` on the features as a typed DataFrame."""

    def validate(self) -> None:
        super().validate()
        folder = self._folder(resolve=True)
        model = _mlmodel(self.bundle, folder)
        if PYFUNC not in model.flavors:
            raise bundle_error(
                self.bundle,
                self._field,
                f"the model's flavours are {', '.join(sorted(model.flavors)) or 'none'}, "
                f'not {PYFUNC} (pyfunc); kind "mlflow" loads pyfunc models only',
            )
        signature = model.get_input_schema()
        if signature is not None and signature.has_input_names():
            named, features = signature.input_names(), list(self.bundle.features)
            if set(named) != set(features):
                missing = [n for n in named if n not in features]
                extra = [n for n in features if n not in named]
                raise bundle_error(
                    self.bundle,
                    "features",
                    f"the model's signature takes columns {named} but the bundle lists {features} "
                    f"(not in features: {missing or 'none'}; not in the signature: {extra or 'none'})",
                )

    def load_model(self) -> Any:
        pyfunc = _import(self.bundle, "mlflow.pyfunc")
        folder = self._folder(resolve=False)
        try:
            model = pyfunc.load_model(str(folder))
        except Exception as exc:  # MLflow and the flavour's library raise many types
            raise bundle_error(
                self.bundle, self._field, f"cannot load {folder}: {_first_line(exc)}"
            ) from None
        schema = model.metadata.get_input_schema()
        named = schema is not None and schema.has_input_names()
        self._floats = {
            spec.name: spec.type.to_numpy()
            for spec in (schema.inputs if named else [])
            if getattr(spec.type, "name", "") in ("double", "float")
        }
        return model

    def run_inference(self, batch, model):
        frame = batch.dataframe(list(self.bundle.features))
        # An integer column is int64 in a batch without a null and float64 in one with (pandas'
        # rule); MLflow refuses int64 where the signature says double, so it gets float here.
        for name, dtype in getattr(self, "_floats", {}).items():
            if name in frame and frame[name].dtype.kind in "iu":
                frame[name] = frame[name].astype(dtype)
        out = model.predict(frame)
        if hasattr(out, "columns") and set(map(str, out.columns)) == set(self.bundle.outputs):
            return out  # named as the outputs: taken by name
        return out.to_numpy() if hasattr(out, "to_numpy") else out

    @property
    def _field(self) -> str:
        return "artifact" if self.bundle.model_uri is None else "model_uri"

    def _folder(self, resolve: bool) -> Path:
        """The local MLflow model folder: the artifact, or the copy the driver pinned (``resolve``
        pins it now; a worker only reads the pin)."""
        if self.bundle.model_uri is None:
            return self.bundle.artifact
        if resolve:
            return pin_model(self.bundle)
        pin_file = self.bundle.path / CACHE / PIN
        pin = json.loads(pin_file.read_text()) if pin_file.is_file() else {}
        if pin.get("model_uri") != self.bundle.model_uri:
            raise bundle_error(
                self.bundle,
                "model_uri",
                f"{self.bundle.model_uri} is not pinned in {pin_file} (the driver pins it)",
            )
        return self.bundle.path / CACHE / pin["folder"]


def _import(bundle: Bundle, module: str):
    """MLflow, with its usage telemetry off unless the user turned it on: a batch job sends
    nothing anywhere but to the tracking server it names."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    return import_library(bundle, module, "mlflow-skinny")


def pin_model(bundle: Bundle) -> Path:
    """Resolves ``bundle.model_uri`` to one version and copies it into ``<bundle>/.mlflow/`` (once
    per process and bundle); returns the copy. A missing model, version or run is a BundleError."""
    mlflow = _import(bundle, "mlflow")
    key = (str(bundle.path), bundle.model_uri, mlflow.get_tracking_uri(), mlflow.get_registry_uri())
    with _LOCK:
        if key not in _RESOLVED:
            _RESOLVED[key] = _pin(bundle, mlflow, key[2], key[3])
        return _RESOLVED[key]


def _pin(bundle: Bundle, mlflow, tracking: str, registry: str) -> Path:
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    uri = bundle.model_uri
    client = mlflow.MlflowClient(tracking_uri=tracking, registry_uri=registry)
    try:
        identity = _resolve(bundle, client, uri)
    except MlflowException as exc:
        raise bundle_error(bundle, "model_uri", f"{uri} at {registry}: {_first_line(exc)}") from None
    cache = bundle.path / CACHE
    for leftover in cache.glob(".*-*"):  # what a killed run left: it would be part of the hash
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)
    pin = {"model_uri": uri, "tracking_uri": tracking, "registry_uri": registry, **identity}
    pin_file = cache / PIN
    if pin_file.is_file() and (cache / identity["folder"]).is_dir():
        old = json.loads(pin_file.read_text())
        if {k: old.get(k) for k in pin} == pin:
            return cache / identity["folder"]
    cache.mkdir(exist_ok=True)
    (cache / ".gitignore").write_text("# copies of MLflow models, made by batch-predict\n*\n")
    staging = cache / f".download-{uuid.uuid4().hex}"
    try:
        staging.mkdir()
        try:
            with _quiet_download():
                local = Path(
                    mlflow.artifacts.download_artifacts(
                        artifact_uri=identity["source"], dst_path=str(staging)
                    )
                )
        except MlflowException as exc:
            raise bundle_error(bundle, "model_uri", f"cannot download {uri}: {_first_line(exc)}") from None
        if not (local / "MLmodel").is_file():
            raise bundle_error(bundle, "model_uri", f"{uri} is not an MLflow model (no MLmodel file)")
        pin["sha256"] = _tree_hash(local)
        for old in cache.iterdir():  # one copy at a time: the content hash covers the folder
            if old.is_dir() and not old.name.startswith(".download-"):
                shutil.rmtree(old)
        local.rename(cache / identity["folder"])
        temporary = cache / f".tmp-{PIN}"
        temporary.write_text(json.dumps(pin, indent=2, sort_keys=True) + "\n")
        temporary.replace(pin_file)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return cache / identity["folder"]


def _resolve(bundle: Bundle, client, uri: str) -> dict[str, str]:
    """The one version ``uri`` names now: what to download, and the name of its local copy."""
    models, runs = _MODELS.fullmatch(uri), _RUNS.fullmatch(uri)
    if models:
        name, version, alias = models["name"], models["version"], models["alias"]
        if alias is not None:
            found = client.get_model_version_by_alias(name, alias)
        elif version == "latest":
            versions = client.search_model_versions(f"name = '{name}'")
            if not versions:
                raise bundle_error(bundle, "model_uri", f"{uri}: registered model {name!r} has no version")
            found = max(versions, key=lambda v: int(v.version))
        elif version.isdigit():
            found = client.get_model_version(name, version)
        else:
            raise bundle_error(
                bundle, "model_uri", f"{uri}: version {version!r} is not a number, latest or @alias"
            )
        return {
            "version": str(found.version),
            "run_id": found.run_id or "",
            "source": f"models:/{name}/{found.version}",
            "folder": _slug(f"{name}-v{found.version}"),
        }
    if runs:
        run = client.get_run(runs["run"])  # a missing run raises here, not deep in a download
        return {
            "version": "",
            "run_id": run.info.run_id,
            "source": uri,
            "folder": _slug(f"run-{run.info.run_id}-{runs['path']}"),
        }
    raise bundle_error(
        bundle,
        "model_uri",
        f"{uri!r} is not models:/name/version, models:/name@alias or runs:/run_id/path "
        '(a local MLflow model folder is artifact = "folder")',
    )


def _mlmodel(bundle: Bundle, folder: Path):
    from mlflow.models import Model

    field = "artifact" if bundle.model_uri is None else "model_uri"
    if not (folder / "MLmodel").is_file():
        raise bundle_error(bundle, field, f"{folder} is not an MLflow model folder (no MLmodel file)")
    try:
        return Model.load(str(folder))
    except Exception as exc:
        raise bundle_error(bundle, field, f"cannot read {folder / 'MLmodel'}: {_first_line(exc)}") from None


@contextlib.contextmanager
def _quiet_download():
    """No download progress bar on the terminal (the summary line is the only output)."""
    name = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(name)
    os.environ[name] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def _tree_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(folder)).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)


def _first_line(exc: BaseException) -> str:
    return " ".join(str(exc).split("\n", 1)[0].split()) or type(exc).__name__
