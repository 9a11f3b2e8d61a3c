"""Data-parallel fine-tuning (torch DDP): N processes, each on 1/N of every batch, gradients averaged, so N processes
train the same steps one process would (``--ddp N``, or the processes ``torchrun --nproc-per-node N`` launched).

- ``--ddp N``: this process is rank 0; N − 1 workers are forked from it when fine-tuning starts (they inherit the
  models and the data, nothing is pickled) and leave when it ends, writing nothing. Once this process's autograd has
  started its thread pool (QAT's training does), torch refuses backward in forked children: the workers are then
  spawned and sent the job pickled, and a job that does not pickle (QAT's fake-quantized model) trains in one process,
  with a warning.
- ``torchrun --nproc-per-node N compressor …``: rank 0 runs the command; the other ranks wait in :func:`serve` and are
  sent each fine-tuning job (models and data, pickled) when it starts, then ``None`` at the end.

gloo on CPU, nccl when the student is on a GPU. Only rank 0 writes anything.
"""

from __future__ import annotations

import atexit
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from compressor.core.errors import CompressorError, InputError


@dataclass(frozen=True)
class Group:
    rank: int
    world: int

    @property
    def main(self) -> bool:
        return self.rank == 0


SINGLE = Group(0, 1)


def launched() -> Group | None:
    """The rank and world size torchrun gave this process (None when not launched by torchrun, or with one process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or "RANK" not in os.environ:
        return None
    return Group(int(os.environ["RANK"]), world)


def backend_of(module) -> str:
    try:
        on_gpu = next(module.parameters()).is_cuda
    except StopIteration:
        on_gpu = False
    return "nccl" if on_gpu else "gloo"


def check_shards(processes: int, batch_size: int, samples: int) -> None:
    """Every process needs a share of every batch."""
    shards = min(batch_size, samples)
    if processes > shards:
        raise InputError(f"--ddp {processes} splits every fine-tuning batch between {processes} processes, but there are only {shards} "
                         f"sample(s) per batch (--finetune-batch-size {batch_size}, {samples} training samples): use --ddp {shards} or "
                         "fewer, or a larger batch")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _threads_each(processes: int) -> int:
    from compressor.core.environment import default_threads

    return max(1, default_threads() // processes)


def _fork_is_safe() -> bool:
    """Whether a forked child can still run autograd: once this process's autograd engine has started its thread pool (QAT's
    training does), torch refuses backward in forked children for good."""
    import multiprocessing as mp

    def probe() -> None:
        import torch

        try:
            w = torch.ones(2, requires_grad=True)
            (w * 2).sum().backward()
            os._exit(0)
        except BaseException:  # noqa: BLE001 - the exit code is the answer
            os._exit(1)

    p = mp.get_context("fork").Process(target=probe, daemon=True)
    p.start()
    p.join(timeout=60)
    return p.exitcode == 0


def _spawned(rank: int, processes: int, address: str, backend: str, job_path: str, threads: int, train_ref: str) -> None:
    """A spawned worker (``python -m compressor.training.ddp …``): the job comes from the file rank 0 wrote (this SDK's own
    temporary file, so unpickling it is safe); ``train_ref`` is the training loop as ``module:function``."""
    import importlib

    import torch
    import torch.distributed as dist

    module, _, name = train_ref.partition(":")
    train = getattr(importlib.import_module(module), name)
    torch.set_num_threads(threads)
    job = torch.load(job_path, weights_only=False)
    dist.init_process_group(backend, init_method=address, rank=rank, world_size=processes)
    train(*job, group=Group(rank, processes))
    dist.destroy_process_group()


class _Spawned:
    """A worker started as a fresh interpreter (not multiprocessing's spawn, which re-runs the caller's main script)."""

    def __init__(self, args: tuple):
        import subprocess

        self.proc = subprocess.Popen([sys.executable, "-m", "compressor.training.ddp", *map(str, args)])

    def join(self, timeout: float) -> None:
        import subprocess

        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass

    def is_alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        self.proc.kill()

    @property
    def exitcode(self) -> int | None:
        return self.proc.poll()


def _start_workers(processes: int, job: tuple, train_loop: Callable[..., Any], address: str, backend: str, each: int, tmp: str):
    """Start ranks 1..N-1: forked (they inherit everything: nothing is pickled) while this process can still fork autograd,
    else spawned with the job pickled to a file; None when neither is possible."""
    import multiprocessing as mp
    import pickle

    import torch
    import torch.distributed as dist

    if _fork_is_safe():
        def worker(rank: int) -> None:
            code = 1
            try:
                torch.set_num_threads(each)
                dist.init_process_group(backend, init_method=address, rank=rank, world_size=processes)
                train_loop(*job, group=Group(rank, processes))
                dist.destroy_process_group()
                code = 0
            except BaseException:  # noqa: BLE001 - said here, then the exit code tells rank 0
                import traceback

                sys.stderr.write(f"DDP worker {rank} failed:\n{traceback.format_exc()}")
                sys.stderr.flush()
            finally:
                os._exit(code)  # never run the parent's exit handlers (its temporary folders are still in use)

        workers = [mp.get_context("fork").Process(target=worker, args=(r,), daemon=True) for r in range(1, processes)]
        for w in workers:
            w.start()
        return workers
    path = os.path.join(tmp, "job.pt")
    try:
        torch.save(job, path)
    except (pickle.PicklingError, AttributeError, TypeError, RuntimeError):
        return None
    ref = f"{train_loop.__module__}:{train_loop.__qualname__}"
    return [_Spawned((r, processes, address, backend, path, each, ref)) for r in range(1, processes)]


def run_parallel(processes: int, job: tuple, train: Callable[..., Any], progress, backend: str = "gloo") -> Any:
    """``train(*job, group=…)`` as rank 0 here and as ranks 1..N-1 in worker processes; rank 0's return value. When no worker
    can be started (autograd cannot fork any more and the job does not pickle), one process trains, with a warning."""
    import tempfile

    import torch
    import torch.distributed as dist

    address = f"tcp://127.0.0.1:{_free_port()}"
    threads = torch.get_num_threads()
    each = _threads_each(processes)
    with tempfile.TemporaryDirectory(prefix="compressor-ddp-") as tmp:
        workers = _start_workers(processes, job, train, address, backend, each, tmp)
        if workers is None:
            if progress is not None:
                progress.warn(f"--ddp {processes}: fine-tuned in one process: this process's autograd can no longer fork (after QAT) and "
                              "the model does not pickle for spawned workers")
            return train(*job, progress=progress)
        torch.set_num_threads(each)
        try:
            dist.init_process_group(backend, init_method=address, rank=0, world_size=processes)
            try:
                result = train(*job, group=Group(0, processes), progress=progress)
            finally:
                dist.destroy_process_group()
        finally:
            torch.set_num_threads(threads)
            for w in workers:
                w.join(timeout=120)
                if w.is_alive():
                    w.kill()
    failed = [w.exitcode for w in workers if w.exitcode != 0]
    if failed:
        raise CompressorError(f"{len(failed)} DDP worker process(es) failed (exit codes {failed}): rerun without --ddp, or with --debug")
    return result


# --- torchrun: rank 0 sends each job; the other ranks serve -----------------------------------------------------

_joined: dict[str, Any] = {}


def join(group: Group) -> None:
    """Join torchrun's process group (once per process; rank 0 tells the others to leave when it exits)."""
    import torch
    import torch.distributed as dist

    if not _joined:
        torch.set_num_threads(_threads_each(group.world))
        dist.init_process_group("gloo", rank=group.rank, world_size=group.world)  # env:// from torchrun
        _joined["group"] = group
        if group.main:
            atexit.register(_release)


