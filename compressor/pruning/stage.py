"""The pruning stage: a pruned (and fine-tuned) copy of a model, as the settings ask, for one target's
channel multiple. The original stays the FP32 reference every result is compared with."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from compressor.core.errors import InputError
from compressor.core.model import ModelHandle
from compressor.core.progress import Progress
from compressor.core.refs import resolve
from compressor.data.sources import DataSource
from compressor.pruning.settings import PruningSettings
from compressor.training.settings import FinetuneSettings


def prune_model(handle: ModelHandle, settings: PruningSettings, finetune_settings: FinetuneSettings, train: DataSource | None,
                round_to: int, task: str, progress: Progress, sample: DataSource | None = None,
                warn: Callable[[str], None] | None = None) -> tuple[ModelHandle, dict[str, Any]]:
    """Prune a copy of ``handle`` (channels rounded to ``round_to``), fine-tune it on ``train`` if given, save it if asked."""
    import torch

    from compressor.pruning.prune import prune
    from compressor.training.finetune import finetune

    if settings.save and handle.kind != "state_dict":
        raise InputError("--save-pruned writes a state_dict + architecture record, so the source must be a state_dict with --arch "
                         f"(this one is a {handle.kind})")
    hook = resolve(settings.hook, "the pruning hook") if settings.hook else None

    def grad_batches(model):
        import torch.nn.functional as F

        if train is None or train.labels is None:
            raise InputError("--prune-importance taylor needs labelled data for its gradients: pass --finetune DATA with labels")
        idx = slice(0, min(len(train), 64))
        out = model(*[torch.from_numpy(a[idx]) for a in train.inputs])
        F.cross_entropy(out[0] if isinstance(out, (tuple, list)) else out, torch.from_numpy(train.labels[idx])).backward()

    if settings.structured:
        # MACs are counted on a real sample when there is one (a transformer's cost depends on its sequence length)
        example = tuple(torch.from_numpy(a[:1]) for a in sample.inputs) if sample is not None else handle.example_inputs(batch=1)
        with progress.stage(f"pruned ({settings.importance} importance, channels rounded to {round_to})"):
            pruned, report = prune(handle.module, example, settings, round_to, grad_batches, hook, warn or progress.warn)
        progress.note(f"  MACs {report['macs_before'] / 1e9:.3f} → {report['macs_after'] / 1e9:.3f} G ({report['macs_removed']:.1%} removed), "
                      f"parameters {report['params_before'] / 1e6:.2f} → {report['params_after'] / 1e6:.2f} M")
    else:
        import copy

        pruned, report = copy.deepcopy(handle.module).eval(), {"structured": False}
    pattern = None
    if settings.sparsity is not None:
        from compressor.pruning import sparsity

        pattern = sparsity.SparsityPattern.parse(settings.sparsity)
        with progress.stage(f"sparsified weights ({pattern}, by magnitude)"):
            report["sparsity"] = sparsity.apply(pruned, pattern)
    report["finetune"] = finetune(pruned, handle.module, train, finetune_settings, task, progress) if train is not None else None
    if pattern is not None:
        report["sparsity"].update(sparsity.finish(pruned, pattern, report["sparsity"]["layers"]))
        report["sparsity"]["storage"] = sparsity.storage(handle.module.state_dict(), pruned.state_dict())
        st = report["sparsity"]["storage"]
        progress.note(f"  {len(report['sparsity']['layers'])} layer(s) {pattern}; weights stored compressed: "
                      f"{st['dense_compressed_bytes'] / 2**20:.2f} MiB dense → {st['sparse_compressed_bytes'] / 2**20:.2f} MiB "
                      f"({st['factor']:.2f}× smaller)")
    if settings.save:
        from compressor.io.pruned import save_pruned

        summary = {k: v for k, v in report.items() if k not in ("layers_changed", "finetune")}
        save_pruned(pruned, Path(settings.save), handle.source["arch"], handle.source.get("arch_kwargs") or {}, summary)
        report["saved_to"] = str(settings.save)
        progress.note(f"  pruned checkpoint: {settings.save} (reload with --arch {handle.source['arch']} {settings.save})")
    return ModelHandle(module=pruned, inputs=handle.inputs, output_names=list(handle.output_names), preprocessing=handle.preprocessing,
                       source={**handle.source, "pruned_in_this_run": True}), report
