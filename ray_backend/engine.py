"""Starting, joining and stopping the Ray instance this process uses (``start``, ``running``,
``stop``, as ``spark_backend.engine``).

A local start has no dashboard and reports no usage. Turning off worker prestart and metrics
collection as well was measured in paired cold runs and made no difference that the noise of a
shared 2-CPU machine let through (README, "Benchmarks"), so Ray's defaults stay.
Ray's own console lines are silenced where they start: its driver logger at ERROR (that drops
the token-auth notice of a local start), Ray Data's loggers at ERROR (its INFO lines and the
progress-bar notice), and on CPUs the executor runs tasks, not actors with ``max_restarts``, so
Ray's C++ core prints no warning about restartable actors. ``stop()`` shuts down only a Ray this
process started; a cluster it joined (``[ray] address``) is left running.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ray_backend.settings import RaySettings

from common.run.signals import engine_starting

_QUIET_LOGGERS = ("ray.data._internal.progress", "ray.data")

_started_here = False


def _quiet_environment() -> None:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    os.environ.setdefault("RAY_DISABLE_FAILURE_SIGNAL_HANDLER", "1")


def start(settings: RaySettings) -> float:
    """Starts or joins Ray unless it is already running here; returns the start seconds
    (``init_ray``: the start options, shipping the code to a cluster, the auth hint)."""
    if running():
        for name in ("address", "runtime_env"):
            if getattr(settings, name):
                warnings.warn(
                    f"Ray is already initialised in this process; [ray] {name} = "
                    f"{getattr(settings, name)!r} is ignored",
                    stacklevel=2,
                )
        return 0.0
    ship = None if settings.ship_code == "auto" else bool(settings.ship_code)
    return init_ray(settings.address, dict(settings.runtime_env), ship_code=ship)


def init_ray(address: str = "", runtime_env: dict | None = None, ship_code: bool | None = None) -> float:
    """Starts Ray here (``address`` empty) or joins the cluster at ``address``; returns seconds.

    Joining a cluster whose head is on another machine ships this harness's packages as
    ``py_modules`` (merged into ``runtime_env``), so that its workers run the driver's code; a
    cluster started on this machine (``ray start --head``, then ``address = "auto"``) runs the same
    files already, and packing and unpacking them would cost every job seconds (``ship_code``
    None decides so; True or False overrides). A cluster that refuses the driver's auth token
    fails with a one-line hint.
    """
    global _started_here
    _quiet_environment()  # before Ray reads its constants from the environment
    import ray

    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    started = time.perf_counter()
    kwargs = dict(include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False)
    runtime_env = dict(runtime_env or {})
    if not address:
        with _starting(ray):
            ray.init(runtime_env=runtime_env or None, **kwargs)
            _started_here = True
        return time.perf_counter() - started
    if ship_code or (ship_code is None and not on_this_machine(address)):
        import common
        import ray_backend

        ours = [str(Path(common.__file__).parent), str(Path(ray_backend.__file__).parent)]
        runtime_env["py_modules"] = [*ours, *runtime_env.get("py_modules", [])]
    try:
        with _starting(ray):
            ray.init(address=address, runtime_env=runtime_env or None, **kwargs)
            _started_here = True  # connected here: stop() disconnects; the cluster keeps running
    except ConnectionError as exc:  # Ray 2.60 keeps the AuthenticationError as text in the cause
        if "InvalidAuthToken" not in f"{exc} {exc.__cause__}":
            raise
        raise ConnectionError(
            f"the Ray cluster at {address} refused this driver's auth token: set RAY_AUTH_MODE=token "
            "and the cluster's token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token; "
            "`ray get-auth-token` on the head node prints it)"
        ) from exc
    return time.perf_counter() - started


@contextlib.contextmanager
def _starting(ray):
    """``ray.init`` under ``engine_starting``: a SIGTERM or Ctrl-C waits until Ray is up and recorded
    as ours, then stops it. ``ray.init`` would otherwise swap in a SIGTERM handler that calls
    ``sys.exit(15)`` (exit 15, no line, a half-started Ray), so that swap is skipped; its core worker's
    C++ failure handler (a ``*** SIGTERM received`` dump, then an abort) is off through
    ``RAY_DISABLE_FAILURE_SIGNAL_HANDLER`` (``_quiet_environment``)."""
    ray._private.ray_constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER = True  # read when ray was imported
    utils = ray._private.utils
    swap = utils.set_sigterm_handler
    utils.set_sigterm_handler = lambda handler: None
    try:
        with engine_starting():
            yield
    finally:
        utils.set_sigterm_handler = swap


def on_this_machine(address: str) -> bool:
    """Whether the cluster at ``address`` (``auto``: ``$RAY_ADDRESS``, else the cluster last started
    here) has its head on this machine. ``ray://`` (Ray Client) always counts as remote."""
    if address.startswith("ray://"):
        return False
    if address == "auto":
        address = os.environ.get("RAY_ADDRESS", "")
        if not address:
            current = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
            address = current.read_text().strip() if current.is_file() else ""
    host = address.rsplit(":", 1)[0]
    return bool(host) and host in local_addresses()


def local_addresses() -> set[str]:
    """This machine's IPv4 addresses (every interface, by ``SIOCGIFADDR``) and names for itself."""
    import fcntl
    import socket
    import struct

    found = {"localhost", socket.gethostname()}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        for _, name in socket.if_nameindex():
            try:
                packed = fcntl.ioctl(probe.fileno(), 0x8915, struct.pack("256s", name[:15].encode()))
            except OSError:  # an interface without an IPv4 address
                continue
            found.add(socket.inet_ntoa(packed[20:24]))
    return found | {a for a in found if a.startswith("127.")}


def running() -> bool:
    import sys

    return "ray" in sys.modules and sys.modules["ray"].is_initialized()


def stop() -> None:
    """Shuts down the Ray this process started (its raylet, GCS and workers exit); a joined
    cluster only loses this driver and its workers. A Ray someone else initialised in this
    process (a notebook, the test suite) is left alone."""
    global _started_here
    if not (_started_here and running()):
        _started_here = False
        return
    import ray

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ray.shutdown()
    _started_here = False


def started_here() -> bool:
    return _started_here


def quiet_loggers() -> None:
    """Ray Data's own lines off: its INFO lines, the progress-bar notice, and the traceback it logs
    when a task fails, which the job reports as its one error line (``--debug`` shows the whole
    traceback). Call after ``ray.data`` set up its logging, which it does when first used."""
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
