"""Decoder LMs: the weight-only algorithms on tensors, the block-wise plan on a tiny random Llama, the MatMulNBits packing
against ONNX Runtime's own kernel, the OpenVINO decoder IR (float and compressed) against torch, perplexity windows, text
data, and the CLI flow to verified ONNX Runtime GenAI and OpenVINO GenAI bundles.

The tiny Llama (2 blocks, hidden 64) uses SmolLM2's real tokenizer, read from the GGUF that `make setup` installs."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from compressor.data.text import calibration_windows, load_text, token_stream
from compressor.evaluation.perplexity import evaluate, spans, torch_logits
from compressor.quantization.weight_only import awq
from compressor.quantization.weight_only.gptq import gptq_codes, gptq_codes_shared
from compressor.quantization.weight_only.grid import Grid, codes, dequantize, fake_quantize, fit
from compressor.quantization.weight_only.matmulnbits import block_size, modules_of, pack
from compressor.quantization.weight_only.scale_estimation import estimate
from compressor.quantization.weight_only.settings import WeightOnlySettings
from compressor.quantization.weight_only.stage import quantize_model, unit_of
from tests.conftest import cli, one_line_error, read_manifest

EVAL = "examples.wiki_text:evaluation"
CALIB = "examples.wiki_text:calibration"
SMALL = ["--eval-tokens", "384", "--eval-window", "128", "--seq-len", "64", "--calib-samples", "4"]


def _gguf() -> Path:
    from compressor.zoo.paths import smollm2_gguf

    return smollm2_gguf()


def _tiny(vocab: int = 49152, tied: bool = True):
    import transformers

    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                                   tie_word_embeddings=tied, bos_token_id=1, eos_token_id=2)
    return transformers.LlamaForCausalLM(cfg).eval()


@pytest.fixture(scope="session")
def tiny_lm_folder(tmp_path_factory) -> Path:
    """A 2-block random Llama with SmolLM2's tokenizer, saved as a Hugging Face folder."""
    import transformers

    g = _gguf()
    tok = transformers.AutoTokenizer.from_pretrained(g.parent, gguf_file=g.name)
    folder = tmp_path_factory.mktemp("tiny-llama")
    _tiny().save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


# --- the grid and the algorithms ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("bits,group,sym", [(4, 32, False), (4, 64, True), (8, -1, False), (4, 48, False)])
def test_grid_codes_reproduce_the_dequantized_weights(bits, group, sym):
    w = torch.randn(16, 96)
    grid = Grid(bits, group, sym)
    s, z = fit(w, grid)
    q = codes(w, s, z, grid)
    assert q.dtype == torch.uint8 and int(q.max()) <= grid.qmax
    dq = dequantize(q, s, z, grid)
    assert torch.equal(dq, fake_quantize(w, grid))
    step = s.max().item()
    assert (dq - w).abs().max().item() <= step / 2 + 1e-6  # within half a step: nothing clipped at clip 1.0
    if sym:
        assert torch.all(z == grid.mid)


def test_scale_estimation_lowers_the_activation_weighted_error():
    torch.manual_seed(0)
    w = torch.randn(64, 128)
    w[:, 3] *= 8  # an outlier column
    h = torch.rand(128) ** 4 * 10  # uneven input energy
    grid = Grid(4, 32, False)

    def err(s, z):
        return float((h * (w - dequantize(codes(w, s, z, grid), s, z, grid)) ** 2).sum())

    assert err(*estimate(w, grid, h)) < 0.9 * err(*fit(w, grid))


def test_gptq_lowers_the_output_error_on_correlated_inputs():
    torch.manual_seed(0)
    x = torch.randn(2048, 64) @ torch.randn(64, 64)  # correlated inputs: error feedback pays
    w = torch.randn(32, 64)
    h = x.T @ x / len(x)
    grid = Grid(4, 32, False)
    s, z = fit(w, grid)
    rtn = dequantize(codes(w, s, z, grid), s, z, grid)
    gq = dequantize(gptq_codes(w, h, s, z, grid), s, z, grid)
    y = x @ w.T
    assert ((x @ gq.T - y) ** 2).mean() < 0.8 * ((x @ rtn.T - y) ** 2).mean()


