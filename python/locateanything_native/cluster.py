"""Engine actors on a Ray cluster for the command-line front ends (`locateanything --ray`, `locateanything
eval --ray`): one engine per actor, work items sent to whichever actor is free, results handed back to
the caller as they finish. (Ray Data pipelines use `locateanything_native.ray.LocateAnythingPredictor`.)

Ray is an optional extra (`pip install locateanything_native[ray]`); this module imports it only when a
pool is made. An actor that dies is restarted by Ray and its call retried (`max_restarts=-1`,
`max_task_retries=-1`), so every item is answered exactly once as long as the caller records each
result once. Engines on one node share the packed weight cache: the first actor there builds it under
its lock, the others wait and map it.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Iterable, Iterator, Optional

# Test hook: when this names a file that does not exist yet, the first actor call creates it and kills
# its process (an actor dying mid-batch), once per file.
DIE_ONCE_ENV = "LOCATEANYTHING_TEST_ACTOR_DIE_ONCE"


def import_ray():
    try:
        import ray
    except ImportError as exc:
        raise ImportError("--ray needs Ray: pip install 'locateanything_native[ray]' (ray >= 2.50)") from exc
    return ray


def connect(address: Optional[str]) -> bool:
    """Joins a Ray cluster: `address` "" or "auto" joins the running one ($RAY_ADDRESS, or `ray start`
    on this machine) and starts a local one when there is none; any other value is the cluster address.
    Returns True when this call started Ray (so the caller shuts it down)."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    if address not in (None, "", "auto"):
        ray.init(address=address, log_to_driver=False)
        return True
    try:
        ray.init(address="auto", log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError):
        ray.init(include_dashboard=False, log_to_driver=False)
    return True


class EngineActor:
    """What runs inside each actor: one engine, and calls of `fn(engine, *args)` on it."""

    def __init__(self, model: str, threads: int, quantization: str):
        from .engine import Engine

        self.engine = Engine(model, threads=threads, quantization=quantization)

    def pid(self) -> int:
        return os.getpid()

    def threads(self) -> int:
        return self.engine.threads

    def call(self, fn: Callable, *args) -> Any:
        marker = os.environ.get(DIE_ONCE_ENV)
        if marker:
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.close(fd)
                os._exit(1)
        return fn(self.engine, *args)


class EnginePool:
    """`actors` engine actors of `cpus_per_actor` CPUs (and as many engine threads) each; 0 actors = as
    many as the cluster's CPUs allow."""

    def __init__(self, model: str, quantization: str, address: Optional[str] = "", actors: int = 0,
                 cpus_per_actor: float = 2):
        self.ray = import_ray()
        self.started = connect(address)
        if cpus_per_actor <= 0:
            raise ValueError(f"cpus_per_actor must be > 0, got {cpus_per_actor}")
        cluster_cpus = float(self.ray.cluster_resources().get("CPU", 1))
        n = int(actors) if actors and actors > 0 else max(1, int(cluster_cpus // cpus_per_actor))
        remote = self.ray.remote(num_cpus=cpus_per_actor, max_restarts=-1, max_task_retries=-1)(EngineActor)
        threads = max(1, int(cpus_per_actor))
        self.actors = [remote.remote(model, threads, quantization) for _ in range(n)]

    def imap_unordered(self, fn: Callable, items: Iterable, per_actor: int = 2) -> Iterator[tuple[Any, Any]]:
        """Yields (item, fn(engine, item)) as calls finish, keeping `per_actor` calls queued per actor."""
        ray = self.ray
        pending = iter(items)
        in_flight: dict = {}  # ObjectRef → (actor index, item)
        load = [0] * len(self.actors)

        def refill() -> None:
            while True:
                free = min(range(len(self.actors)), key=lambda i: load[i])
                if load[free] >= per_actor:
                    return
                item = next(pending, None)
                if item is None:
                    return
                in_flight[self.actors[free].call.remote(fn, item)] = (free, item)
                load[free] += 1

        refill()
        while in_flight:
            done, _ = ray.wait(list(in_flight), num_returns=1, timeout=0.5)
            for ref in done:
                index, item = in_flight.pop(ref)
                load[index] -= 1
                yield item, ray.get(ref)
            refill()

    def close(self) -> None:
        for actor in self.actors:
            try:
                self.ray.kill(actor)
            except Exception:  # noqa: BLE001 - already gone
                pass
        if self.started:
            self.ray.shutdown()
