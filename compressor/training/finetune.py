"""Recovery fine-tuning after pruning: a small, honest training loop.

Loss: cross-entropy on labels for classifiers (optionally mixed with knowledge distillation from the
unpruned model), or distillation alone (MSE to the teacher's outputs; 1 − cosine for embeddings) when
there are no labels; or the user's ``package.module:callable(student_out, teacher_out, labels)``.
A tenth of the data is held out: the best epoch by the validation metric is kept, and training stops
early after ``patience`` epochs without improvement. bf16 autocast is used on CPUs with native bf16.
"""

from __future__ import annotations

import copy
import functools
import time
from typing import Any

import numpy as np

from compressor.core.errors import InputError
from compressor.core.progress import Progress
from compressor.core.refs import resolve
from compressor.data.sources import DataSource
from compressor.training.settings import FinetuneSettings


def _bf16_native() -> bool:
    from compressor.core.environment import cpu_info

    isa = set(cpu_info()["isa"])
    return bool(isa & {"avx512_bf16", "amx_bf16"})


def finetune(student, teacher, data: DataSource, settings: FinetuneSettings, task: str, progress=None,
             extra_params: tuple[list, float] | None = None, what: str = "fine-tuned") -> dict[str, Any]:
    """Train ``student`` on ``data``; ``extra_params``: (parameters of the student, learning rate) trained as their own group
    (no weight decay), e.g. QAT's activation ranges. Data-parallel over ``settings.ddp`` processes, or over the processes
    torchrun launched (see compressor/training/ddp.py): the student here ends with the weights every rank trained."""
    from compressor.training import ddp

    if data is None or len(data) == 0:
        raise InputError("fine-tuning needs training data: pass --finetune DATA (labelled for classifiers, any inputs to distil)")
    extra, extra_lr = extra_params or ([], 0.0)
    names = {id(p): n for n, p in student.named_parameters()}
    job = (student, teacher, data, settings, task, [names[id(p)] for p in extra], extra_lr, what)
    launched = ddp.launched()
    processes = launched.world if launched else settings.ddp
    if processes == 1:
        return train(*job, progress=progress)
    n_val = max(1, int(len(data) * settings.val_fraction)) if len(data) >= 20 else 0
    ddp.check_shards(processes, settings.batch_size, len(data) - n_val)
    if launched:
        return ddp.send(job, functools.partial(train, progress=progress))
    return ddp.run_parallel(processes, job, train, progress, backend=ddp.backend_of(student))


