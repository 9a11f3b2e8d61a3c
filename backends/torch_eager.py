"""PyTorch eager on the CPU: the FP32 reference every other target is validated against.

The artifact is a ``torch.export`` program (``model.pt2``): it reloads without the user's Python code
and runs the same ATen kernels as eager mode (no compilation), so its latency is eager latency.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from compressor.core.backend import Artifact, Backend, Runner, TorchModuleRunner
from compressor.core.environment import NO_CUDA, cuda_device
from compressor.core.errors import ExportError, TargetError
from compressor.core.generation import Generation, LmRunner, timed_greedy
from compressor.core.model import flatten_outputs
from compressor.core.targets import Device, IRFormat, Precision, TargetSpec

IO_NAMES = "compressor_io.json"  # input/output names of the model, stored inside the .pt2


class CudaHalfRunner(TorchModuleRunner):
    """The module on the GPU in float16: float inputs cast on the device, outputs back to float32 on the host."""

    def __init__(self, module, input_names, output_names):
        import torch

        super().__init__(module.to("cuda", torch.float16), input_names, output_names)

    def run(self, feeds):
        import numpy as np
        import torch

        args = [torch.from_numpy(np.ascontiguousarray(feeds[n])).cuda() for n in self.input_names]
        args = [a.half() if a.is_floating_point() else a for a in args]
        with torch.inference_mode():
            out = self.module(*args)
        torch.cuda.synchronize()
        return [t.detach().float().cpu().numpy() for t in flatten_outputs(out)]

    def describe(self):
        import torch

        return {"runtime": "torch CUDA eager (float16)", "version": torch.__version__, "gpu": torch.cuda.get_device_name(0)}


class TorchBackend(Backend):
    name = "torch"
    package = "torch"
    TARGETS = (
        TargetSpec("torch-cpu-fp32", name, Device.CPU, Precision.FP32, IRFormat.TORCH, "pt2",
                   "PyTorch eager, the FP32 reference (torch.export program)", opens=(".pt2",), reference=True),
        TargetSpec("torch-gpu-fp16", name, Device.GPU, Precision.FP16, IRFormat.TORCH, "pt2",
                   "PyTorch eager on an NVIDIA GPU in FP16 (the GPU baseline; torch.export program)", needs="an NVIDIA GPU to run"),
    )

    def preload(self) -> None:
        import torch  # noqa: F401

    def available(self, target):
        return True, ""

    def runnable(self, target):
        if target.device == Device.GPU and cuda_device() is None:
            return False, NO_CUDA
        return True, ""

    def compile(self, model, ir, target, workdir, ctx) -> Artifact:
        import torch

        if ir.program is None:
            raise ExportError(f"{target.name} saves a torch.export program, and this IR has none")
        path = Path(workdir) / "model.pt2"
        io_names = json.dumps({"inputs": model.input_names, "outputs": model.output_names})
        torch.export.save(ir.program, str(path), extra_files={IO_NAMES: io_names})
        return Artifact(target.name, path, [path], [path], {"torch": torch.__version__})

    @staticmethod
    def _read(path):
        """The exported program and the (input, output) names stored beside it."""
        import torch

        extra = {IO_NAMES: ""}
        ep = torch.export.load(str(path), extra_files=extra)
        io_names = json.loads(extra[IO_NAMES]) if extra[IO_NAMES] else {}
        names = io_names.get("inputs") or list(ep.graph_signature.user_inputs)
        outs = io_names.get("outputs") or [str(o) for o in ep.graph_signature.user_outputs]
        return ep, names, outs

    def load(self, path, target, threads=None) -> Runner:
        ep, names, outs = self._read(path)
        if target.device == Device.GPU:
            ok, why = self.runnable(target)
            if not ok:
                raise TargetError(f"{target.name}: {why}")
            return CudaHalfRunner(ep.module(), names, outs)
        return TorchModuleRunner(ep.module(), names, outs, threads=threads)

    def artifact_inputs(self, path):
        from compressor.io.loading import inputs_from_exported

        ep, names, _ = self._read(path)
        return [replace(s, name=n) for s, n in zip(inputs_from_exported(ep), names)]


class TorchLmRunner(LmRunner):
    """A causal LM in PyTorch eager with its KV cache: the reference every LM artifact is compared with."""

    def __init__(self, model, eos: int | None, threads: int | None = None):
        self.model, self.eos, self.threads = model.eval(), eos, threads

    def logits(self, ids: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.model(input_ids=torch.as_tensor(ids, dtype=torch.long), use_cache=False).logits.float().numpy()

    def generate(self, ids: list[int], max_new_tokens: int, exact: bool = False) -> Generation:
        import torch

        state = {}

        def step(x):
            out = self.model(input_ids=x, past_key_values=state.get("past"), use_cache=True)
            state["past"] = out.past_key_values
            return int(out.logits[0, -1].argmax())

        with torch.no_grad():
            def first():
                return step(torch.tensor([ids], dtype=torch.long))

            def nxt():
                return step(torch.tensor([[state["last"]]], dtype=torch.long))

            def remember(fn):
                def wrapped():
                    state["last"] = fn()
                    return state["last"]
                return wrapped

            return timed_greedy(remember(first), remember(nxt), self.eos, max_new_tokens, exact)

    def describe(self) -> dict:
        import torch

        return {"runtime": "torch", "version": torch.__version__, "threads": self.threads}
