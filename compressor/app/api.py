"""The Python API: the same runs as the CLI, through the same option table, recipe and session.

Keywords are the CLI's flags with underscores (``prune_macs=0.5`` for ``--prune-macs 0.5``; a ``--no-x``
flag is ``x=False``), plus ``input_shape`` / ``input_names`` / ``input_dtype`` for the inputs, and a recipe
section's name with a dict for several of its fields (``preprocessing={...}``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compressor.app.options import overrides
from compressor.app.recipe import build_config

#: the pins every install takes, aarch64 wheels for the arm64 check included (the checkout's own file)
CONSTRAINTS = Path(__file__).resolve().parents[2] / "constraints.txt"


def compress(checkpoint: str | Path | None = None, *, recipe: str | Path | None = None, quiet: bool = True, **options: Any):
    """Compress ``checkpoint`` for a target and write a bundle; returns a :class:`CompressResult`."""
    from compressor.app.compress import compress as run

    return run(build_config(recipe, overrides({"checkpoint": checkpoint, **options})), quiet=quiet)


def analyze(checkpoint: str | Path | None = None, *, recipe: str | Path | None = None, quiet: bool = True, **options: Any) -> dict:
    """Per-layer INT8 sensitivity of ``checkpoint`` for an INT8 target, measured on that target's runtime."""
    from compressor.app.analyze import analyze as run

    options.setdefault("target", "ort-cpu-int8")
    return run(build_config(recipe, overrides({"checkpoint": checkpoint, **options})), quiet=quiet)


def bench_targets(checkpoint: str | Path | None = None, targets: str = "all", *, batch_sizes: str | None = None,
                  recipe: str | Path | None = None, quiet: bool = True, **options: Any) -> dict:
    """Build, validate and benchmark ``checkpoint`` on every listed target (``compressor bench MODEL --targets``)."""
    from compressor.app.bench import bench_targets as run

    return run(build_config(recipe, overrides({"checkpoint": checkpoint, **options})), targets, batch_sizes, quiet=quiet)


def search(checkpoint: str | Path | None = None, *, recipe: str | Path | None = None, quiet: bool = True, **options: Any):
    """Search the candidates of ``checkpoint`` under the budgets (``compressor search``); returns a :class:`SearchResult`."""
    from compressor.app.search.run import search as run

    return run(build_config(recipe, overrides({"checkpoint": checkpoint, **options})), quiet=quiet)


def verify(bundle: str | Path, threads: int | None = None, on: str | None = None, cpus: list[str] | None = None,
           quiet: bool = True) -> dict[str, Any]:
    """Check the manifest's schema, every file's sha256, and re-run the reference inputs; raises VerificationError on failure.
    ``on="arm64"``: re-run them with the bundle's own runtime on emulated Arm CPUs (``cpus``, default Cortex-A53 and
    Neoverse-N1) instead, and record the passing check in the manifest (``validation.arm64``)."""
    if on is not None:
        import backends.edge_worker
        from compressor.bundle.verify_arm64 import verify_on
        from compressor.core.progress import Progress

        return verify_on(bundle, on, Path(backends.edge_worker.__file__), cpus=cpus, threads=threads, progress=Progress(quiet))
    from backends.lm import open_lm_artifact
    from compressor.bundle.verify import verify_bundle

    return verify_bundle(bundle, threads=threads, lm_runner=open_lm_artifact)


def setup_arm64(runtimes: list[str], quiet: bool = False) -> dict[str, Any]:
    """Install the emulator, build the arm64 root and install the runtimes' pinned aarch64 wheels (cached outside the checkout)."""
    from compressor.bundle import arm64
    from compressor.core.progress import Progress

    return arm64.setup(runtimes, CONSTRAINTS, Progress(quiet))


def bench(artifact_or_bundle: str | Path, *, target: str | None = None, threads: int | None = None, batch_size: int = 1,
          duration: float = 3.0, iterations: int = 50) -> dict[str, Any]:
    """Benchmark an existing bundle or artifact file in a fresh process."""
    from compressor.app.bench_artifact import bench_existing
    from compressor.evaluation.benchmark import BenchmarkSettings

    return bench_existing(artifact_or_bundle, BenchmarkSettings.checked(threads=threads, batch_size=batch_size, duration=duration,
                                                                        iterations=iterations), target=target)


def list_targets() -> list[dict[str, Any]]:
    """Every known target, whether it is usable on this machine, and if not, why."""
    from compressor.core.registry import all_targets, runs_here
    from compressor.quantization.realiser import describe

    rows = []
    for s, ok, why in all_targets():
        runs, not_here = runs_here(s) if ok else (False, why)
        rows.append({"name": s.name, "backend": s.backend, "device": s.device.value, "precision": s.precision.value,
                     "format": s.artifact_format, "ir": s.ir.value, "usable": ok, "runs_here": runs,
                     "reason": why if not ok else (f"built, not run: {not_here}" if not runs else ""), "description": s.description,
                     "needs": s.needs, "realisers": describe(s)})
    return rows


def list_passes() -> list[dict[str, Any]]:
    """Every registered compression pass, in pipeline order: its phase, how it is switched on, and the package it comes from."""
    from compressor.app.options import flag_of
    from compressor.quantization.pipeline import registered

    return [{"name": p.name, "phase": p.phase,
             "switch": p.on_by or " or ".join([f for f in [flag_of("quantization", p.switch)] if f] + [f"--pass {p.name}"]),
             "description": p.description, "provided_by": type(p).__module__.split(".")[0]} for p in registered().values()]


def list_realisers() -> list[dict[str, Any]]:
    """Every registered quantization realiser: its IR, flavour, what it writes and the package that provides it."""
    from compressor.quantization.realiser import realisers

    return [{"ir": ir.value, "flavour": flavour, "description": r.description, "provided_by": type(r).__module__.split(".")[0]}
            for (ir, flavour), r in sorted(realisers().items())]
