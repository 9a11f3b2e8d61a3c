"""Fine-tuning settings: the recipe section ``finetune`` (training data and loop settings shared by pruning recovery
and quantization-aware training), its CLI flags and API keywords."""

from __future__ import annotations

from typing import Literal, Optional

from compressor.core.options import PRUNE, Settings, option


class FinetuneSettings(Settings):
    data: Optional[str] = option(None, "Training data (pruning recovery, --qat); same forms as --eval.", flag="--finetune", panel=PRUNE)
    labels: Optional[str] = option(None, "Labels for --finetune.", flag="--finetune-labels", panel=PRUNE)
    samples: Optional[int] = option(None, "Use at most N fine-tuning samples.", flag="--finetune-samples", panel=PRUNE, ge=1)
    epochs: int = option(1, "Fine-tuning epochs (default 1; early stop on a held-out tenth).", flag="--finetune-epochs", panel=PRUNE, ge=1)
    lr: float = option(1e-3, "Peak learning rate (one-cycle, AdamW; default 1e-3).", flag="--finetune-lr", panel=PRUNE, gt=0)
    batch_size: int = option(64, "Fine-tuning batch size (default 64).", flag="--finetune-batch-size", panel=PRUNE, ge=1)
    distill: bool = option(False, "Distil from the unpruned model as well as the labels.", flag="--distill", panel=PRUNE)
    temperature: float = option(2.0, "Distillation temperature.", gt=0)
    alpha: float = option(0.5, "Weight of the label loss when distilling.", ge=0, le=1)
    patience: int = option(2, "Stop after this many epochs without improvement.", ge=1)
    val_fraction: float = option(0.1, "Fraction held out to choose the best epoch.", gt=0, lt=1)
    amp: Literal["auto", "bf16", "off"] = option("auto", "bf16 autocast: auto (where the CPU has native bf16) | bf16 | off.",
                                                 flag="--finetune-amp", panel=PRUNE)
    loss: Optional[str] = option(None, "package.module:callable(student_out, teacher_out, labels) -> loss.", flag="--finetune-loss", panel=PRUNE)
    seed: int = option(0, "Seed of the data order and the held-out split.")
    ddp: int = option(1, "Fine-tune data-parallel in N processes (torch DDP; gloo on CPU, nccl on GPU), each on 1/N of every batch; "
                         "only this process writes. Under torchrun the launched processes are used instead.", flag="--ddp", panel=PRUNE, ge=1)