def test_gptq_rounds_layers_sharing_a_hessian_in_one_loop_as_it_would_each_alone():
    torch.manual_seed(1)
    x = torch.randn(1024, 96) @ torch.randn(96, 96)
    h = x.T @ x / len(x)
    grid = Grid(4, 32, False)
    ws = [torch.randn(rows, 96) for rows in (40, 8, 24)]  # q, k, v of unequal heights
    fits = [fit(w, grid) for w in ws]
    together = gptq_codes_shared(ws, h, [f[0] for f in fits], [f[1] for f in fits], grid)
    for w, (s, z), q in zip(ws, fits, together):
        alone = gptq_codes(w, h, s, z, grid)
        assert q.shape == w.shape and (q != alone).float().mean() < 1e-3  # rows are independent: equal up to BLAS order


def test_awq_coarse_to_fine_search_finds_the_exhaustive_optimum():
    torch.manual_seed(2)
    found = []
    for trial in range(6):  # a layer of 192 × 4 groups: on a 2-group toy the loss over α is too jagged for any coarse step
        x = torch.randn(2048, 256) * torch.rand(256) ** 3 * 4  # uneven channel magnitudes, as activations have
        x[:, trial] *= 15
        w = torch.randn(192, 256)
        h, xa, grid = x.T @ x / len(x), x.abs().mean(0), Grid(4, 64, False)
        _, a_fast, before_fast, after_fast = awq.search(h, xa, [w], grid)
        _, a_all, before_all, after_all = awq.search(h, xa, [w], grid, exhaustive=True)
        assert before_fast == before_all and after_fast >= after_all
        found.append(after_fast / after_all)
    assert max(found) < 1.02  # at most 2 % above the grid's best loss on every trial


@pytest.mark.parametrize("gptq,inputs", [(True, "quantized"), (False, "float")])
def test_bfloat16_calibration_and_block_inputs_are_recorded_and_keep_the_quality(gptq, inputs):
    model = _tiny(vocab=512)
    ref = copy.deepcopy(model)
    cal = [torch.randint(0, 512, (1, 48)) for _ in range(6)]  # more windows than one batched block call takes
    plan = quantize_model(model, cal, WeightOnlySettings(group_size=32, calib_precision="bfloat16", gptq=gptq))
    assert plan.transforms["calibration_precision"]["chosen"] == "bfloat16"
    assert plan.transforms["block_inputs"].startswith(f"the {inputs} blocks' outputs")
    stream = torch.randint(0, 512, (400,))
    fp = evaluate(torch_logits(ref), stream, 128, 128)
    q = evaluate(torch_logits(model), stream, 128, 128, reference=fp)
    assert q.agreement > 0.9 and abs(q.perplexity / fp.perplexity - 1) < 0.05
    auto = quantize_model(copy.deepcopy(ref), cal[:2], WeightOnlySettings(group_size=32)).transforms["calibration_precision"]
    assert auto["chosen"] in ("float32", "bfloat16") and auto["bf16_speedup"] > 0 and "auto" in auto["by"]


def test_awq_fold_keeps_the_float_function():
    torch.manual_seed(0)
    norm = torch.nn.LayerNorm(16)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2)
    lin = torch.nn.Linear(16, 8, bias=False)
    x = torch.randn(32, 16)
    x[:, 2] *= 20
    y = lin(norm(x))
    xn = norm(x).detach()
    grid = Grid(4, 16, False)
    s, alpha, before, after = awq.search(xn.T @ xn / len(xn), xn.abs().mean(0), [lin.weight.data], grid)
    explicit = float(((xn @ (fake_quantize(lin.weight.data, grid) - lin.weight.data).T) ** 2).mean())
    assert before == pytest.approx(explicit, rel=1e-4)  # the loss from H is the output error over every token
    assert after <= before and alpha > 0  # the outlier channel makes scaling worth it
    awq.fold(s, [lin], norm)
    assert torch.allclose(lin(norm(x)), y, atol=1e-4)


