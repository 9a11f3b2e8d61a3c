"""The LiteRT converter worker: a torch.export program (``.pt2``) → a ``.tflite`` flatbuffer, with litert-torch.

It runs in its own environment (``.venv-litert``, made by ``make setup``), never in the project's: litert-torch's
dependencies (xdsl through ai-edge-litert's model utilities) pin typing-extensions below 4.13, which would break
pydantic and cattrs there. It imports nothing from this project: only torch, numpy and litert_torch.

    python litert_convert.py PROGRAM.pt2 SAMPLE.npz OUT.tflite [--int8 | --fp16] [--nhwc]

``--int8``: the program is already PT2E-converted (quantize/dequantize pairs from the SDK's plan, XNNPACK layout);
litert-torch's PT2E configuration (int8 per-channel symmetric weights, int8 per-tensor activations) tells the converter
to fold them into full-integer kernels. The export is strict: a non-strict export leaves residual adds in float.
``--fp16``: weights stored in float16 (litert-torch's float-cast recipe); the runtime computes in fp16 where the CPU has
fp16 arithmetic and XNNPACK chooses it, else it widens them to float32.
``--nhwc``: 4-D inputs are taken channels-last (litert_torch.to_channel_last_io), so no transpose runs in front of the model.
Prints one JSON line: what was done, or ``{"error": …}`` with the converter's own message.
"""

from __future__ import annotations

import json
import sys
import time


def unfold_quantized_weights(module) -> int:
    """Give litert-torch the form it converts: ``quantize → dequantize`` on a float weight. A PT2E program converted with
    ``fold_quantize=True`` (the SDK's realiser, shared with ExecuTorch) stores each int8 weight as a constant feeding a
    dequantize, which litert-torch's lowering rejects ("uniform_dequantize … got tensor<…xi8>"). The float weight put back
    is ``(q − zero) · scale`` of the same codes, so quantizing it again gives exactly those codes."""
    import torch

    qd = torch.ops.quantized_decomposed
    pairs = {qd.dequantize_per_channel.default: qd.quantize_per_channel.default,
             qd.dequantize_per_tensor.default: qd.quantize_per_tensor.default}
    graph, done = module.graph, 0
    for node in list(graph.nodes):
        src = node.args[0] if node.op == "call_function" and node.target in pairs else None
        if getattr(src, "op", None) != "get_attr":
            continue
        q = getattr(module, src.target)
        if q.dtype not in (torch.int8, torch.uint8):
            continue
        scale, zero = (getattr(module, a.target) if getattr(a, "op", None) == "get_attr" else a for a in node.args[1:3])
        if node.target == qd.dequantize_per_channel.default:
            axis = node.args[3]
            shape = [1] * q.dim()
            shape[axis] = -1
            w = (q.float() - torch.as_tensor(zero).float().reshape(shape)) * torch.as_tensor(scale).float().reshape(shape)
        else:
            w = (q.float() - float(zero)) * float(scale)
        name = f"{src.target}_float"
        module.register_buffer(name, w)
        with graph.inserting_before(node):
            w_node = graph.get_attr(name)
            q_node = graph.call_function(pairs[node.target], (w_node, *node.args[1:]), dict(node.kwargs))
        node.replace_input_with(src, q_node)
        done += 1
    graph.eliminate_dead_code()
    module.recompile()
    return done


def main(argv: list[str]) -> int:
    program, sample, out = argv[:3]
    int8, fp16, nhwc = ("--int8" in argv), ("--fp16" in argv), ("--nhwc" in argv)
    try:
        import litert_torch
        import numpy as np
        import torch

        module = torch.export.load(program).module()
        with np.load(sample) as z:
            args = tuple(torch.from_numpy(z[k]) for k in sorted(z.files, key=lambda k: int(k.split("_")[-1])))
        kwargs, unfolded = {}, 0
        if int8:
            unfolded = unfold_quantized_weights(module)
            from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
            from litert_torch.quantize.quant_config import QuantConfig

            quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
            kwargs = {"quant_config": QuantConfig(pt2e_quantizer=quantizer), "strict_export": True}
        elif fp16:
            from litert_torch.generative.quantize.quant_recipes import full_fp16_recipe

            kwargs = {"quant_config": full_fp16_recipe()}
        channels_last = [i for i, a in enumerate(args) if a.dim() == 4] if nhwc else []
        if channels_last:
            module = litert_torch.to_channel_last_io(module, args=channels_last)
            args = tuple(a.permute(0, 2, 3, 1).contiguous() if i in channels_last else a for i, a in enumerate(args))
        t0 = time.perf_counter()
        litert_torch.convert(module, args, **kwargs).export(out)
        print(json.dumps({"litert_torch": litert_torch.__version__, "torch": torch.__version__, "int8": int8, "fp16_weights": fp16,
                          "weights_unfolded": unfolded, "input_layout": "NHWC" if channels_last else "NCHW",
                          "convert_seconds": round(time.perf_counter() - t0, 2)}))
        return 0
    except Exception as e:  # noqa: BLE001 - the converter's message goes back to the SDK, which names the op
        lines = [ln for ln in str(e).strip().splitlines() if ln.strip()] or [type(e).__name__]
        print(json.dumps({"error": f"{type(e).__name__}: {lines[-1][:600]}", "message": str(e)[-4000:]}))
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
