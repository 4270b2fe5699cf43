"""The Ray executor: transforms and model fused in one callable class on a Ray Data actor pool.

Importing this package does not import ray; ``run`` does.
"""

from __future__ import annotations

from common.settings import parse_section
from ray_backend.settings import RaySettings

NAME = "ray"


def parse_settings(section, where: str) -> RaySettings:
    return parse_section(RaySettings, section, where)


def run(job, bundle, inputs, stage, settings: RaySettings):
    from ray_backend.executor import run as _run

    return _run(job, bundle, inputs, stage, settings)