def train(student, teacher, data: DataSource, settings: FinetuneSettings, task: str, extra_names: list[str], extra_lr: float,
          what: str, group=None, progress=None) -> dict[str, Any]:
    """The training loop, as rank ``group.rank`` of ``group.world`` processes (one process when ``group`` is None)."""
    import torch
    import torch.nn.functional as F

    from compressor.training.ddp import SINGLE

    group = group or SINGLE
    progress = progress or Progress(quiet=True)
    classifier = task == "classification" or (task == "auto" and data.labels is not None)
    if classifier and data.labels is None and not settings.loss:
        classifier = False  # no labels: distil from the unpruned model
    custom = resolve(settings.loss, "the fine-tuning loss") if settings.loss else None
    rng = np.random.default_rng(settings.seed)
    torch.manual_seed(settings.seed)
    n = len(data)
    order = rng.permutation(n)
    n_val = max(1, int(n * settings.val_fraction)) if n >= 20 else 0
    val_idx, train_idx = order[:n_val], order[n_val:]
    amp = settings.amp == "bf16" or (settings.amp == "auto" and _bf16_native())
    params = dict(student.named_parameters())
    extra = [params[n] for n in extra_names]
    own = {id(p) for p in extra}
    groups = [{"params": [p for p in student.parameters() if id(p) not in own], "lr": settings.lr, "weight_decay": 1e-4}]
    if extra:
        groups.append({"params": list(extra), "lr": extra_lr, "weight_decay": 0.0})
    opt = torch.optim.AdamW(groups)
    steps_per_epoch = max(1, -(-len(train_idx) // settings.batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[g["lr"] for g in groups], total_steps=settings.epochs * steps_per_epoch)
    teacher = teacher.eval()
    model = student
    if group.world > 1:
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(student)

    def shared(value: float) -> float:
        """Rank 0's value on every rank (so every rank makes the same early-stopping decisions)."""
        if group.world == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def batch(idx):
        xs = [torch.from_numpy(np.ascontiguousarray(a[idx])) for a in data.inputs]
        y = torch.from_numpy(data.labels[idx]) if data.labels is not None else None
        return xs, y

    def first(out):
        return out[0] if isinstance(out, (tuple, list)) else out

    def loss_of(s_out, t_out, y):
        if custom is not None:
            return custom(s_out, t_out, y)
        if classifier:
            ce = F.cross_entropy(s_out, y)
            if not settings.distill:
                return ce
            t = settings.temperature
            kd = F.kl_div(F.log_softmax(s_out / t, 1), F.softmax(t_out / t, 1), reduction="batchmean") * t * t
            return settings.alpha * ce + (1 - settings.alpha) * kd
        if task == "embedding":
            return (1 - F.cosine_similarity(s_out.flatten(1), t_out.flatten(1))).mean()
        return F.mse_loss(s_out, t_out)

    def validate() -> float:
        student.eval()
        if n_val == 0:
            return float("nan")
        with torch.no_grad():
            xs, y = batch(val_idx)
            s, t = first(student(*xs)).float(), first(teacher(*xs)).float()
        if classifier and y is not None:
            return float((s.argmax(1) == y).float().mean())
        return float(F.cosine_similarity(s.flatten(1), t.flatten(1)).mean())

    history = [{"epoch": 0, "val_metric": shared(validate())}]
    best, best_state, bad, t0 = history[0]["val_metric"], copy.deepcopy(student.state_dict()), 0, time.time()
    for epoch in range(1, settings.epochs + 1):
        student.train()
        t_epoch = time.time()
        perm = rng.permutation(train_idx)
        total, count = 0.0, 0
        with progress.bar(f"{what} epoch {epoch}/{settings.epochs}", total=steps_per_epoch) as advance:
            for i in range(steps_per_epoch):
                idx = perm[i * settings.batch_size:(i + 1) * settings.batch_size]
                if len(idx) < group.world:  # (a last, short batch) every rank must take part in every step
                    advance(1)
                    continue
                idx = np.array_split(idx, group.world)[group.rank]
                xs, y = batch(idx)
                with torch.no_grad():
                    t_out = first(teacher(*xs)).float()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                    s_out = first(model(*xs))
                loss = loss_of(s_out.float(), t_out, y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                total += float(loss.detach()) * len(idx)
                count += len(idx)
                advance(1)
        metric = shared(validate())
        history.append({"epoch": epoch, "train_loss": total / max(count, 1), "val_metric": metric,
                        "seconds": round(time.time() - t_epoch, 2)})
        if not np.isnan(metric) and metric > best:
            best, best_state, bad = metric, copy.deepcopy(student.state_dict()), 0
        else:
            bad += 1
            if bad >= settings.patience:
                break
    student.load_state_dict(best_state)
    student.eval()
    return {**settings.model_dump(exclude={"data", "labels", "samples", "ddp"}), "samples": int(len(train_idx)), "validation_samples": int(n_val),
            "loss_used": settings.loss or ("cross-entropy" + (" + distillation" if settings.distill else "") if classifier
                                           else "distillation (1 - cosine)" if task == "embedding" else "distillation (MSE)"),
            "validation_metric": "accuracy" if classifier else "cosine with the unpruned model",
            "bf16_autocast": amp, "history": history, "best_val_metric": best, "seconds": round(time.time() - t0, 1),
            "processes": group.world}