# --- the plan on a tiny Llama ------------------------------------------------------------------------------------------

def test_plan_quantizes_every_block_linear_and_the_tied_embedding_once():
    model = _tiny(vocab=512)
    ref = copy.deepcopy(model)
    cal = [torch.randint(0, 512, (1, 48)) for _ in range(3)]
    plan = quantize_model(model, cal, WeightOnlySettings(group_size=32))
    names = [layer.name for layer in plan.layers]
    assert len([n for n in names if ".layers." in n]) == 14  # 2 blocks × q, k, v, o, gate, up, down
    head = plan.layer("lm_head")
    assert head.bits == 8 and head.tied_to == ["model.embed_tokens"] and plan.layer("model.embed_tokens") is head
    for layer in plan.layers:  # the model holds exactly the plan's dequantized weights
        t = plan.tensors[layer.name]
        assert torch.equal(dequantize(t.codes, t.scale, t.zero, layer.grid), model.get_submodule(layer.name).weight.data)
    assert plan.transforms["awq"]["groups"] == 6  # qkv, gate/up, down per block (o after v is skipped: GQA)
    stream = torch.randint(0, 512, (400,))
    fp = evaluate(torch_logits(ref), stream, 128, 128)
    q = evaluate(torch_logits(model), stream, 128, 128, reference=fp)
    assert q.agreement > 0.9 and abs(q.perplexity / fp.perplexity - 1) < 0.05
    json.dumps(plan.to_dict())  # the manifest's part is JSON


def test_mixed_precision_keeps_q_k_v_on_one_grid_and_meets_the_ratio():
    model = _tiny(vocab=512)
    cal = [torch.randint(0, 512, (1, 48)) for _ in range(3)]
    plan = quantize_model(model, cal, WeightOnlySettings(group_size=32, ratio=0.6))
    by_unit = {}
    for layer in plan.layers:
        if ".layers." in layer.name:
            by_unit.setdefault(unit_of(layer.name), set()).add(layer.bits)
    assert all(len(b) == 1 for b in by_unit.values())
    p = plan.params_by_bits()
    block = {layer.name: layer.in_features * layer.out_features for layer in plan.layers if ".layers." in layer.name}
    int4 = sum(v for k, v in block.items() if plan.layer(k).bits == 4)
    assert 0.6 <= int4 / sum(block.values()) <= 0.75 and p["int8"] > 0  # at least `ratio` at 4 bits, as NNCF's ratio
    assert sorted(plan.transforms["mixed_precision"]["int8_layers"]) == sorted(k for k in block if plan.layer(k).bits == 8)


# --- MatMulNBits against ONNX Runtime's kernel ------------------------------------------------------------------------

@pytest.mark.parametrize("bits,group,k", [(4, 32, 96), (4, 64, 64), (8, 32, 64), (4, -1, 80)])
def test_matmulnbits_packing_is_what_onnxruntime_computes(bits, group, k):
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    torch.manual_seed(0)
    n = 24
    w = torch.randn(n, k)
    grid = Grid(bits, group, False)
    s, z = fit(w, grid)
    q = codes(w, s, z, grid)
    bs = block_size(group, k)
    b, zp = pack(q.numpy(), z.numpy(), bits, bs)
    node = helper.make_node("MatMulNBits", ["a", "b", "s", "z"], ["y"], domain="com.microsoft", K=k, N=n, bits=bits,
                            block_size=bs, accuracy_level=0)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("a", TensorProto.FLOAT, [None, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(b, "b"), numpy_helper.from_array(s.numpy().reshape(-1), "s"),
                               numpy_helper.from_array(zp.reshape(-1), "z")])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)])
    x = np.random.default_rng(0).standard_normal((5, k)).astype(np.float32)
    got = ort.InferenceSession(m.SerializeToString()).run(None, {"a": x})[0]
    want = x @ dequantize(q, s, z, grid).numpy().T
    assert np.abs(got - want).max() < 1e-4


