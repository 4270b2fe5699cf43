"""The Ray executor: transforms and model fused in one callable class on a Ray Data actor pool.

Importing this package does not import ray; running a job does (``ray_backend.executor``).
"""

from common.run.backends import EngineBackend
from ray_backend.settings import RaySettings

BACKEND = EngineBackend(name="ray", settings_class=RaySettings, executor="ray_backend.executor")
