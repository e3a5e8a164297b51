"""The Ray session of a build and the one loop every Ray stage runs through (``map_stream``).

``session(execution)`` joins ``execution.address`` or starts a local Ray, once per process, on first use
(a build whose steps are all current never starts Ray); a Ray that the caller already started (a test's
fixture, a notebook) is used as it is. ``map_stream(rows, worker, args, resources)`` runs
``ray.data.from_items(rows).map_batches(worker, ...)`` on an actor pool: ``worker(*args)`` is built once per
actor (the model loaded once), called per batch of rows (dict of numpy columns -> dict of numpy columns);
output batches stream back to the caller as they finish. Ray restarts a killed actor and retries its batch;
each row's output still arrives exactly once (callers check by index). Nothing here writes the database.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from typing import Any

from and_engine.config import PROJECT_ROOT, ExecutionConfig, StageResources

_STARTED: list[bool] = []  # whether this process started the Ray it uses (then ``shutdown`` stops it)


class RayUnavailable(RuntimeError):
    """Ray is not installed or the cluster cannot be reached; the message says what to do."""


def worker_env(remote: bool) -> dict:
    """The runtime_env every worker gets: this project's ``and_engine`` importable (a local Ray: on
    PYTHONPATH; a remote cluster: shipped as a py_module, so workers run the driver's code version)."""
    if remote:
        return {"py_modules": [str(PROJECT_ROOT / "and_engine")], "excludes": ["__pycache__"]}
    path = os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {"env_vars": {"PYTHONPATH": path, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
                         "TRANSFORMERS_OFFLINE": os.environ.get("TRANSFORMERS_OFFLINE", "1")}}


def _ray():
    try:
        import ray
    except ImportError as exc:
        raise RayUnavailable("execution.engine = 'ray' needs Ray: pip install -r requirements.txt "
                             "(ray[data]; ray[data,llm] on GPU machines)") from exc
    return ray


def session(execution: ExecutionConfig):
    """The ``ray`` module, connected: an initialised Ray as it is, else ``ray.init`` of ``execution.address``
    ("" = a new local Ray sized to this machine's CPUs)."""
    ray = _ray()
    if ray.is_initialized():
        return ray
    address = execution.address.strip()
    kwargs: dict[str, Any] = {"runtime_env": worker_env(bool(address)), "log_to_driver": False,
                              "configure_logging": False}
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(include_dashboard=False, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise RayUnavailable(f"execution.address {address or '(local)'}: cannot start or reach Ray: {exc}") from exc
    _STARTED.append(True)
    return ray


def shutdown() -> None:
    """Stop the Ray this process started (a Ray it joined or was given is left running)."""
    if _STARTED:
        _STARTED.clear()
        _ray().shutdown()


def pool_args(resources: StageResources, default_batch: int) -> dict[str, Any]:
    """``[execution.<stage>]`` -> ``map_batches`` keyword arguments: an actor pool of ``actors``, each
    reserving ``num_cpus`` / ``num_gpus``, ``batch_size`` rows per call (0 = the stage's own)."""
    from ray.data import ActorPoolStrategy

    args: dict[str, Any] = {"compute": ActorPoolStrategy(size=resources.actors),
                            "batch_size": resources.batch_size or max(1, default_batch),
                            "num_cpus": resources.num_cpus, "batch_format": "numpy"}
    if resources.num_gpus:
        args["num_gpus"] = resources.num_gpus
    return args


def map_stream(execution: ExecutionConfig, resources: StageResources, rows: Sequence[dict], worker: type,
               args: Sequence[Any] = (), default_batch: int = 16) -> Iterator[dict[str, Any]]:
    """Rows -> output batches of ``worker(*args)(batch)`` as they finish (any order), from an actor pool.

    ``args`` travel through the object store once (a model is shipped once, not per batch). Blocks hold about
    one batch each, so the first results come back early and memory stays bounded by the batches in flight.
    """
    ray = session(execution)
    if not rows:
        return
    pool = pool_args(resources, default_batch)
    blocks = max(1, min(len(rows), math.ceil(len(rows) / pool["batch_size"])))
    ds = ray.data.from_items(list(rows), override_num_blocks=blocks)
    ds = ds.map_batches(worker, fn_constructor_args=tuple(args), **pool)
    yield from ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1)
