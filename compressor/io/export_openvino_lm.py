"""A Llama-family causal LM written as an OpenVINO GenAI model folder: ``openvino_model.xml`` with a stateful KV cache,
``openvino_tokenizer.xml``/``openvino_detokenizer.xml``, ``config.json`` and ``generation_config.json``; what
``openvino_genai.LLMPipeline`` loads.

The decoder graph is written op by op with OpenVINO's opset (no tracing): embeddings, RMSNorm, rotary embeddings,
grouped-query attention over a KV cache (``ScaledDotProductAttention``), SwiGLU MLP, tied or separate ``lm_head``.
Every weight comes from ``weights(module_name, tensor)``, so a realiser can put compressed weights (u4/u8 codes,
scales, zero points: OpenVINO's decompression subgraph) where the float constants would go; the default writes float32.

The cache follows the layout OpenVINO GenAI expects (optimum-intel's): inputs ``input_ids``, ``attention_mask``,
``position_ids``, ``beam_idx``; output ``logits``; one state per layer and K/V, reordered by ``beam_idx`` and
zero-initialised per batch.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from compressor.core.errors import InputError

ARCHITECTURES = ("llama", "mistral", "qwen2")  # the block structure written below (pre-norm, RoPE, GQA, SwiGLU)
MODEL_XML = "openvino_model.xml"

WeightFn = Callable[[str, Any], Any]  # (torch module name, float weight tensor out × in) → an OpenVINO output [out, in] f32


def check_architecture(config) -> None:
    kind = getattr(config, "model_type", "?")
    if kind not in ARCHITECTURES:
        raise InputError(f"the OpenVINO GenAI targets write {', '.join(ARCHITECTURES)} decoders; this model is '{kind}': use the "
                         "ONNX Runtime GenAI targets (ort-cpu-int4, ort-cpu-int8-wo, ort-cpu-fp32-lm)")
    if getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True) is not False and kind == "mistral":
        raise InputError("sliding-window attention is not written by the OpenVINO GenAI export: use the ONNX Runtime GenAI targets")
    if getattr(config, "hidden_act", "silu") != "silu":
        raise InputError(f"the OpenVINO GenAI export writes SiLU MLPs; this model uses {config.hidden_act}")


def float_weight(name: str, tensor) -> Any:
    import openvino.opset13 as ops

    return ops.constant(tensor.detach().float().numpy(), name=name + ".weight").output(0)


def decoder_graph(model, weights: WeightFn = float_weight):
    """The stateful OpenVINO model of ``model`` (a transformers ``…ForCausalLM`` of a Llama-family architecture)."""
    import openvino as ov
    import openvino.opset13 as ops

    cfg = model.config
    check_architecture(cfg)
    heads, kv_heads = cfg.num_attention_heads, getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    hd = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    mods = dict(model.named_modules())

    def const(a, name=None):
        return ops.constant(np.asarray(a), name=name).output(0)

    def linear(x, name):
        m = mods[name]
        y = ops.matmul(x, weights(name, m.weight), False, True, name=name + "/MatMul").output(0)
        return ops.add(y, const(m.bias.detach().float().numpy()), name=name + "/Add").output(0) if m.bias is not None else y

    def rms_norm(x, name):
        m = mods[name]
        eps = float(getattr(m, "variance_epsilon", getattr(m, "eps", 1e-6)))
        var = ops.reduce_mean(ops.power(x, const(np.float32(2.0))), const(np.int64([-1])), keep_dims=True)
        inv = ops.divide(const(np.float32(1.0)), ops.sqrt(ops.add(var, const(np.float32(eps)))))
        return ops.multiply(ops.multiply(x, inv), const(m.weight.detach().float().numpy()), name=name).output(0)

    input_ids = ops.parameter([-1, -1], ov.Type.i64, name="input_ids")
    mask_in = ops.parameter([-1, -1], ov.Type.i64, name="attention_mask")
    position_ids = ops.parameter([-1, -1], ov.Type.i64, name="position_ids")
    beam_idx = ops.parameter([-1], ov.Type.i32, name="beam_idx")
    inputs = [input_ids, mask_in, position_ids, beam_idx]
    for p in inputs:
        p.output(0).get_tensor().set_names({p.get_friendly_name()})

    # rotary embeddings: cos/sin of position × inv_freq (the model's own, scaling included), shared by every layer
    rot = model.model.rotary_emb
    inv_freq = rot.inv_freq.detach().float().numpy()
    scaling = float(getattr(rot, "attention_scaling", 1.0))
    freqs = ops.multiply(ops.unsqueeze(ops.convert(position_ids, ov.Type.f32), const(np.int64([-1]))), const(inv_freq))
    emb = ops.concat([freqs, freqs], -1)
    cos = ops.unsqueeze(ops.multiply(ops.cos(emb), const(np.float32(scaling))), const(np.int64([1])))  # B × 1 × S × hd
    sin = ops.unsqueeze(ops.multiply(ops.sin(emb), const(np.float32(scaling))), const(np.int64([1])))

    def rope(x):
        x1, x2 = ops.split(x, const(np.int64(-1)), 2).outputs()
        half = ops.concat([ops.negative(x2), x1], -1)
        return ops.add(ops.multiply(x, cos), ops.multiply(half, sin)).output(0)

    # the additive mask: causal over (past + new) keys, and the caller's padding mask
    ids_shape = ops.shape_of(input_ids, ov.Type.i64)
    total = ops.gather(ops.shape_of(mask_in, ov.Type.i64), const(np.int64(1)), const(np.int64(0)))
    new = ops.gather(ids_shape, const(np.int64(1)), const(np.int64(0)))
    past_len = ops.subtract(total, new)
    kpos = ops.range(const(np.int64(0)), total, const(np.int64(1)), ov.Type.i64)
    qpos = ops.range(past_len, total, const(np.int64(1)), ov.Type.i64)
    causal = ops.less_equal(ops.unsqueeze(kpos, const(np.int64([0]))), ops.unsqueeze(qpos, const(np.int64([1]))))  # S × T
    padding = ops.unsqueeze(ops.convert(mask_in, ov.Type.boolean), const(np.int64([1, 2])))  # B × 1 × 1 × T
    allowed = ops.logical_and(ops.unsqueeze(causal, const(np.int64([0, 1]))), padding)
    mask = ops.select(allowed, const(np.float32(0.0)), const(np.float32(np.finfo(np.float32).min))).output(0)

    emb_name = "model.embed_tokens"
    table = weights(emb_name, mods[emb_name].weight)
    h = ops.gather(table, input_ids, const(np.int64(0)), name=emb_name + "/Gather").output(0)
    kv_inputs, kv_outputs = [], []
    group = heads // kv_heads
    for i in range(cfg.num_hidden_layers):
        pre = f"model.layers.{i}"
        x = rms_norm(h, f"{pre}.input_layernorm")

        def split_heads(y, n):
            y = ops.reshape(y, const(np.int64([0, 0, n, hd])), special_zero=True)
            return ops.transpose(y, const(np.int64([0, 2, 1, 3]))).output(0)  # B × n × S × hd

        q = rope(split_heads(linear(x, f"{pre}.self_attn.q_proj"), heads))
        k = rope(split_heads(linear(x, f"{pre}.self_attn.k_proj"), kv_heads))
        v = split_heads(linear(x, f"{pre}.self_attn.v_proj"), kv_heads)
        cache = []
        for kind, new_t in (("key", k), ("value", v)):
            past = ops.parameter([-1, kv_heads, -1, hd], ov.Type.f32, name=f"past_key_values.{i}.{kind}")
            past.output(0).get_tensor().set_names({past.get_friendly_name()})
            kv_inputs.append(past)
            full = ops.concat([ops.gather(past, beam_idx, const(np.int64(0))), new_t], 2)
            present = ops.result(full, name=f"present.{i}.{kind}")
            present.output(0).get_tensor().set_names({f"present.{i}.{kind}"})
            kv_outputs.append(present)
            if group > 1:  # grouped-query attention: each KV head serves `group` query heads
                shape = ops.shape_of(full, ov.Type.i64)
                b_t = [ops.gather(shape, const(np.int64([d])), const(np.int64(0))) for d in (0, 2)]
                target = ops.concat([b_t[0], const(np.int64([kv_heads, group])), b_t[1], const(np.int64([hd]))], 0)
                full = ops.broadcast(ops.unsqueeze(full, const(np.int64([2]))), target, broadcast_spec="BIDIRECTIONAL")
                full = ops.reshape(full, const(np.int64([0, heads, -1, hd])), special_zero=True)
            cache.append(full)
        attn = ops.scaled_dot_product_attention(q, cache[0], cache[1], mask, const(np.float32(1.0 / np.sqrt(hd))), causal=False)
        attn = ops.reshape(ops.transpose(attn, const(np.int64([0, 2, 1, 3]))), const(np.int64([0, 0, heads * hd])), special_zero=True)
        h = ops.add(h, linear(attn.output(0), f"{pre}.self_attn.o_proj")).output(0)
        x = rms_norm(h, f"{pre}.post_attention_layernorm")
        gated = ops.multiply(ops.swish(linear(x, f"{pre}.mlp.gate_proj")), linear(x, f"{pre}.mlp.up_proj"))
        h = ops.add(h, linear(gated.output(0), f"{pre}.mlp.down_proj")).output(0)
    h = rms_norm(h, "model.norm")
    tied = model.lm_head.weight.data_ptr() == mods[emb_name].weight.data_ptr()
    head = table if tied else weights("lm_head", model.lm_head.weight)
    logits = ops.result(ops.matmul(h, head, False, True, name="lm_head/MatMul"), name="logits")
    logits.output(0).get_tensor().set_names({"logits"})
    m = ov.Model([logits, *kv_outputs], [*inputs, *kv_inputs], "decoder")
    return _stateful(m, [p.get_friendly_name() for p in kv_inputs], [r.get_friendly_name() for r in kv_outputs])


def _stateful(model, past_names: list[str], present_names: list[str]):
    """The KV-cache inputs/outputs turned into states (``ReadValue``/``Assign``), zero-initialised with the batch of
    ``input_ids`` (the layout optimum-intel writes and OpenVINO GenAI reads)."""
    import openvino as ov
    import openvino.opset13 as ops
    from openvino._offline_transformations import apply_make_stateful_transformation

    apply_make_stateful_transformation(model, dict(zip(past_names, present_names)))
    batch = ops.gather(ops.shape_of(model.input("input_ids"), ov.Type.i64), ops.constant(np.int64([0])), ops.constant(np.int64(0)))
    for op in model.get_ops():
        if op.get_type_name() == "ReadValue":
            dims = [d.get_min_length() for d in op.get_output_partial_shape(0)]
            parts = [batch if j == 0 else ops.constant(np.int64([d])) for j, d in enumerate(dims)]
            op.set_arguments([ops.broadcast(ops.constant(np.float32(0.0)), ops.concat(parts, 0))])
    model.validate_nodes_and_infer_types()
    return model


def write_folder(model, tokenizer, ov_model, out: Path) -> dict[str, Any]:
    """The GenAI folder: the decoder IR (weights as they are: float32 stays float32), the tokenizer and detokenizer IRs,
    ``config.json`` and ``generation_config.json``."""
    import openvino as ov

    try:
        from openvino_tokenizers import convert_tokenizer
    except ImportError as e:
        raise InputError("the OpenVINO GenAI targets need openvino-tokenizers: pip install openvino-genai==2026.4.1 "
                         "openvino-tokenizers==2026.4.1") from e
    out.mkdir(parents=True, exist_ok=True)
    ov.save_model(ov_model, str(out / MODEL_XML), compress_to_fp16=False)
    tok, detok = convert_tokenizer(tokenizer, with_detokenizer=True)
    ov.save_model(tok, str(out / "openvino_tokenizer.xml"))
    ov.save_model(detok, str(out / "openvino_detokenizer.xml"))
    tokenizer.save_pretrained(out)
    conf = model.config.to_dict()
    conf.pop("quantization_config", None)
    conf.setdefault("architectures", [type(model).__name__])
    (out / "config.json").write_text(json.dumps(conf, indent=2, default=str))
    gen = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id, "do_sample": False}
    (out / "generation_config.json").write_text(json.dumps(gen, indent=2))
    return {"ops": len(ov_model.get_ops()), "states": len(ov_model.get_sinks())}
