"""A local Ray cluster for the tests whose workers know what the tests register in the driver:
the test-only tasks, and registries of seeded weights (written as :func:`serving.write_seeded_weights`
writes them, so that a worker's models equal the driver's), given to the workers as a user would
give them: in ``IMGZOO_REGISTRY``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import imgzoo

TESTS = Path(__file__).resolve().parent

SEEDED_TASKS = ("invert", "toy-upscale", "toy-depth", "toy-inpaint")


def start_local_ray(registries: Path) -> None:
    """``ray.init(num_cpus=2)``, each worker set up by :func:`setup_worker` and reading the
    registries in the folder ``registries``."""
    import ray

    from imgzoo.catalogue import ENV_REGISTRY

    # A loaded test machine starts Serve's HTTP proxy slower than Serve's 5 s readiness check,
    # which then kills and restarts it, over and over. The cluster's processes inherit these.
    for variable in ("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", "RAY_SERVE_PROXY_HEALTH_CHECK_TIMEOUT_S"):
        os.environ.setdefault(variable, "120")
    path = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    files = os.pathsep.join(str(file) for file in sorted(registries.glob("*.toml")))
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={
            "env_vars": {"PYTHONPATH": path, "OMP_NUM_THREADS": "1", ENV_REGISTRY: files},
            "worker_process_setup_hook": "ray_workers.setup_worker",
        },
    )


def setup_worker() -> None:
    """Register the test-only tasks in a Ray worker."""
    from toy_contract_tasks import ContractTasksPlugin
    from toy_tasks import ToyTasksPlugin

    imgzoo.register_plugin(ToyTasksPlugin(), name="toy-tasks")
    imgzoo.register_plugin(ContractTasksPlugin(), name="contract-tasks")


@contextmanager
def toy_tasks_registered() -> Iterator[None]:
    """The test-only tasks registered in this process for a while (a session's or module's
    fixture: the per-test fixtures register them for one test only)."""
    from toy_contract_tasks import ContractTasksPlugin
    from toy_tasks import ToyTasksPlugin

    names = [
        imgzoo.register_plugin(ToyTasksPlugin(), name="fixture-toy-tasks"),
        imgzoo.register_plugin(ContractTasksPlugin(), name="fixture-contract-tasks"),
    ]
    try:
        yield
    finally:
        for name in names:
            imgzoo.unregister_plugin(name)