def test_builder_node_names_map_to_torch_modules():
    assert modules_of("/model/layers.3/attn/qkv_proj/MatMul") == [f"model.layers.3.self_attn.{p}_proj" for p in "qkv"]
    assert modules_of("/model/layers.0/mlp/down_proj/MatMul") == ["model.layers.0.mlp.down_proj"]
    assert modules_of("/lm_head/MatMul") == ["lm_head"] and modules_of("/model/embed_tokens/Gather") is None


# --- the OpenVINO decoder IR against torch ------------------------------------------------------------------------------

EXACT = {"INFERENCE_PRECISION_HINT": "f32", "KV_CACHE_PRECISION": "f32", "DYNAMIC_QUANTIZATION_GROUP_SIZE": "0"}


def _ov_logits_two_steps(ov_model, ids: torch.Tensor, split: int) -> np.ndarray:
    """Logits of ``ids`` from the stateful IR run as a prompt of ``split`` tokens, then the rest through the KV cache."""
    import openvino as ov

    req = ov.Core().compile_model(ov_model, "CPU", EXACT).create_infer_request()
    req.reset_state()
    outs, seen = [], 0
    for part in (ids[:, :split], ids[:, split:]):
        n = part.shape[1]
        outs.append(req.infer({"input_ids": part.numpy(), "attention_mask": np.ones((1, seen + n), np.int64),
                               "position_ids": np.arange(seen, seen + n, dtype=np.int64)[None],
                               "beam_idx": np.zeros(1, np.int32)})["logits"].copy())
        seen += n
    return np.concatenate(outs, 1)


def _tiny_qwen2():
    """A Qwen2 decoder: q/k/v with biases, lm_head not tied to the embeddings."""
    import transformers

    torch.manual_seed(0)
    cfg = transformers.Qwen2Config(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                                   tie_word_embeddings=False)
    model = transformers.Qwen2ForCausalLM(cfg).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Linear) and m.bias is not None:
                m.bias.normal_(0, 0.5)  # non-zero, so a dropped bias shows
    return model


@pytest.mark.parametrize("make", [lambda: _tiny(vocab=512), _tiny_qwen2], ids=["llama-tied", "qwen2-bias-untied"])
def test_openvino_decoder_ir_is_the_torch_model_including_its_kv_cache(make):
    from compressor.io.export_openvino_lm import decoder_graph

    model = make()  # 4 query heads over 2 KV heads: the grouped-query broadcast is exercised
    ids = torch.randint(0, 512, (1, 21))
    graph = decoder_graph(model)
    assert len(graph.get_sinks()) == 4 and {i.any_name for i in graph.inputs} == {"input_ids", "attention_mask", "position_ids",
                                                                                   "beam_idx"}
    want = model(ids).logits.detach().numpy()
    assert np.abs(_ov_logits_two_steps(graph, ids, 13) - want).max() < 1e-4


@pytest.mark.parametrize("bits,group,sym", [(4, 64, False), (8, -1, True), (4, 128, True)])  # 128 > hidden 64: a padded group
def test_openvino_compressed_weights_compute_the_plans_weights(bits, group, sym):
    from compressor.io.export_openvino_lm import decoder_graph
    from compressor.quantization.weight_only.openvino_weights import compressed_weights

    model = _tiny(vocab=512)
    plan = quantize_model(model, [], WeightOnlySettings(bits=bits, group_size=group, symmetric=sym, awq=False, gptq=False,
                                                        scale_estimation=False))
    counts: dict[str, int] = {}
    graph = decoder_graph(model, compressed_weights(plan, counts))
    assert counts == {f"int{bits}": 14, "int8": 1} if bits == 4 else {"int8": 15}  # 14 block linears, one tied embedding
    kinds = {str(op.get_output_element_type(0)) for op in graph.get_ops() if op.get_type_name() == "Constant"
             and op.get_friendly_name().endswith(".weight")}
    assert kinds <= {"<Type: 'uint4_t'>", "<Type: 'uint8_t'>"}  # no float weight left in the IR
    ids = torch.randint(0, 512, (1, 19))
    want = model(ids).logits.detach().numpy()  # the model holds the plan's dequantized weights
    assert np.abs(_ov_logits_two_steps(graph, ids, 11) - want).max() < 1e-3


