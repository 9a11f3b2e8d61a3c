"""The backend interface: what every runtime adapter in ``backends/`` implements.

Validation and benchmarking are written once against :class:`Runner`; a backend only has to say
whether it can run here, build an artifact for a target, and load one.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from compressor.core.progress import Progress

if TYPE_CHECKING:  # pragma: no cover
    from compressor.data.sources import DataSource
    from compressor.core.specs import InputSpec
    from compressor.core.model import ModelHandle
    from compressor.core.targets import TargetSpec


@dataclass
class Artifact:
    """What ``Backend.build`` produced: the main file, every file it consists of, and build details
    (export facts, op counts, …) that go into the manifest."""

    target: str
    path: Path
    files: list[Path]
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class BuildContext:
    """What a build may need besides the model and target: calibration data, quantization settings,
    and a way to report progress and warnings."""

    calib: "DataSource | None" = None
    eval: "DataSource | None" = None  # held-out data, for analyses such as per-layer sensitivity
    quant: Any = None  # compressor.quantization.ptq.QuantSettings for quantized targets
    task: str = "auto"  # what the model's first output is (see compressor.validate.TASKS)
    progress: Progress = field(default_factory=lambda: Progress(quiet=True))
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str) -> None:
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


class Backend(abc.ABC):
    name: str
    #: distribution that must be installed (reported when it is missing)
    package: str | None = None

    @abc.abstractmethod
    def available(self, target: "TargetSpec") -> tuple[bool, str]:
        """(True, "") when ``target`` can be built and run on this machine, else (False, why)."""

    @abc.abstractmethod
    def build(self, model: "ModelHandle", target: "TargetSpec", workdir: Path, ctx: BuildContext | None = None) -> Artifact:
        """Write the artifact for ``target`` into ``workdir``."""

    @abc.abstractmethod
    def load(self, path: Path, target: "TargetSpec", threads: int | None = None) -> Runner:
        """Load an artifact written by :meth:`build` (or an equivalent file the user brings)."""

    @abc.abstractmethod
    def artifact_inputs(self, path: Path) -> "list[InputSpec]":
        """The input specs an artifact file declares (for benchmarking a bare file without a manifest)."""

    def preload(self) -> None:
        """Import the runtime's libraries, so a benchmark's memory baseline excludes them and counts the model."""

    def check_compatible(self, manifest: dict) -> str | None:
        """Why a bundle written elsewhere cannot be trusted to run here (e.g. another runtime version), or None."""
        return None


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


def flatten_outputs(out) -> list:
    """Tensors of a model's output in order: a tensor, or a (nested) tuple/list/dict of them."""
    import torch

    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in flatten_outputs(o)]
    raise TypeError(f"model output of type {type(out).__name__} is not a tensor, tuple, list or dict of tensors")
