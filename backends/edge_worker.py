"""Run an edge artifact on reference inputs with its own runtime, and nothing else: ExecuTorch (``.pte``), LiteRT
(``.tflite``) or ONNX Runtime (``.onnx``/``.ort``).

This file imports only numpy and the runtime, so it runs where the SDK is not installed: inside the emulated arm64 root
that ``compressor verify --on arm64`` uses (``compressor/bundle/arm64.py`` copies it there), with the aarch64 wheels of the
runtimes. The host's LiteRT runner uses :func:`litert_invoke` too, so int8 inputs and outputs are converted one way.

    python edge_worker.py RUNTIME ARTIFACT INPUTS.npz OUTPUTS.npz --names a,b --batch N [--threads T]

RUNTIME is ``executorch``, ``litert`` or ``ort``. INPUTS.npz holds the reference inputs (all samples) under ``--names``;
they run in batches of N, and the outputs are written as ``output_0``, ``output_1``… Prints one JSON line: the runtime's
version, the machine it saw and the seconds per batch (emulated time, never device latency).
"""

from __future__ import annotations

import json
import platform
import sys
import time

import numpy as np

INT_TYPES = (np.int8, np.uint8, np.int16)


def channels_last_if_asked(x: np.ndarray, shape) -> np.ndarray:
    """An N,C,H,W array for a tensor converted channels-last (``--input-layout nhwc``) transposed to N,H,W,C; else as it is."""
    shape = tuple(int(d) for d in shape)
    if x.ndim == 4 and tuple(x.shape) != shape and (x.shape[0], x.shape[2], x.shape[3], x.shape[1]) == shape:
        return x.transpose(0, 2, 3, 1)
    return x


def litert_invoke(interpreter, inputs: list[dict], outputs: list[dict], arrays: list[np.ndarray]) -> list[np.ndarray]:
    """One invocation of a LiteRT interpreter: integer input tensors are quantized with their own scale and zero point and
    integer outputs dequantized the same way, so a full-integer model takes and gives float like the PyTorch model; inputs
    of a channels-last artifact are transposed from the PyTorch layout."""
    for d, x in zip(inputs, arrays, strict=True):
        x = channels_last_if_asked(x, d["shape"])
        if d["dtype"] in INT_TYPES:
            s, z = d["quantization"]
            info = np.iinfo(d["dtype"])
            q = np.divide(x, np.float32(s), dtype=np.float32)  # in place from here: one temporary, not four
            np.rint(q, out=q)
            q += np.float32(z)
            x = np.clip(q, info.min, info.max, out=q)
        interpreter.set_tensor(d["index"], np.ascontiguousarray(x, dtype=d["dtype"]))
    interpreter.invoke()
    outs = []
    for d in outputs:
        y = interpreter.get_tensor(d["index"])
        if d["dtype"] in INT_TYPES:
            s, z = d["quantization"]
            y = (y.astype(np.float32) - z) * s
        outs.append(np.array(y))
    return outs


def _litert(path: str, threads: int | None):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=path, num_threads=threads or None)
    it.allocate_tensors()
    ins, outs = it.get_input_details(), it.get_output_details()
    model_batch = int(ins[0]["shape"][0]) if len(ins[0]["shape"]) else 1

    def run(arrays):  # the shapes are fixed at conversion: a larger batch runs in slices of the model's own
        n = arrays[0].shape[0] if arrays[0].ndim else 1
        parts = [litert_invoke(it, ins, outs, [a[i:i + model_batch] for a in arrays]) for i in range(0, n, model_batch)]
        return [np.concatenate([p[k] for p in parts]) for k in range(len(outs))]
    return run, _version("ai-edge-litert")


def _executorch(path: str, threads: int | None):
    import torch  # the bindings link libtorch: it must be loaded first
    from executorch.extension.pybindings import _C  # the bare bindings: portable_lib's imports pull in the exporter's dependencies

    if threads:
        _C._unsafe_reset_threadpool(threads)
    module = _C._load_for_executorch(path)

    def run(arrays):
        outs = module.forward([torch.from_numpy(np.ascontiguousarray(a)) for a in arrays])
        return [o.detach().numpy() if hasattr(o, "detach") else np.asarray(o) for o in outs]
    return run, _version("executorch")


def _ort(path: str, threads: int | None):
    import onnxruntime as ort

    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]

    def run(arrays):
        return sess.run(None, dict(zip(names, arrays, strict=True)))
    return run, ort.__version__


RUNTIMES = {"litert": _litert, "executorch": _executorch, "ort": _ort}


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "unknown"


def main(argv: list[str]) -> int:
    runtime, artifact, inputs_path, outputs_path = argv[:4]
    opts = dict(zip(argv[4::2], argv[5::2]))
    names = opts["--names"].split(",")
    batch = int(opts.get("--batch", "1"))
    threads = int(opts["--threads"]) if "--threads" in opts else None
    t0 = time.perf_counter()
    run, version = RUNTIMES[runtime](artifact, threads)
    load_s = time.perf_counter() - t0
    with np.load(inputs_path) as z:
        arrays = [z[n] for n in names]
    n = len(arrays[0])
    parts, seconds = [], []
    for i in range(0, n, batch):
        t = time.perf_counter()
        parts.append(run([a[i:i + batch] for a in arrays]))
        seconds.append(time.perf_counter() - t)
    outs = [np.concatenate([p[k] for p in parts]) for k in range(len(parts[0]))]
    np.savez(outputs_path, **{f"output_{k}": o for k, o in enumerate(outs)})
    print(json.dumps({"runtime": runtime, "version": version, "machine": platform.machine(), "samples": n, "batches": len(seconds),
                      "load_s": round(load_s, 2), "median_batch_s": round(sorted(seconds)[len(seconds) // 2], 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
