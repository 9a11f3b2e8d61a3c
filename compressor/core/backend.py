"""The backend interface: what every runtime adapter implements, and the values that cross it.

A backend receives an IR that the SDK has already exported and, for quantized targets, realised from
its plan; it compiles that IR into its artifact, loads artifacts, and reports which kernels and
precisions really run. It never calibrates or plans. Validation and benchmarking are written once
against :class:`Runner`.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from compressor.core.build import BuildSettings
from compressor.core.errors import CompressorError, ExportError
from compressor.core.model import flatten_outputs
from compressor.core.progress import Progress
from compressor.core.targets import IRFormat, Precision, TargetSpec

if TYPE_CHECKING:  # pragma: no cover
    from compressor.core.model import ModelHandle
    from compressor.core.specs import InputSpec


@dataclass
class IR:
    """What a backend compiles: the model in the target's IR format, already quantized where it should be.

    ``plan`` is the quantization plan the IR realises (layer names and decisions, read by kernel reports);
    ``native`` carries a runtime-native model made by an alternative quantizer (NNCF's OpenVINO model),
    which only the backend that runs that format accepts.
    """

    format: IRFormat
    precision: Precision
    path: Path | None = None  # ONNX file
    program: Any = None  # torch.export ExportedProgram
    native: Any = None
    plan: Any = None  # compressor.quantization.plan.QuantPlan
    export: dict[str, Any] = field(default_factory=dict)  # how the IR was made (exporter, opset, op counts, …)


@dataclass
class Artifact:
    """What ``Backend.compile`` produced: the main file, the files of the model itself (their size is the
    model's size), every file that goes into the bundle, and build details for the manifest."""

    target: str
    path: Path
    model_files: list[Path]
    files: list[Path]
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def size_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.model_files)


@dataclass
class CompileContext:
    """Threads for build-time checks, a way to report progress and warnings."""

    threads: int | None = None
    progress: Progress = field(default_factory=lambda: Progress(quiet=True))
    warnings: list[str] = field(default_factory=list)
    build: BuildSettings = field(default_factory=BuildSettings)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)
            self.progress.warn(message)


class Runner(abc.ABC):
    """A loaded artifact that maps named numpy inputs to a list of numpy outputs."""

    input_names: list[str]
    output_names: list[str]

    @abc.abstractmethod
    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        ...

    def describe(self) -> dict[str, Any]:
        """Runtime facts worth recording (providers, precision hints, threads)."""
        return {}

    def device_metrics(self, feeds: dict[str, np.ndarray], iterations: int) -> dict[str, Any] | None:
        """For accelerator runners: copies and compute timed apart, device memory (recorded beside the latency); else None."""
        return None

    def throughput(self, feeds: dict[str, np.ndarray], streams: int, seconds: float) -> dict[str, Any] | None:
        """The runtime's own multi-stream mode (OpenVINO's THROUGHPUT hint), run for ``seconds``: ``calls``, ``seconds``,
        ``method`` and what it configured; or None, and ``streams`` instances of this runner run at once instead."""
        return None


@dataclass
class KernelReport:
    """What a runtime really runs of a quantized artifact: how many layers with weights run INT8 (read back from the compiled
    artifact, never assumed from the plan). Typed up to the manifest boundary (``to_dict``)."""

    weight_layers_total: int
    weight_layers_int8: int
    summary: str  # one line for reports
    method: str  # how the figures were read back
    planned_int8_layers_running_float: list[str] = field(default_factory=list)  # recorded as float, never claimed as INT8
    details: dict[str, Any] = field(default_factory=dict)  # the runtime's own figures (kernel counts, compiled precisions, …)

    REQUIRED: ClassVar[tuple[str, ...]] = ("weight_layers_total", "weight_layers_int8", "summary", "method")

    @classmethod
    def of(cls, value: KernelReport | dict[str, Any] | None, backend: str) -> KernelReport | None:
        """``value`` as a report: a KernelReport, or a mapping with at least the required keys (a plugin may return one)."""
        if value is None or isinstance(value, KernelReport):
            return value
        missing = [k for k in cls.REQUIRED if k not in value]
        if missing:
            raise CompressorError(f"backend '{backend}' returned a kernel report without {', '.join(missing)}: "
                                  "return a compressor.core.backend.KernelReport")
        known = {*cls.REQUIRED, "planned_int8_layers_running_float"}
        return cls(**{k: value[k] for k in known if k in value}, details={k: v for k, v in value.items() if k not in known})

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {**d.pop("details"), **d}


