"""Opening an evaluation session for a run: the model loaded and the run's data read once, from its settings."""

from __future__ import annotations

from pathlib import Path

from compressor.app.recipe import RunConfig
from compressor.core.errors import InputError
from compressor.core.progress import Progress
from compressor.data.context import RunContext
from compressor.data.sources import DataSource, load_data, synthetic_data
from compressor.evaluation.session import EvaluationSession, SessionSettings
from compressor.io.loading import load_model


def _no_eval_data() -> InputError:
    return InputError("no eval data: pass --eval DATA (image folder, .npy/.npz, or package.module:function), "
                      "or --synthetic to validate on random inputs (every fidelity number is then marked synthetic)")


def open_session(config: RunConfig, ui: Progress, calibrate: bool = False, train: bool | None = None) -> EvaluationSession:
    """Load the model and the data once; ``calibrate``: some target needs calibration data (static INT8); ``train``: some
    candidate fine-tunes (default: the run's own pruning or QAT)."""
    d = config.data
    if not d.eval and not d.synthetic:
        raise _no_eval_data()
    if train is None and config.qat.enabled and not config.finetune.data:
        raise InputError("--qat needs training data: pass --finetune DATA (inputs like the eval data; labels are used where given, and "
                         "the FP32 model is distilled either way)")
    if train is None and config.pruning is None and config.finetune.data and not config.qat.enabled:
        raise InputError("--finetune without pruning or --qat: fine-tuning here recovers accuracy after pruning or trains INT8 "
                         "(QAT); add --prune-macs / --prune-ratio, or --qat")
    pre = config.preprocessing
    m = config.model
    with ui.stage(f"loaded {Path(m.checkpoint).name}"):
        handle = load_model(m.checkpoint, config.input_specs(), m.arch, m.arch_kwargs, m.trust_checkpoint, pre, m.output_names,
                            m.checkpoint_key, m.forward_kwargs)
    if handle.source.get("checkpoint_key") and not m.checkpoint_key:
        ui.note(f"the weights are the state_dict under '{handle.source['checkpoint_key']}' of {Path(m.checkpoint).name} "
                "(--checkpoint-key to choose another)")
    with ui.stage("read eval data"):
        eval_data = (load_data(d.eval, handle.inputs, pre, d.eval_labels, d.eval_samples, what="eval data") if d.eval
                     else synthetic_data(handle.inputs, d.synthetic_samples))
    calib: DataSource | None = None
    if d.calib:
        with ui.stage("read calibration data"):
            calib = load_data(d.calib, handle.inputs, pre, d.calib_labels, d.calib_samples, what="calibration data")
    elif calibrate and d.synthetic:
        ui.warn("calibrating on synthetic (random) data: real inputs may need other scales")
        calib = synthetic_data(handle.inputs, d.calib_samples or 64, seed=1)
    if train is None:
        train = config.pruning is not None or config.qat.enabled
    train_data = None
    if train and config.finetune.data:
        f = config.finetune
        with ui.stage("read fine-tuning data"):
            train_data = load_data(f.data, handle.inputs, pre, f.labels, f.samples, what="fine-tuning data")
    ctx = RunContext(progress=ui, task=m.task, eval_data=eval_data, calib=calib, calib_samples=d.calib_samples, finetune_data=train_data)
    return EvaluationSession(handle, ctx, SessionSettings(quantization=config.quantization, benchmark=config.benchmark,
                                                          finetune=config.finetune, gate=config.gate, build=config.build, qat=config.qat))
