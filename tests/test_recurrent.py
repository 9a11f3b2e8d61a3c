"""Dynamic INT8 of LSTMs on ONNX Runtime (DynamicQuantizeLSTM), with the real resemblyzer speaker encoder's weights and real
speech features: the realised graph runs INT8 LSTM kernels and stays close to float; a layer reading a heavy-tailed model
input stays float, with the measured reason."""

import numpy as np
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from compressor.quantization.ptq import dynamic_plan, keep_heavy_tailed_inputs_float, underflow
from compressor.quantization.qdq import realize_dynamic
from compressor.quantization.settings import QuantizationSettings

from .conftest import ROOT

FEATURES = ROOT / "examples" / "speech" / "features.npz"


def _encoder_state() -> dict:
    from compressor.zoo.speaker_encoder import weights_path

    return torch.load(weights_path(), map_location="cpu", weights_only=True)["model_state"]


def _onnx_lstm(state: dict, layer: int, input_size: int):
    """One layer of the encoder as an ONNX LSTM (gates reordered from torch's i,f,g,o to ONNX's i,o,f,c), sequence-first."""
    def reorder(w):
        i, f, g, o = np.split(w, 4)
        return np.concatenate([i, o, f, g])

    w = reorder(state[f"lstm.weight_ih_l{layer}"].numpy())[None]
    r = reorder(state[f"lstm.weight_hh_l{layer}"].numpy())[None]
    b = np.concatenate([reorder(state[f"lstm.bias_ih_l{layer}"].numpy()), reorder(state[f"lstm.bias_hh_l{layer}"].numpy())])[None]
    node = helper.make_node("LSTM", ["x", "W", "R", "B"], ["y", "y_h", "y_c"], name="lstm_node", hidden_size=256, direction="forward")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["seq", "batch", input_size])],
                              [helper.make_tensor_value_info("y_h", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(a.astype(np.float32), n) for a, n in ((w, "W"), (r, "R"), (b, "B"))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.graph.output.pop()
    model.graph.output.extend([helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    return model


def _run(model, x):
    import onnxruntime as ort

    s = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(None, {"x": x})[0]


def _features(n: int = 16) -> np.ndarray:
    with np.load(FEATURES) as z:
        return z["x"][:n].astype(np.float32)


def test_lstm_runs_dynamic_int8_close_to_float():
    state = _encoder_state()
    feats = _features()
    with torch.no_grad():  # layer 1's real input: layer 0's hidden states on real speech
        lstm0 = torch.nn.LSTM(40, 256, 1, batch_first=True)
        lstm0.load_state_dict({k[len("lstm."):]: v for k, v in state.items() if k.startswith("lstm.") and k.endswith("_l0")})
        x = lstm0(torch.from_numpy(feats))[0].transpose(0, 1).contiguous().numpy()
    model = _onnx_lstm(state, 1, 256)
    plan = dynamic_plan(model, None, QuantizationSettings())
    assert [(l.op_type, l.precision) for l in plan.layers] == [("LSTM", "int8")]
    q = realize_dynamic(model, plan)
    assert [n.op_type for n in q.graph.node] == ["DynamicQuantizeLSTM"] and any(o.domain == "com.microsoft" for o in q.opset_import)
    inits = {i.name: numpy_helper.to_array(i) for i in q.graph.initializer}
    w = next(v for k, v in inits.items() if k.endswith("_W_quantized"))
    assert w.dtype == np.int8 and w.shape == (1, 256, 1024)  # stored transposed: [directions, input, 4 * hidden]
    ref, got = _run(model, x), _run(q, x)
    last_ref, last_got = ref[-1, 0], got[-1, 0]  # the final hidden state of each utterance
    cos = (last_ref * last_got).sum(-1) / np.linalg.norm(last_ref, axis=-1) / np.linalg.norm(last_got, axis=-1)
    assert cos.min() > 0.99, cos


def test_heavy_tailed_model_input_keeps_its_first_layer_float():
    state = _encoder_state()
    feats = _features()
    assert underflow(feats) > 0.5  # mel power: a few loud bins set the per-tensor scale
    assert underflow(np.random.default_rng(0).normal(size=(4, 160, 40)).astype(np.float32)) < 0.05
    model = _onnx_lstm(state, 0, 40)
    plan = dynamic_plan(model, None, QuantizationSettings())
    keep_heavy_tailed_inputs_float(model, plan, [{"x": feats.transpose(1, 0, 2)}])
    layer = plan.layers[0]
    assert layer.precision == "float" and "rounds" in layer.reason and "model input 'x'" in layer.reason
    assert [n.op_type for n in realize_dynamic(model, plan).graph.node] == ["LSTM"]


@pytest.mark.parametrize("key, needle", [(None, "model_state"), ("model_state", None), ("nope", "has no 'nope'")])
def test_training_checkpoint_state_dict_is_found(tmp_path, key, needle):
    from compressor.core.errors import CheckpointError
    from compressor.core.specs import InputSpec
    from compressor.io.loading import load_model
    from compressor.zoo.speaker_encoder import weights_path

    spec = [InputSpec.parse("1,160,40", name="mels")]
    if key == "nope":
        with pytest.raises(CheckpointError, match=needle):
            load_model(weights_path(), spec, "compressor.zoo.speaker_encoder:speaker_encoder", checkpoint_key=key)
        return
    h = load_model(weights_path(), spec, "compressor.zoo.speaker_encoder:speaker_encoder", checkpoint_key=key)
    assert h.source["checkpoint_key"] == "model_state"
    with torch.no_grad():
        e = h.module(torch.from_numpy(_features(4)))
    assert torch.allclose(e.norm(dim=1), torch.ones(4), atol=1e-5)
