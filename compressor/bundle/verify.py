"""``compressor verify``: is this bundle intact, and does its artifact still produce its recorded outputs?"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from compressor.bundle.writer import check_files, open_bundle, read_manifest
from compressor.core.errors import TargetError, VerificationError
from compressor.core.fidelity import cosine_per_sample
from compressor.core.registry import get_target, require
from compressor.core.specs import InputSpec
from compressor.data.sources import DataSource
from compressor.evaluation.validate import run_all


def manifest_inputs(manifest: dict) -> list[InputSpec]:
    return [InputSpec.parse(i["spec"], name=i["name"], dtype=i["dtype"]) for i in manifest["inputs"]]


def verify_bundle(path: str | Path, threads: int | None = None, lm_runner=None) -> dict[str, Any]:
    """Raise VerificationError on any changed file or drifted output; else return what was checked. ``lm_runner(folder,
    target name, threads)`` loads a language-model artifact (the app passes the runtimes' loader)."""
    with tempfile.TemporaryDirectory(prefix="compressor-verify-") as tmp:
        bundle = open_bundle(Path(path), Path(tmp))
        manifest = read_manifest(bundle)
        problems = check_files(bundle, manifest)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise VerificationError(f"bundle '{path}' failed verification: {problems[0]}{more}; rebuild it or fetch an intact copy")
        if manifest.get("task") == "text-generation":
            return _verify_lm(path, bundle, manifest, lm_runner, threads)
        try:
            spec = get_target(manifest["target"]["name"])
            backend = require(spec)
        except TargetError as e:
            raise VerificationError(f"cannot re-run bundle '{path}' here: {e}") from None
        problem = backend.check_compatible(manifest)
        if problem:
            raise VerificationError(f"bundle '{path}': {problem}")
        ref = manifest["reference"]
        specs, inputs, expected = reference_io(bundle, manifest)
        runner = backend.load(bundle / manifest["artifact"]["path"], spec.with_run(specs, threads), threads=threads)
        got = run_all(runner, DataSource(inputs, None, "reference inputs"), specs, ref["batch_size"])
        checks = output_checks(manifest, expected, got)
        bad = next((c for c in checks if not c["passed"]), None)
        if bad:
            raise VerificationError(f"bundle '{path}': {drift_line(bad, tol=ref['tolerance'])}: the runtime or the artifact differs")
        return {
            "bundle": str(path),
            "target": spec.name,
            "files_checked": len(manifest["files"]),
            "reference_samples": len(inputs[0]),
            "outputs": checks,
            "passed": True,
        }


def reference_io(bundle: Path, manifest: dict) -> tuple[list[InputSpec], list[np.ndarray], list[np.ndarray]]:
    """The bundle's input specs, stored reference inputs and stored outputs."""
    ref = manifest["reference"]
    specs = manifest_inputs(manifest)
    with np.load(bundle / ref["inputs"]) as z:
        inputs = [z[s.name] for s in specs]
    with np.load(bundle / ref["outputs"]) as z:
        expected = [z[o["name"]] for o in manifest["outputs"]]
    return specs, inputs, expected


def output_checks(manifest: dict, expected: list[np.ndarray], got: list[np.ndarray]) -> list[dict[str, Any]]:
    """Each output against its stored values within the bundle's recorded tolerance (the one comparison every re-run uses,
    on this machine or an emulated one)."""
    tol = manifest["reference"]["tolerance"]
    checks = []
    for o, e, g in zip(manifest["outputs"], expected, got, strict=True):
        if e.shape != g.shape:
            checks.append({"output": o["name"], "passed": False, "shape": list(g.shape), "recorded_shape": list(e.shape)})
            continue
        err = float(np.abs(e.astype(np.float64) - g.astype(np.float64)).max()) if e.size else 0.0
        limit = tol["atol"] + tol["rtol_of_max"] * float(np.abs(e).max() if e.size else 0.0)
        cos = float(cosine_per_sample(e, g).min())
        checks.append({"output": o["name"], "max_abs_error": err, "limit": limit, "cosine_min": cos,
                       "passed": bool(err <= limit and cos >= tol["cosine_min"])})
    return checks


def drift_line(check: dict[str, Any], tol: dict[str, Any]) -> str:
    """What a failed output check found, in words."""
    if "shape" in check:
        return f"output '{check['output']}' now has shape {tuple(check['shape'])}, recorded {tuple(check['recorded_shape'])}"
    return (f"output '{check['output']}' drifted from its recorded values (max abs error {check['max_abs_error']:.3g}, allowed "
            f"{check['limit']:.3g}; cosine {check['cosine_min']:.6f}, allowed >= {tol['cosine_min']})")


def _verify_lm(path, bundle: Path, manifest: dict, lm_runner, threads) -> dict[str, Any]:
    """Replay every stored prompt greedily on the artifact and compare the tokens with the recorded ones, exactly."""
    import json

    if lm_runner is None:
        raise VerificationError(f"bundle '{path}' is a language model: verify it with `compressor verify` (the runtimes are needed)")
    ref = json.loads((bundle / manifest["reference"]["generations"]).read_text())
    try:
        runner = lm_runner(bundle / manifest["artifact"]["path"], manifest["target"]["name"], threads)
    except TargetError as e:
        raise VerificationError(f"cannot re-run bundle '{path}' here: {e}") from None
    checks = []
    for i, p in enumerate(ref["prompts"]):
        got = runner.generate(p["prompt_ids"], ref["new_tokens"]).tokens
        same = next((j for j, (a, b) in enumerate(zip(got, p["tokens"])) if a != b), None)
        if same is not None or len(got) != len(p["tokens"]):
            at = same if same is not None else min(len(got), len(p["tokens"]))
            raise VerificationError(f"bundle '{path}': prompt {i + 1} ({p['prompt'][:40]!r}) now generates a different token at "
                                    f"position {at} (recorded {len(p['tokens'])} greedy tokens): the runtime or the artifact differs")
        checks.append({"prompt": p["prompt"], "tokens": len(got)})
    return {"bundle": str(path), "target": manifest["target"]["name"], "files_checked": len(manifest["files"]),
            "prompts": checks, "passed": True}
