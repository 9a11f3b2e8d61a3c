"""One search trial, evaluated: the same evaluation session ``compress`` uses, asked for one point at a time.

An :class:`Evaluator` owns an evaluation session (the model, its data and FP32 reference loaded once; pruned and
fine-tuned models, exported IRs and calibrated plans shared by every trial that needs them). It runs in this process
(``--executor local``) or as a Ray actor on a node of the cluster (``--executor ray``); the record it returns is plain
data, with the environment of the node that measured it.
"""

from __future__ import annotations

import io
import math
import socket
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from compressor.app.compress import write_result
from compressor.app.recipe import RunConfig
from compressor.app.search.space import Point, static_plan
from compressor.app.search_settings import DIMENSIONS
from compressor.app.session import open_session
from compressor.core.environment import describe_environment
from compressor.core.errors import CompressorError, first_line
from compressor.core.progress import Progress
from compressor.evaluation.auto_precision import AutoPrecision
from compressor.evaluation.session import Candidate, CandidateResult


def candidate_config(config: RunConfig, point: Point, output: str | None = None) -> RunConfig:
    """The run settings of one point: what `compressor compress --recipe` needs to rebuild it (the bundle's manifest holds it)."""
    data = config.model_dump(mode="json", exclude={"search"})
    data["target"] = point.target
    values, static = dict(point.values), static_plan(point.choice)
    for d in DIMENSIONS:
        if d.name in values:
            d.set(data, values[d.name])
        elif not d.searchable.applies(static):
            d.switch_off(data)
    q = data["quantization"]
    q["auto_precision"], q["sensitivity"] = point.auto, False
    if output is not None:
        data["output"] = {**(data.get("output") or {}), "path": output}
    return RunConfig.model_validate(data)


class Evaluator:
    def __init__(self, config_json: str, calibrate: bool, train: bool, quiet: bool = False):
        self.config = RunConfig.model_validate_json(config_json)
        self.ui = Progress(quiet)
        self.session = open_session(self.config, self.ui, calibrate=calibrate, train=train)
        self.session.reference_outputs()
        self.kept: dict[str, tuple[CandidateResult, dict | None]] = {}  # point key -> its result and auto-precision section
        env = describe_environment()
        self.node = {"hostname": socket.gethostname(), "cpu": env["cpu"].get("model"), "gpu": env.get("gpu"),
                     "threads": self.session.threads}
        self.environment = env

    def close(self) -> None:
        self.session.close()

    def _build(self, point: Point) -> tuple[CandidateResult, dict | None]:
        cfg = candidate_config(self.config, point)
        candidate = Candidate(cfg.target, cfg.pruning, cfg.quantization, cfg.qat)
        self.session.prepare([candidate])
        if point.auto:
            result, _, auto = AutoPrecision(self.session, candidate).run()
            return result, auto
        return self.session.evaluate(candidate, benchmark=False), None

    def evaluate(self, point_data: dict[str, Any]) -> dict[str, Any]:
        """Build and validate the point; benchmark it (in a fresh process) only when it meets the accuracy and size budgets."""
        point = Point.of(point_data)
        gate, t0 = self.config.gate, time.perf_counter()
        record: dict[str, Any] = {"point": point.to_dict(), "label": point.label(), "target": point.target, "node": self.node,
                                  "benchmarked": False, "p50_ms": None, "p90_ms": None, "model_rss_mb": None, "size_mb": None,
                                  "fidelity": None, "failures": []}
        try:
            result, auto = self._build(point)
        except CompressorError as e:
            return {**record, "status": "failed", "reason": first_line(e), "seconds": round(time.perf_counter() - t0, 1)}
        if not result.ok:
            return {**record, "status": "failed" if result.status != "built" else "not run", "reason": result.reason,
                    "seconds": round(time.perf_counter() - t0, 1)}
        self.kept[point.key] = (result, auto)
        fid = result.fidelity.to_dict() if result.fidelity else None
        record.update(size_mb=result.size_bytes / 2**20, fidelity=fid, loss=self.session.objective.loss(result.fidelity),
                      pruning={k: result.pruning.get(k) for k in ("macs_removed", "params_after")} if result.pruning else None,
                      float_layers=len(auto["steps"][auto["chosen_step"] - 1]["float_layers"]) if auto else None)
        failures = gate.artifact_failures(result.fidelity, result.size_bytes)
        if not failures and self.session.benchmark.enabled:
            if self.session.benchmark.batch_size not in result.benchmarks:
                self.session.bench(result)
            bench = result.benchmarks[self.session.benchmark.batch_size]
            if bench.error:
                return {**record, "status": "failed", "reason": bench.error, "seconds": round(time.perf_counter() - t0, 1)}
            record.update(benchmarked=True, p50_ms=bench.p50_ms, p90_ms=bench.latency_ms.p90, model_rss_mb=bench.model_rss_mb)
            failures += gate.measured_failures(bench)
        record.update(status="feasible" if not failures else "infeasible", failures=failures,
                      seconds=round(time.perf_counter() - t0, 1))
        return record

    def confirm(self, points: list[dict[str, Any]], rounds: int) -> dict[str, list[float]]:
        """p50 of each point's artifact re-measured ``rounds`` times, the points taking turns (each in a fresh process, as in its
        trial): one trial's single measurement chose the winner, so the final comparison is measured again, interleaved."""
        from compressor.evaluation.benchmark import run_isolated

        s = self.session
        feeds = s.benchmark_feeds(s.benchmark.batch_size)
        out: dict[str, list[float]] = {}
        for _ in range(rounds):
            for p in points:
                key = Point.of(p).key
                if key not in self.kept:
                    continue  # evaluated before a resume: its artifact is gone, and its trial's figure stands
                result = self.kept[key][0]
                r = run_isolated(result.target.name, result.artifact.path, feeds, s.benchmark)
                out.setdefault(key, []).append(r.p50_ms)
        return out

    def write(self, point_data: dict[str, Any], out: str, overwrite: bool) -> dict[str, Any]:
        """Write the point's bundle at ``out`` (rebuilt first when it was evaluated by an earlier, interrupted search)."""
        point = Point.of(point_data)
        if point.key not in self.kept:
            self.ui.note(f"rebuilding {point.label()} (evaluated before the search was resumed) to write its bundle")
            record = self.evaluate(point_data)
            if point.key not in self.kept:
                raise CompressorError(f"could not rebuild {point.label()} to write its bundle: {record.get('reason')}")
        result, auto = self.kept[point.key]
        cfg = candidate_config(self.config, point, output=out)
        cfg.output.overwrite = overwrite
        written = write_result(cfg, self.session, result, auto, self.ui, Path(out))
        return {"bundle": str(written.bundle), "passed": written.passed}

    def bundle_bytes(self, point_data: dict[str, Any]) -> bytes:
        """The point's bundle as a .tar.gz (a Ray actor on another node sends its bundle back this way)."""
        with tempfile.TemporaryDirectory(prefix="compressor-search-bundle-") as tmp:
            out = Path(tmp) / "bundle"
            self.write(point_data, str(out), overwrite=False)
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w:gz") as tar:
                tar.add(out, arcname=".")
            return buf.getvalue()


def objective_value(record: dict[str, Any], objective: str) -> float:
    """What the sampler minimises for a record (inf when it was not measured: it failed a budget first)."""
    value = {"latency": record.get("p50_ms"), "size": record.get("size_mb"), "accuracy": record.get("loss")}[objective]
    return math.inf if value is None else float(value)
