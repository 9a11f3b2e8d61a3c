"""Weight-only quantization of decoder language models (INT4/INT8 group-wise weights, float activations).

The algorithms (:mod:`.grid` the integer grid, :mod:`.scale_estimation`, :mod:`.awq`, :mod:`.gptq`) are plain tensor code;
:mod:`.stage` runs them block by block over calibration text and fills a :class:`.plan.WeightOnlyPlan`, which the
realisers (ONNX Runtime GenAI's MatMulNBits, OpenVINO's compressed weights) write without re-deciding anything.
"""
