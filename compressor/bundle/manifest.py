"""The bundle manifest (``manifest.json``), typed.

:class:`Manifest` is what every bundle's manifest must be; its JSON Schema ships with the package as
``manifest.schema.json`` (regenerate with ``python -m compressor.bundle.manifest``; a test keeps the two in
step). ``schema_version`` is MAJOR.MINOR: a minor version only adds optional fields, so this SDK reads
every manifest of its major version (bundles written by earlier releases still verify); another major
version is refused with the reason.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from compressor.core.errors import VerificationError

SCHEMA_VERSION = "1.3"
SCHEMA_FILE = Path(__file__).with_name("manifest.schema.json")


class _Typed(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Open(BaseModel):
    """A section whose known fields are typed and which may carry more (runtime- or backend-specific facts)."""

    model_config = ConfigDict(extra="allow")


class Sdk(_Typed):
    name: str
    version: str


class Target(_Open):
    name: str
    backend: str
    device: str
    precision: str
    artifact_format: str
    ir: Optional[str] = None  # since 1.1
    shape_profile: dict[str, dict[str, list[int]]]
    runtime: dict[str, Any]


class ArtifactInfo(_Typed):
    path: str
    files: list[str]
    size_bytes: int = Field(ge=0)
    build: dict[str, Any]


class InputInfo(_Typed):
    name: str
    shape: list[Union[int, str]]
    dtype: str
    dynamic_axes: dict[str, dict[str, Any]]
    spec: str


class OutputInfo(_Typed):
    name: str
    shape: list[Union[int, str, None]]
    dtype: str


class DataInfo(_Typed):
    eval: dict[str, Any]
    calibration: Optional[dict[str, Any]]
    eval_batch_size: int = Field(ge=1)


class GateResult(_Open):
    passed: bool
    failures: list[str]
    forced: bool


class Fidelity(_Open):
    samples: int = Field(ge=1)
    synthetic: bool
    top1_agreement: Optional[float]
    cosine_mean: float
    cosine_min: float
    max_abs_error: float
    accuracy: Optional[float] = None
    reference_accuracy: Optional[float] = None


class EmulatedRun(_Typed):
    """One re-run of the reference inputs on one emulated CPU model."""

    cpu: str = Field(description="qemu CPU model (never one advertising SME)")
    passed: bool
    max_abs_error: Optional[float] = None
    cosine_min: Optional[float] = None
    hwcaps: dict[str, bool] = Field(default_factory=dict, description="the Arm hardware capabilities the emulated process saw")
    emulated_seconds_per_batch: Optional[float] = Field(None, description="emulated time: never device latency")


class Arm64Validation(_Typed):
    """1.3: ``compressor verify --on arm64``: the bundle's runtime re-ran its reference inputs on emulated Arm CPUs."""

    passed: bool
    emulator: str
    root: str = Field(description="the arm64 userland the runtime ran in")
    runtime: str
    runtime_version: str
    cpus: list[EmulatedRun] = Field(min_length=1)
    max_abs_error: float
    cpus_agree: bool = Field(description="every CPU model gave the same outputs (bit for bit)")
    checked_at: str


class Validation(_Typed):
    validated: bool
    reason: Optional[str] = None
    arm64: Optional[Arm64Validation] = None


class Metrics(_Open):
    fidelity: Optional[Fidelity] = Field(description="None when the artifact could not run where it was built (see validation)")
    latency_ms: Optional[dict[str, float]] = None
    throughput_per_s: Optional[float] = None
    peak_rss_mb: Optional[float] = None
    model_rss_mb: Optional[float] = None
    load_time_s: Optional[float] = None
    iterations: Optional[int] = None
    torch_eager_latency_ms: Optional[dict[str, float]] = None
    speedup_vs_torch_eager: Optional[float] = None


class BenchmarkInfo(_Open):
    settings: Optional[dict[str, Any]]
    method: str
    runtime: Optional[dict[str, Any]] = None


