"""The Ray executor: Ray Data tasks that read, predict and write (an actor pool for GPU replicas).

Importing this package does not import ray; running a job does (``ray_backend.executor``).
"""

from common.run.backends import EngineBackend
from ray_backend.settings import RaySettings

BACKEND = EngineBackend(
    name="ray", settings_class=RaySettings, executor="ray_backend.executor", engine="ray_backend.engine"
)