class Backend(abc.ABC):
    """A runtime adapter, registered under the entry-point group ``compressor.backends``."""

    name: ClassVar[str]
    #: distribution that must be installed (named when it is missing)
    package: ClassVar[str | None] = None
    #: the targets this backend builds and runs
    TARGETS: ClassVar[tuple[TargetSpec, ...]] = ()
    #: the runtime of ``backends/edge_worker.py`` that runs this backend's artifacts on an emulated arm64 CPU
    #: (``compressor verify --on arm64``); None when the check does not cover this runtime
    arm64_runtime: ClassVar[str | None] = None

    @abc.abstractmethod
    def available(self, target: TargetSpec) -> tuple[bool, str]:
        """(True, "") when ``target`` can be built and run on this machine, else (False, why)."""

    def check_model(self, model: ModelHandle, target: TargetSpec) -> None:  # noqa: B027 - optional hook
        """Refuse, before any work, a model this backend cannot build for ``target`` (raise a CompressorError)."""

    @abc.abstractmethod
    def compile(self, model: ModelHandle, ir: IR, target: TargetSpec, workdir: Path, ctx: CompileContext) -> Artifact:
        """Turn ``ir`` into the artifact for ``target`` inside ``workdir``."""

    @abc.abstractmethod
    def load(self, path: Path, target: TargetSpec, threads: int | None = None) -> Runner:
        """Load an artifact written by :meth:`compile` (or an equivalent file the user brings)."""

    @abc.abstractmethod
    def artifact_inputs(self, path: Path) -> list[InputSpec]:
        """The input specs an artifact file declares (for benchmarking a bare file without a manifest)."""

    def kernel_report(self, artifact: Artifact, ir: IR, target: TargetSpec, ctx: CompileContext) -> KernelReport | None:
        """For a quantized artifact: how many layers with weights the runtime really runs in INT8, and which planned INT8
        layers it runs in float (those are then recorded as float, never claimed as INT8)."""
        return None

    def report_sections(self, manifest: dict[str, Any]) -> list[str]:
        """Markdown lines this backend adds to a bundle's REPORT.md (delegation, device notes, …)."""
        return []

    def preload(self) -> None:  # noqa: B027 - optional hook
        """Import the runtime's libraries, so a benchmark's memory baseline excludes them and counts the model."""

    def runnable(self, target: TargetSpec) -> tuple[bool, str]:
        """Whether an artifact built here can also run here (a GPU engine builds on a CPU machine but runs on the GPU only);
        when not, it is bundled unvalidated with the reason, and ``compressor verify`` checks it on the device."""
        return True, ""

    def target_for(self, path: Path) -> str | None:
        """The name of this backend's target a bare file is, when the backend recognises the file by its content (several
        backends open the same suffix: a torch.export program and an AOTInductor package are both ``.pt2``); else None."""
        return None

    def check_compatible(self, manifest: dict) -> str | None:
        """Why a bundle written elsewhere cannot be trusted to run here (e.g. another runtime version), or None."""
        return None


IO_NAMES = "io_names.txt"  # beside an artifact whose format numbers its inputs and outputs (.pte, .tflite)


def write_io_names(workdir: Path, inputs: Sequence[str], outputs: Sequence[str]) -> Path:
    """The model's input and output names beside an artifact that only numbers them."""
    path = Path(workdir) / IO_NAMES
    path.write_text("\n".join(["inputs: " + ",".join(inputs), "outputs: " + ",".join(outputs)]) + "\n")
    return path


def read_io_names(artifact: Path) -> tuple[list[str], list[str]] | None:
    """(inputs, outputs) written by :func:`write_io_names` beside ``artifact``, or None."""
    path = Path(artifact).with_name(IO_NAMES)
    if not path.is_file():
        return None
    lines = dict(line.split(": ", 1) for line in path.read_text().splitlines() if ": " in line)
    return lines.get("inputs", "").split(","), lines.get("outputs", "").split(",")


def refuse_recurrent_pt2e(model: ModelHandle, target: TargetSpec, instead: str) -> None:
    """PT2E INT8 unrolls recurrent layers over every time step and the build does not end in useful time (a 3-layer LSTM
    of 160 steps: over 10 minutes and 4.7 GB): refuse it before it starts, naming what to use ``instead``."""
    import torch

    recurrent = [n for n, m in model.module.named_modules() if isinstance(m, (torch.nn.LSTM, torch.nn.GRU, torch.nn.RNN))]
    if recurrent and target.precision.quantized:
        raise ExportError(f"{target.name}: PT2E INT8 unrolls recurrent layers ({', '.join(recurrent[:3])}) over every time step, and "
                          "the build does not end in useful time (a 3-layer LSTM of 160 steps: over 10 minutes and 4.7 GB), so it "
                          f"is refused before it starts: use {instead}")


def require_fixed_shapes(model: ModelHandle, runtime: str) -> None:
    """Refuse dynamic input dimensions for runtimes whose programs are built for one shape."""
    dynamic = [f"{s.name}: {s.shape_str}" for s in model.inputs if s.dynamic]
    if dynamic:
        raise ExportError(f"{runtime} programs here are built for fixed shapes, and these inputs are dynamic ({'; '.join(dynamic)}): "
                          f"give the shape the device will use, e.g. --input-shape "
                          f"{','.join(str(v) for v in model.inputs[0].shape(batch=1))}")


class TorchModuleRunner(Runner):
    """Runs an in-memory PyTorch module (eager, TorchScript or an exported program's module)."""

    def __init__(self, module, input_names: Sequence[str], output_names: Sequence[str] | None = None, threads: int | None = None):
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.module = module
        self.input_names = list(input_names)
        self.output_names = list(output_names or [])
        self.threads = torch.get_num_threads()

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        import torch

        args = [torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in self.input_names]
        with torch.inference_mode():
            out = self.module(*args)
        return [t.detach().float().numpy() if t.dtype == torch.bfloat16 else t.detach().numpy() for t in flatten_outputs(out)]

    def describe(self) -> dict[str, Any]:
        import torch

        return {"runtime": "torch", "version": torch.__version__, "threads": self.threads}
