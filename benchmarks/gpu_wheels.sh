#!/usr/bin/env bash
# Prepares .whl/: the wheels a GPU machine without internet needs to run `python -m benchmarks.gpu_check`.
#
# The GPU machine: Python 3.12, x86-64, no internet. It already has torch, pandas, pyarrow, numpy,
# scikit-learn (and joblib), click, filelock, msgpack, protobuf, pyyaml, requests, aiohttp, fsspec,
# packaging, attrs, psutil, typing-extensions; not ray, not its jsonschema chain, not pyspark, not
# this project (its working tree is copied there and run from the repository root). So .whl/ holds:
#   ray                        the version in .venv, without ray/jars/ (Java workers only: 79 -> ~45 MB)
#   jsonschema, jsonschema-specifications, referencing, rpds-py    ray's core requirement chain
#   pytest-benchmark           benchmarks.run imports benchmarks.report, which imports
#                              pytest_benchmark.stats (pure Python, stdlib only) at module level
# ray[data]'s extras (numpy, pandas, pyarrow, fsspec) are on the image already. The examples'
# build.py files train with torch and import numpy/pyarrow only: nothing here needs pyspark.
#
# On the GPU machine, from the repository root (.whl/ travels with the working tree: carry it):
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site && python3 -m benchmarks.gpu_check
#
# Usage here: benchmarks/gpu_wheels.sh   (PYTHON=... picks the interpreter whose versions are pinned)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DEST=.whl
PACKAGES=(ray jsonschema jsonschema-specifications referencing rpds-py pytest-benchmark)
# What the GPU image has (normalised names): every Requires-Dist must be here or in .whl/.
IMAGE_HAS="torch pandas pyarrow numpy scikit-learn joblib click filelock msgpack protobuf pyyaml requests
aiohttp fsspec packaging attrs psutil typing-extensions"
# Declared but never imported by what runs: pytest_benchmark.stats needs neither.
NOT_NEEDED="pytest py-cpuinfo2"

rm -rf "$DEST"
mkdir -p "$DEST"
for name in "${PACKAGES[@]}"; do
  version=$("$PY" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$name")
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$DEST" "$name==$version"
done

# A wheel is a zip: rewrite ray's without ray/jars/ and without those files' RECORD lines.
"$PY" - "$DEST" <<'EOF'
import sys, zipfile
from pathlib import Path

wheel = next(Path(sys.argv[1]).glob("ray-*.whl"))
slim = wheel.with_suffix(".slim")
dropped = 0
with zipfile.ZipFile(wheel) as zin, zipfile.ZipFile(slim, "w", zipfile.ZIP_DEFLATED) as zout:
    for info in zin.infolist():
        if info.filename.startswith("ray/jars/"):
            dropped += info.file_size
            continue
        data = zin.read(info)
        if info.filename.endswith(".dist-info/RECORD"):
            lines = data.decode().splitlines(keepends=True)
            data = "".join(line for line in lines if not line.startswith("ray/jars/")).encode()
        zout.writestr(info, data, compresslevel=9)  # a few % smaller than the original level
slim.replace(wheel)
print(f"{wheel.name}: dropped {dropped / 2**20:.1f} MiB (uncompressed) under ray/jars/")
EOF

# Every requirement of every wheel (ray with its "data" extra) is on the image or in .whl/.
"$PY" - "$DEST" "$IMAGE_HAS $NOT_NEEDED" <<'EOF'
import re, sys, zipfile
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

folder, image = Path(sys.argv[1]), {canonicalize_name(n) for n in sys.argv[2].split()}
env = {"python_version": "3.12", "python_full_version": "3.12.0", "sys_platform": "linux",
       "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython"}
wheels = sorted(folder.glob("*.whl"))
have = {canonicalize_name(w.name.split("-")[0]) for w in wheels} | image
missing = []
for wheel in wheels:
    with zipfile.ZipFile(wheel) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
        assert not any(n.startswith("ray/jars/") for n in z.namelist()), f"{wheel.name} still has ray/jars/"
    extras = ["", "data"] if wheel.name.startswith("ray-") else [""]
    for line in re.findall(r"^Requires-Dist: (.+)$", meta, re.M):
        req = Requirement(line)
        if req.marker is None or any(req.marker.evaluate({**env, "extra": e}) for e in extras):
            if canonicalize_name(req.name) not in have:
                missing.append(f"{wheel.name} needs {req}")
if missing:
    sys.exit("missing on the GPU image and in .whl/:\n  " + "\n  ".join(missing))
total = sum(w.stat().st_size for w in wheels)
for w in wheels:
    print(f"{w.stat().st_size / 2**20:8.2f} MiB  {w.name}")
print(f"{total / 2**20:8.2f} MiB  total")
ray = next(w for w in wheels if w.name.startswith("ray-"))
if ray.stat().st_size > 45 * 2**20 or total > 60 * 2**20:
    sys.exit("too big: the ray wheel must stay under 45 MiB and all wheels under 60 MiB")
EOF
