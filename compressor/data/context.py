"""The run context: what every stage of one run shares, passed as one value instead of one by one.

Progress and the run's warnings (each said once, in order), the threads every runtime uses, what the model's first output
is (``task``), and the run's data: eval data (also what per-layer sensitivity is measured on), calibration data and how many
samples of it to use, and fine-tuning data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from compressor.core.progress import Progress
from compressor.data.sources import DataSource


@dataclass
class RunContext:
    progress: Progress = field(default_factory=lambda: Progress(quiet=True))
    threads: int | None = None
    task: str = "auto"
    eval_data: DataSource | None = None
    calib: DataSource | None = None
    calib_samples: int | None = None
    finetune_data: DataSource | None = None
    warnings: list[str] = field(default_factory=list)  # every warning of the run, in order (builds take theirs from here)

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)
            self.progress.warn(message)
