"""Whether a Ray plan fits the cluster's nodes: checked on the driver before any task starts.

Ray queues a task that asks for more than any one node has and waits for a node that never comes:
a job on two nodes of 1 CPU whose tasks asked for ``{'CPU': 2.0}`` (the cluster's CPUs shared
among ``concurrency`` tasks) hung with nothing printed, as did ``[ray] num_cpus = 64`` on 2 CPUs.
So a plan is checked against the live nodes here, and one that cannot run fails at once with one
line naming what it asked for and the largest node.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from common.errors import JobError

Resources = Mapping[str, float]


def alive_nodes() -> list[dict[str, float]]:
    """The CPU and GPU resources of each live node of the Ray this process is connected to."""
    import ray

    return [
        {k: float(v) for k, v in node["Resources"].items() if k in ("CPU", "GPU")}
        for node in ray.nodes()
        if node.get("Alive")
    ]


def largest_node(nodes: Sequence[Resources]) -> dict[str, float]:
    """The node with the most CPUs (then GPUs): what one task or actor can ask for at most."""
    if not nodes:
        return {"CPU": 0.0}
    best = max(nodes, key=lambda n: (n.get("CPU", 0.0), n.get("GPU", 0.0)))
    return {k: v for k, v in best.items() if v}


def check_plan_fits(
    nodes: Sequence[Resources], what: str, demand: Resources, count: int = 1, then: Resources | None = None
) -> None:
    """Raises JobError unless ``count`` workers asking ``demand`` each fit the nodes at once, and
    (``then``) one more worker asking ``then`` still fits beside them (the read tasks that feed an
    actor pool). First-fit packing: the nodes are few, the replicas identical."""
    demand = {k: float(v) for k, v in demand.items() if v}
    free = [dict(n) for n in sorted(nodes, key=lambda n: -n.get("CPU", 0.0))]
    for placed in range(count):
        node = next((n for n in free if _fits(n, demand)), None)
        if node is None:
            raise JobError(_refusal(nodes, what, demand, placed, count))
        for k, v in demand.items():
            node[k] -= v
    if then and not any(_fits(n, then) for n in free):
        raise JobError(
            f"[ray] {count} x {what} asking {_show(demand)} leave no node with {_show(then)} for the read "
            f"tasks that feed them; the largest node has {_show(largest_node(nodes))}: lower "
            "[ray] num_cpus or concurrency"
        )


def _fits(node: Resources, demand: Resources) -> bool:
    return all(node.get(k, 0.0) + 1e-9 >= v for k, v in demand.items())


def _refusal(nodes: Sequence[Resources], what: str, demand: Resources, placed: int, count: int) -> str:
    largest = largest_node(nodes)
    if placed == 0:
        return (
            f"[ray] {what} asks for {_show(demand)}, but the largest of {len(nodes)} node(s) has "
            f"{_show(largest)}; Ray would wait for it forever: lower [ray] num_cpus or num_gpus"
        )
    return (
        f"[ray] {count} x {what} asking {_show(demand)} do not fit the {len(nodes)} node(s) at once "
        f"(only {placed} do; the largest node has {_show(largest)}): lower [ray] concurrency or num_cpus"
    )


def _show(resources: Resources) -> str:
    return "{" + ", ".join(f"'{k}': {float(v)!r}" for k, v in sorted(resources.items())) + "}"
