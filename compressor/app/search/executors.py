"""Where trials run. ``local``: one evaluator in this process, one benchmark at a time, so timings stay clean. ``ray``: an
evaluator per kind of node (a Ray actor with the resources its trials declare: the benchmark's threads as CPUs, one GPU for
GPU targets), so CPU targets are measured on CPU nodes and GPU targets on GPU nodes, each result carrying its node's
environment. The sampler stays in this process and proposes one trial at a time either way, so the same seed proposes the
same candidates on both executors."""

from __future__ import annotations

import io
import socket
import tarfile
from pathlib import Path
from typing import Any

from compressor.app.search.space import Point
from compressor.core.errors import InputError
from compressor.core.progress import Progress
from compressor.core.registry import get_target


class LocalExecutor:
    name = "local"
    gpus = False  # a GPU target that cannot run here is left out of a local search (runs_here says why)

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.evaluator = None

    def start(self, config_json: str, calibrate: bool, train: bool) -> None:
        from compressor.app.search.evaluator import Evaluator

        self.evaluator = Evaluator(config_json, calibrate, train, self.quiet)

    def evaluate(self, point: Point) -> dict[str, Any]:
        return self.evaluator.evaluate(point.to_dict())

    def confirm(self, points: list[Point], rounds: int) -> dict[str, list[float]]:
        return self.evaluator.confirm([p.to_dict() for p in points], rounds)

    def write(self, point: Point, out: Path, overwrite: bool) -> None:
        self.evaluator.write(point.to_dict(), str(out), overwrite)

    def close(self) -> None:
        if self.evaluator is not None:
            self.evaluator.close()


def _reachable(address: str) -> None:
    """One line, fast, when a Ray address cannot be reached (ray.init would retry for a long time)."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise InputError(f"--ray-address '{address}' is not HOST:PORT or 'auto' (e.g. 10.0.0.5:6379, the head node's GCS port)")
    try:
        with socket.create_connection((host, int(port)), timeout=5):
            pass
    except OSError as e:
        raise InputError(f"cannot reach the Ray cluster at {address} ({e.strerror or e}): start it with `ray start --head`, or check "
                         "the address and the firewall; without --ray-address a local Ray is started for the search") from None


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None, threads: int, progress: Progress):
        from compressor.core.registry import package_missing

        missing = package_missing("ray")
        if missing:
            raise InputError(f"--executor ray needs Ray: {missing} (pip install 'compressor[ray]')")
        import ray

        if address not in (None, "auto"):
            _reachable(address)
        self.started = False
        if not ray.is_initialized():
            try:
                with progress.stage(f"connected to Ray ({address or 'a local Ray started for the search'})"):
                    if address is None:
                        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
                        self.started = True
                    else:
                        ray.init(address=address, log_to_driver=False, configure_logging=False)
            except ConnectionError as e:
                raise InputError(f"cannot connect to a Ray cluster at {address}: {str(e).splitlines()[0]}; start one with "
                                 "`ray start --head`, or drop --ray-address to start a local Ray") from None
        self.ray = ray
        self.args: tuple = ()
        self.threads = threads
        self.actors: dict[str, Any] = {}
        resources = ray.cluster_resources()
        self.gpus = resources.get("GPU", 0) > 0
        if resources.get("CPU", 0) < threads:
            raise InputError(f"the Ray cluster has {resources.get('CPU', 0):g} CPUs and each trial asks for {threads} (--threads): "
                             "lower --threads or add nodes")
        self.environment: dict[str, Any] = {"ray": {"address": address or "local", "resources": {k: v for k, v in resources.items()
                                                                                                  if not k.startswith("node:")}}}

    def start(self, config_json: str, calibrate: bool, train: bool) -> None:
        self.args = (config_json, calibrate, train)

    def _actor(self, kind: str):
        if kind not in self.actors:
            from compressor.app.search.evaluator import Evaluator

            options: dict[str, Any] = {"num_cpus": self.threads}
            if kind == "gpu":
                options["num_gpus"] = 1
            self.actors[kind] = self.ray.remote(Evaluator).options(**options).remote(*self.args, quiet=True)
        return self.actors[kind]

    def _kind(self, point: Point) -> str:
        return "gpu" if get_target(point.target).device.value == "gpu" else "cpu"

    def evaluate(self, point: Point) -> dict[str, Any]:
        return self.ray.get(self._actor(self._kind(point)).evaluate.remote(point.to_dict()))

    def confirm(self, points: list[Point], rounds: int) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {}
        for kind in dict.fromkeys(self._kind(p) for p in points):  # each node kind measures its own points, taking turns
            mine = [p.to_dict() for p in points if self._kind(p) == kind]
            out.update(self.ray.get(self._actor(kind).confirm.remote(mine, rounds)))
        return out

    def write(self, point: Point, out: Path, overwrite: bool) -> None:
        from compressor.bundle.writer import BundleWriter

        data = self.ray.get(self._actor(self._kind(point)).bundle_bytes.remote(point.to_dict()))
        with BundleWriter(out, overwrite) as bundle, tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            tar.extractall(bundle.staging, filter="data")
            bundle.adopt()

    def close(self) -> None:
        for actor in self.actors.values():
            try:
                self.ray.get(actor.close.remote())
            except Exception:  # noqa: BLE001 - closing a remote session is best effort
                pass
            self.ray.kill(actor)
        if self.started:
            self.ray.shutdown()