class Tolerance(_Typed):
    atol: float = Field(ge=0)
    rtol_of_max: float = Field(ge=0)
    cosine_min: float = Field(ge=-1, le=1)


class Reference(_Typed):
    inputs: str
    outputs: str
    samples: int = Field(ge=1)
    batch_size: int = Field(ge=1)
    tolerance: Tolerance
    produced_by: str


class Environment(_Open):
    cpu: dict[str, Any]
    gpu: list[Any]
    os: str
    python: str


class Manifest(_Typed):
    """manifest.json: what the bundle is, how it was made, how it measured, and a hash of every file."""

    schema_version: str = Field(pattern=r"^\d+\.\d+$")
    created_at: str
    sdk: Sdk
    target: Target
    precision: str
    artifact: ArtifactInfo
    quantization: Optional[dict[str, Any]] = None
    validation: Optional[Validation] = Field(None, description="1.2: absent or validated=true when the artifact ran here; "
                                                                 "false, with the reason, when it was built for hardware this machine lacks")
    pruning: Optional[dict[str, Any]] = None
    warnings: list[str] = Field(default_factory=list)
    inputs: list[InputInfo] = Field(min_length=1)
    outputs: list[OutputInfo] = Field(min_length=1)
    preprocessing: Optional[dict[str, Any]] = None
    source: dict[str, Any]
    data: DataInfo
    gate: GateResult
    metrics: Metrics
    benchmark: BenchmarkInfo
    environment: Environment
    reference: Reference
    recipe: dict[str, Any]
    files: dict[str, str] = Field(description="sha256 of every file of the bundle but manifest.json")


class LmManifest(_Typed):
    """manifest.json of a decoder-LM bundle (``task: text-generation``): perplexity and agreement instead of tensor outputs,
    reference generations instead of reference arrays."""

    schema_version: str = Field(pattern=r"^\d+\.\d+$")
    task: str = Field(pattern="^text-generation$")
    created_at: str
    sdk: Sdk
    target: dict[str, Any]
    precision: str
    artifact: dict[str, Any]
    quantization: Optional[dict[str, Any]] = None
    compression: dict[str, Any]
    source: dict[str, Any]
    model_shape: dict[str, Any]
    data: dict[str, Any]
    gate: GateResult
    metrics: dict[str, Any]
    artifact_check: dict[str, Any]
    benchmark: Optional[dict[str, Any]] = None
    environment: Environment
    reference: dict[str, Any]
    recipe: dict[str, Any]
    files: dict[str, str]


def validate_manifest(data: Any, where: str) -> Manifest | LmManifest:
    """A checked manifest, or a VerificationError naming the field that breaks the schema (or the unreadable version)."""
    if not isinstance(data, dict):
        raise VerificationError(f"{where}: manifest.json is not a JSON object: the bundle is damaged")
    version = str(data.get("schema_version", ""))
    if version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        raise VerificationError(f"{where}: manifest schema {version or '(none)'} is not readable by this SDK (schema {SCHEMA_VERSION}): "
                                "use a compressor release of that schema's major version, or rebuild the bundle")
    try:
        return (LmManifest if data.get("task") == "text-generation" else Manifest).model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "(top level)"
        more = len(e.errors()) - 1
        raise VerificationError(f"{where}: manifest.json breaks its schema at '{field}': {err['msg']}"
                                + (f" (and {more} more)" if more else "") + "; the bundle is damaged or was edited") from None


def json_schema() -> dict[str, Any]:
    schema = Manifest.model_json_schema()
    schema["$id"] = f"https://compressor.dev/schemas/manifest-{SCHEMA_VERSION}.json"
    schema["title"] = f"compressor bundle manifest, schema {SCHEMA_VERSION}"
    return schema


def write_schema(path: Path = SCHEMA_FILE) -> Path:
    path.write_text(json.dumps(json_schema(), indent=2, sort_keys=True) + "\n")
    return path


if __name__ == "__main__":  # pragma: no cover - regenerates the shipped schema
    print(write_schema())