def _release() -> None:
    import torch.distributed as dist

    if _joined.pop("group", None) is not None and dist.is_initialized():
        dist.broadcast_object_list([None], src=0)
        dist.destroy_process_group()


def send(job: tuple, train: Callable[..., Any]) -> Any:
    """Rank 0 under torchrun: send ``job`` to every rank and train rank 0's share."""
    import pickle

    import torch.distributed as dist

    group = launched()
    join(group)
    try:
        pickle.dumps(job)
    except (pickle.PicklingError, AttributeError, TypeError) as e:
        raise CompressorError(f"torchrun's other ranks cannot be sent this fine-tuning job ({str(e)[:80]}): QAT's fake quantizers "
                              "hold hooks that do not pickle; launch without torchrun and pass --ddp N (the workers are forked)") from None
    dist.broadcast_object_list([job], src=0)
    return train(*job, group=group)


def serve(train: Callable[..., Any]) -> None:
    """Ranks 1..N−1 under torchrun: train every job rank 0 sends until it sends None; write nothing."""
    import torch.distributed as dist

    group = launched()
    join(group)
    while True:
        box = [None]
        dist.broadcast_object_list(box, src=0)
        if box[0] is None:
            break
        train(*box[0], group=group)
    dist.destroy_process_group()


if __name__ == "__main__":  # a spawned worker: rank, processes, address, backend, job file, threads, training loop
    _r, _n, _address, _backend, _path, _threads, _ref = sys.argv[1:8]
    _spawned(int(_r), int(_n), _address, _backend, _path, int(_threads), _ref)
