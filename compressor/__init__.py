"""compressor: turn a trained PyTorch checkpoint into a validated, benchmarked, device-specific bundle.

The Python API mirrors the CLI::

    import compressor
    result = compressor.compress("resnet18.pth", arch="torchvision:resnet18", input_shape="1,3,224,224",
                                 target="ort-cpu-fp32", eval="eval.npz", output="out/resnet18-ort")
    result.bundle, result.fidelity["top1_agreement"], result.metrics["latency_ms"]["p50"]
    compressor.verify("out/resnet18-ort")

Function names never match a submodule's name (importing a submodule would shadow them).
Heavy modules (torch, runtimes) are imported only when a function runs.
"""

from compressor.core.version import __version__

__all__ = ["compress", "analyze", "bench_targets", "search", "verify", "bench", "list_targets", "__version__"]


def __getattr__(name):
    if name in ("compress", "analyze", "bench_targets", "search", "verify", "bench", "list_targets"):
        from compressor.app import api

        return getattr(api, name)
    raise AttributeError(f"module 'compressor' has no attribute '{name}'")