def test_openvino_export_refuses_an_architecture_it_does_not_write():
    import transformers

    from compressor.core.errors import InputError
    from compressor.io.export_openvino_lm import check_architecture

    with pytest.raises(InputError, match="gpt2.*ort-cpu-int4"):
        check_architecture(transformers.GPT2Config())


# --- perplexity and text --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n,window,stride", [(1000, 128, 128), (1000, 128, 64), (100, 128, 128), (257, 64, 48)])
def test_sliding_windows_score_each_token_at_most_once_with_context(n, window, stride):
    scored = []
    for begin, end, first in spans(n, window, stride):
        assert begin <= first - 1 and end - begin <= window
        scored += range(first, end)
    assert scored == sorted(set(scored))
    if stride < window:  # overlapping windows: every token after the first
        assert scored == list(range(1, n))
    else:  # disjoint windows: all but each window's first token
        assert scored == [t for t in range(1, n) if t % window]


def test_text_sources_folder_jsonl_and_callable(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("first document")
    (tmp_path / "docs" / "b.txt").write_text("second")
    assert load_text(str(tmp_path / "docs"), "--eval").documents == ["first document", "second"]
    (tmp_path / "t.jsonl").write_text('{"text": "one"}\n\n{"text": "two"}\n')
    assert load_text(str(tmp_path / "t.jsonl"), "--eval").documents == ["one", "two"]
    (tmp_path / "bad.jsonl").write_text('{"txt": "one"}\n')
    with pytest.raises(Exception, match="line 1 has no string field 'text'"):
        load_text(str(tmp_path / "bad.jsonl"), "--calib")
    ev, cal = load_text(EVAL, "--eval").documents, load_text(CALIB, "--calib").documents
    assert len(ev) >= 20 and len(cal) >= 80 and not set(ev) & set(cal)  # the fixed split never overlaps
    assert "'''" not in ev[0] and "[[" not in ev[0]  # wiki markup cleaned by the example callable


def test_calibration_windows_refuse_text_shorter_than_one_window():
    with pytest.raises(Exception, match="shorter than one window of 512"):
        calibration_windows(torch.arange(100), 4, 512, "--calib")
    w = calibration_windows(torch.arange(1000), 4, 100, "--calib")
    assert len(w) == 4 and all(x.shape == (1, 100) for x in w) and w[-1][0, -1] == 999


def test_token_stream_joins_documents_with_end_of_sequence(tiny_lm_folder):
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(tiny_lm_folder)
    s = token_stream(load_text(EVAL, "--eval"), tok, 300)
    assert s.numel() == 300 and s.dtype == torch.long


# --- the CLI flow ---------------------------------------------------------------------------------------------------

def test_compress_int4_bundle_verifies_and_a_changed_token_is_caught(tiny_lm_folder, tmp_path):
    out = tmp_path / "int4"
    res = cli("compress", str(tiny_lm_folder), "--task", "text-generation", "--target", "ort-cpu-int4", "--eval", EVAL,
              "--calib", CALIB, *SMALL, "--output", str(out), "--max-perplexity-increase", "50")
    assert res.returncode == 0, res.stderr
    m = read_manifest(out)
    assert m["task"] == "text-generation" and m["precision"] == "int4-wo" and m["gate"]["passed"]
    assert m["artifact"]["build"]["matmulnbits"] == 11 and m["artifact"]["build"]["gather_block_quantized"] == 1
    assert m["artifact_check"]["agreement_with_plan"] > 0.95  # the runtime computes the plan's weights
    assert m["metrics"]["tokens"] == 381 and m["compression"]["peak_rss_mb"] > 0
    assert (out / "model" / "genai_config.json").is_file() and (out / "REPORT.md").read_text().count("| model.layers.") == 14
    ok = cli("verify", str(out))
    assert ok.returncode == 0 and "every greedy token the same" in ok.stdout
    bench = cli("bench", str(out), "--json", str(tmp_path / "bench.json"))
    assert bench.returncode == 0, bench.stderr
    b = json.loads((tmp_path / "bench.json").read_text())
    assert b["decode_tokens_per_s"] > 0 and b["ttft_ms"]["128"] > 0 and b["roofline"]["bandwidth_gb_per_s"] > 0
    gens = out / "reference" / "generations.json"
    data = json.loads(gens.read_text())
    data["prompts"][0]["tokens"][1] += 1
    gens.write_text(json.dumps(data))
    bad = cli("verify", str(out))
    one_line_error(bad, "failed verification")  # the sha256 catches the edit before any token is compared


def test_openvino_int4_bundle_runs_in_llmpipeline_verifies_and_benches(tiny_lm_folder, tmp_path):
    out = tmp_path / "ov-int4"
    res = cli("compress", str(tiny_lm_folder), "--task", "text-generation", "--target", "openvino-cpu-int4", "--eval", EVAL,
              "--calib", CALIB, *SMALL, "--output", str(out), "--max-perplexity-increase", "50")
    assert res.returncode == 0, res.stderr
    m = read_manifest(out)
    assert m["target"]["runtime"] == "openvino-genai" and m["artifact"]["build"]["weights"] == {"int4": 14, "int8": 1}
    rt = m["artifact_check"]["runtime"]
    assert rt["inference_precision_hint"] == "float32" and rt["kv_cache_precision"] and "dynamic_quantization_group_size" in rt
    assert m["artifact_check"]["agreement_with_plan"] > 0.95
    assert (out / "model" / "openvino_model.xml").is_file() and (out / "model" / "openvino_tokenizer.xml").is_file()
    ok = cli("verify", str(out))
    assert ok.returncode == 0 and "every greedy token the same" in ok.stdout
    bench = cli("bench", str(out), "--json", str(tmp_path / "bench.json"))
    assert bench.returncode == 0, bench.stderr
    b = json.loads((tmp_path / "bench.json").read_text())
    assert b["decode_tokens_per_s"] > 0 and b["ttft_ms"]["512"] > 0 and b["runtime"]["runtime"] == "openvino-genai"


def test_auto_precision_keeps_int8_layers_until_the_budget_is_met(tiny_lm_folder, tmp_path):
    out = tmp_path / "auto"
    res = cli("compress", str(tiny_lm_folder), "--task", "text-generation", "--target", "ort-cpu-int4", "--eval", EVAL,
              "--calib", CALIB, *SMALL, "--output", str(out), "--auto-precision", "--ratio", "0.6", "--min-agreement", "0.9")
    assert res.returncode == 0, res.stderr
    q = read_manifest(out)["quantization"]
    steps = q["transforms"]["auto_precision"]["steps"]
    assert steps[0]["ratio"] == 0.6 and steps[-1]["passed"] and not any(s["passed"] for s in steps[:-1])  # --ratio caps the start
    assert q["bits"]["int8"] > 1 and sorted(q["transforms"]["mixed_precision"]["int8_layers"])  # block layers kept INT8
    one_line_error(cli("compress", str(tiny_lm_folder), "--task", "text-generation", "--target", "ort-cpu-int4", "--eval", EVAL,
                       "--calib", CALIB, *SMALL, "--output", str(tmp_path / "x"), "--auto-precision"), "needs a budget")


def test_gate_failure_writes_nothing_and_bad_inputs_get_one_line(tiny_lm_folder, tmp_path):
    out = tmp_path / "never"
    base = ["compress", str(tiny_lm_folder), "--task", "text-generation", "--eval", EVAL, *SMALL, "--output", str(out)]
    one_line_error(cli(*base, "--target", "ort-cpu-int4", "--no-awq", "--no-gptq", "--no-scale-estimation",
                       "--min-agreement", "0.9999"), "failed its gate", "top-1 agreement")
    assert not out.exists() and not list(tmp_path.glob(".never*"))
    one_line_error(cli(*base, "--target", "ort-cpu-int4"), "--calib")  # data-aware passes need calibration text
    one_line_error(cli(*base[:-2], "--output", str(out), "--target", "ort-cpu-int8-wo", "--calib", EVAL), "same text")
    no_tok = tmp_path / "no-tokenizer"
    no_tok.mkdir()
    for f in ("config.json", "model.safetensors"):
        (no_tok / f).write_bytes((tiny_lm_folder / f).read_bytes())
    one_line_error(cli("compress", str(no_tok), "--task", "text-generation", "--eval", EVAL, "--target", "ort-cpu-fp32-lm",
                       "--output", str(out)), "cannot load the tokenizer", str(no_tok))
    bad_gguf = tmp_path / "broken.gguf"
    bad_gguf.write_bytes(b"GGUF" + b"\0" * 64)
    one_line_error(cli("compress", str(bad_gguf), "--task", "text-generation", "--eval", EVAL, "--target", "ort-cpu-fp32-lm",
                       "--output", str(out)), "broken.gguf")
    short = tmp_path / "short.txt"
    short.write_text("Only a sentence or two of text. Far shorter than one window.")
    one_line_error(cli("compress", str(tiny_lm_folder), "--task", "text-generation", "--eval", str(short), "--target",
                       "ort-cpu-fp32-lm", "--output", str(out)), "shorter than one perplexity window")
    assert not out.exists()


def test_text_generation_on_a_vision_checkpoint_and_a_perplexity_budget_on_a_vision_model(fashion_ckpt, fashion_small, tmp_path):
    out = tmp_path / "x"
    one_line_error(cli("compress", str(fashion_ckpt), "--task", "text-generation", "--eval", EVAL, "--target", "ort-cpu-int4",
                       "--output", str(out)), "not a language model")
    from tests.conftest import fashion_args

    one_line_error(cli(*fashion_args(fashion_ckpt, fashion_small, out), "--max-perplexity-increase", "5"),
                   "--max-perplexity-increase", "--task text-generation")
    one_line_error(cli("analyze", str(fashion_ckpt), "--task", "text-generation"), "works with `compressor compress`")
    assert not out.exists()


@pytest.mark.slow
def test_real_smollm2_gguf_loads_scores_and_answers(tmp_path):
    from backends.torch_eager import TorchLmRunner
    from compressor.io.causal_lm import load_causal_lm

    lm = load_causal_lm(_gguf())
    assert lm.source["parameters"] == pytest.approx(134.5e6, rel=0.01) and lm.config.num_hidden_layers == 30
    assert lm.source["tied_embeddings"] and "dequantized" in lm.source["gguf_note"]
    stream = token_stream(load_text(EVAL, "--eval"), lm.tokenizer, 1024)
    fid = evaluate(torch_logits(lm.model), stream, 512, 512)
    assert 5 < fid.perplexity < 60  # a real LM on real text (FP32 ≈ 20 on 16 k tokens)
    ids = lm.tokenizer.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                           add_generation_prompt=True, return_dict=True)["input_ids"]
    out = TorchLmRunner(lm.model, lm.tokenizer.eos_token_id).generate(list(ids), 12)
    assert "Paris" in lm.tokenizer.decode(out.tokens)
    from compressor.io.export_lm import save_hf_folder

    folder = save_hf_folder(lm.model, lm.tokenizer, tmp_path / "hf")  # the dequantized GGUF saves as a float model
    conf = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in conf and conf["architectures"] == ["LlamaForCausalLM"]
