"""litert-torch's own documented PT2E INT8 flow, nothing added: the peer of the SDK's litert-xnnpack-int8.

Runs in .venv-litert (litert-torch cannot share the project's environment). The float model arrives as a torch.export
program saved by the suite (this environment has no torchvision):

    .venv-litert/bin/python benchmarks/litert_peer.py FLOAT.pt2 CALIB.npz OUT.tflite
    .venv-litert/bin/python benchmarks/litert_peer.py --dynamic FP32.tflite OUT.tflite

PT2EQuantizer with get_symmetric_quantization_config(is_per_channel=True), a strict export, prepare_pt2e, one forward
per calibration image, convert_pt2e(fold_quantize=False), litert_torch.convert(..., quant_config=QuantConfig(pt2e_quantizer=q)).
Prints one JSON line.

``--dynamic`` makes the candidate for a dynamic-range INT8 target instead: ai-edge-quantizer's ``dynamic_wi8_afp32``
recipe (int8 weights, float activations quantized per inference) applied to the SDK's FP32 ``.tflite``. The suite times it
to decide whether that variant is worth a target on this CPU.
"""

from __future__ import annotations

import json
import sys
import time


def dynamic_range(fp32: str, out: str) -> dict:
    from ai_edge_quantizer import quantizer, recipe

    t0 = time.perf_counter()
    quantizer.Quantizer(fp32, recipe.dynamic_wi8_afp32()).quantize().export_model(out, overwrite=True)
    return {"recipe": "dynamic_wi8_afp32", "seconds": round(time.perf_counter() - t0, 1)}


def main(argv: list[str]) -> int:
    if argv[0] == "--dynamic":
        print(json.dumps(dynamic_range(*argv[1:3])))
        return 0
    import litert_torch
    import numpy as np
    import torch
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    program, calib, out = argv[:3]
    model = torch.export.load(program).module()
    with np.load(calib) as z:
        x = z["x"]
    example = (torch.from_numpy(x[:1]),)
    t0 = time.perf_counter()
    quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    m = prepare_pt2e(torch.export.export(model, example, strict=True).module(), quantizer)
    with torch.no_grad():
        for i in range(len(x)):
            m(torch.from_numpy(x[i:i + 1]))
    m = convert_pt2e(m, fold_quantize=False)
    litert_torch.convert(m, example, quant_config=QuantConfig(pt2e_quantizer=quantizer)).export(out)
    print(json.dumps({"litert_torch": litert_torch.__version__, "seconds": round(time.perf_counter() - t0, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
