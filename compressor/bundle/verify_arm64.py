"""``compressor verify BUNDLE --on arm64``: the bundle's own runtime re-runs its reference inputs on emulated Arm CPUs
(``compressor/bundle/arm64.py``), the outputs are compared with the stored ones within the bundle's recorded tolerance (the
comparison ``compressor verify`` makes here), and a passing check is written into the manifest as ``validation.arm64``.

A failing check (drift, a crash, CPU models that disagree) changes nothing in the bundle and says why in one line."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from compressor.bundle import arm64
from compressor.bundle.manifest import validate_manifest
from compressor.bundle.verify import drift_line, output_checks, reference_io
from compressor.bundle.writer import MANIFEST, check_files, open_bundle, read_manifest, write_tarball
from compressor.core.errors import InputError, TargetError, VerificationError
from compressor.core.progress import Progress
from compressor.core.registry import get_backend, get_target

COVERED = "ExecuTorch, LiteRT and ONNX Runtime (ORT Mobile)"


def verify_on(path: str | Path, isa: str, worker: Path, cpus: list[str] | None = None, threads: int | None = None,
              progress: Progress | None = None) -> dict[str, Any]:
    """Re-run ``path``'s reference inputs on each emulated CPU of ``isa``; raise VerificationError when any run fails or
    drifts (the bundle is then left as it was), else record ``validation.arm64`` in its manifest and return it."""
    arm64.check_isa(isa)
    cpus = list(cpus or arm64.DEFAULT_CPUS)
    arm64.check_cpus(cpus)
    progress = progress or Progress(quiet=True)
    threads = threads or 1
    with tempfile.TemporaryDirectory(prefix="compressor-verify-arm64-") as tmp:
        bundle = open_bundle(Path(path), Path(tmp))
        manifest = read_manifest(bundle)
        problems = check_files(bundle, manifest)
        if problems:
            raise VerificationError(f"bundle '{path}' failed verification: {problems[0]}; rebuild it or fetch an intact copy")
        if manifest.get("task") == "text-generation":
            raise InputError(f"bundle '{path}' is a language model: --on {isa} checks edge bundles of {COVERED}")
        name = manifest["target"]["name"]
        try:
            runtime = get_backend(get_target(name).backend).arm64_runtime
        except TargetError as e:
            raise VerificationError(f"cannot check bundle '{path}' on {isa}: {e}") from None
        if runtime is None:
            raise TargetError(f"bundle '{path}' is {name}, whose runtime has no {isa} runner here: --on {isa} checks bundles of "
                              f"{COVERED}")
        problem = arm64.environment_problem(runtime)
        if problem:
            raise TargetError(f"cannot check bundle '{path}' on {isa}: {problem}")
        specs, inputs, expected = reference_io(bundle, manifest)
        batch = int(manifest["reference"]["batch_size"])
        real = len(inputs[0])
        pad = -real % batch  # whole batches, the last padded by repetition as `compressor verify` does
        feeds = Path(tmp) / "inputs.npz"
        np.savez(feeds, **{s.name: np.concatenate([a, np.repeat(a[-1:], pad, axis=0)]) if pad else a for s, a in zip(specs, inputs)})
        runs, outputs, version = [], [], "unknown"
        for cpu in cpus:
            with progress.stage(f"{real} reference inputs through {runtime} on an emulated {cpu} (emulated time is not device latency)"):
                got, report = arm64.run_worker(runtime, bundle, manifest["artifact"]["path"], feeds, [s.name for s in specs], batch, cpu,
                                               threads, worker)
            got = [g[:real] for g in got]
            checks = output_checks(manifest, expected, got)
            version = report["version"]
            runs.append({"cpu": cpu, "passed": all(c["passed"] for c in checks),
                         "max_abs_error": max((c.get("max_abs_error", float("inf")) for c in checks), default=0.0),
                         "cosine_min": min((c.get("cosine_min", -1.0) for c in checks), default=1.0),
                         "hwcaps": report["hwcaps"], "emulated_seconds_per_batch": report["median_batch_s"], "_checks": checks})
            outputs.append(got)
            if report["hwcaps"].get("sme"):
                raise VerificationError(f"the emulated {cpu} advertised SME, under which XNNPACK's int8 kernels give wrong outputs: "
                                        "the check is not trustworthy; the bundle is kept as it was")
        agree = all(len(o) == len(outputs[0]) and all(np.array_equal(a, b) for a, b in zip(o, outputs[0])) for o in outputs[1:])
        bad = next((r for r in runs if not r["passed"]), None)
        if bad:
            check = next(c for c in bad["_checks"] if not c["passed"])
            others = [r["cpu"] for r in runs if r["passed"]]
            split = f" (it passed on {', '.join(others)}: the CPU models disagree)" if others else ""
            raise VerificationError(f"bundle '{path}' on an emulated {bad['cpu']} ({runtime} {version}): "
                                    f"{drift_line(check, manifest['reference']['tolerance'])}{split}; the bundle is kept as it was")
        record = {"passed": True, "emulator": arm64.qemu_version(), "root": f"Debian {arm64.SUITE} arm64 (mmdebstrap)", "runtime": runtime,
                  "runtime_version": version, "cpus": [{k: v for k, v in r.items() if k != "_checks"} for r in runs],
                  "max_abs_error": max(r["max_abs_error"] for r in runs), "cpus_agree": agree,
                  "checked_at": datetime.now(UTC).isoformat(timespec="seconds")}
        _record(Path(path), bundle, manifest, record)
        return {"bundle": str(path), "target": name, "isa": isa, "reference_samples": real, **record}


def _record(path: Path, bundle: Path, manifest: dict[str, Any], record: dict[str, Any]) -> None:
    """``validation.arm64`` into the manifest (the manifest is not among the hashed files), replacing it atomically; a
    ``.tar.gz`` bundle is repacked beside itself and then moved over the original."""
    validation = dict(manifest.get("validation") or {"validated": True})
    validation["arm64"] = record
    manifest = {**manifest, "validation": validation}
    validate_manifest(manifest, f"bundle '{path}'")
    target = bundle / MANIFEST
    tmp = target.with_name(f".{MANIFEST}.tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(tmp, target)
    if not path.is_dir():  # the repacked tarball is copied beside the original (another filesystem, maybe), then moved over it
        staged = path.with_name(f".{path.name}.tmp")
        try:
            shutil.copyfile(write_tarball(bundle), staged)
            os.replace(staged, path)
        finally:
            staged.unlink(missing_ok=True)
