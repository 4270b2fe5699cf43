"""Starting, joining and stopping the Ray instance this process uses.

A local start is trimmed to what a batch job needs, each setting measured in paired runs
(README, "Benchmarks"): no dashboard, no metrics collection, no usage reporting, and no worker
prestarted for the driver (it would import Ray while the job's first task waits for a CPU).
Ray's own console lines are silenced where they start: the token-auth notice by saying
``RAY_AUTH_MODE=token`` explicitly (the default Ray chose anyway), the progress-bar notice by
its logger's level. ``stop()`` shuts down only a Ray this process started; a cluster it joined
(``[ray] address``) is left running.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from pathlib import Path

# Ray's defaults that cost a small job seconds and give it nothing (each measured).
_SYSTEM_CONFIG = {"prestart_worker_first_driver": False, "enable_metrics_collection": False}
_QUIET_LOGGERS = ("ray.data._internal.progress", "ray.data")

_started_here = False


def _quiet_environment(local: bool) -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    if local:  # Ray's own choice for a local start; saying it drops the notice. A cluster decides for itself.
        os.environ.setdefault("RAY_AUTH_MODE", "token")


def start(address: str = "", runtime_env: dict | None = None, ship_code: bool = True) -> float:
    """Starts Ray here (``address`` empty) or joins the cluster at ``address``; returns seconds.

    Joining a cluster on other machines ships this harness's packages as ``py_modules`` (merged
    into ``runtime_env``) unless ``ship_code`` is false: a cluster on this machine runs the same
    files. A cluster that refuses the driver's auth token fails with a one-line hint.
    """
    global _started_here
    import ray

    _quiet_environment(local=not address)
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    started = time.perf_counter()
    kwargs = dict(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    runtime_env = dict(runtime_env or {})
    if not address:
        ray.init(runtime_env=runtime_env or None, _system_config=dict(_SYSTEM_CONFIG), **kwargs)
        _started_here = True
        return time.perf_counter() - started
    if ship_code:
        import common
        import ray_backend

        ours = [str(Path(common.__file__).parent), str(Path(ray_backend.__file__).parent)]
        runtime_env["py_modules"] = [*ours, *runtime_env.get("py_modules", [])]
    try:
        ray.init(address=address, runtime_env=runtime_env or None, **kwargs)
    except ConnectionError as exc:  # Ray 2.60 keeps the AuthenticationError as text in the cause
        if "InvalidAuthToken" not in f"{exc} {exc.__cause__}":
            raise
        raise ConnectionError(
            f"the Ray cluster at {address} refused this driver's auth token: set RAY_AUTH_MODE=token "
            "and the cluster's token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token; "
            "`ray get-auth-token` on the head node prints it)"
        ) from exc
    return time.perf_counter() - started


def running() -> bool:
    import sys

    return "ray" in sys.modules and sys.modules["ray"].is_initialized()


def stop() -> None:
    """Shuts down the Ray this process started (its raylet, GCS and workers exit); a joined
    cluster only loses this driver."""
    global _started_here
    if not running():
        return
    import ray

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ray.shutdown()
    _started_here = False


def started_here() -> bool:
    return _started_here
