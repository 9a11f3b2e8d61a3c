"""The bundled real examples: EfficientNet-Lite0 with its ImageNet weights on real ImageNet images."""

import compressor
from compressor.zoo.efficientnet_lite import PREPROCESSING, efficientnet_lite0
from compressor.zoo.paths import efficientnet_lite0_weights, imagenet_samples

from .conftest import ROOT, read_manifest


def test_efficientnet_lite0_reproduces_its_accuracy_on_onnx_runtime(tmp_path):
    r = compressor.compress(
        efficientnet_lite0_weights(), recipe=ROOT / "examples" / "efficientnet_lite0.yaml", eval=imagenet_samples(),
        eval_labels=ROOT / "examples" / "imagenet20_labels.txt", output=tmp_path / "effnet", benchmark=False,
    )
    f = r.fidelity
    assert f["samples"] == 20
    assert f["reference_accuracy"] >= 0.85  # published accuracy reproduced (TF padding + scaling)
    assert f["top1_agreement"] == 1.0 and f["accuracy"] == f["reference_accuracy"]
    m = read_manifest(r.bundle)
    assert m["preprocessing"]["interpolation"] == "bicubic" and m["preprocessing"]["resize"] == 256
    # explicit pads and BatchNorms are gone from the exported graph
    assert m["artifact"]["build"]["batchnorm_remaining"] == 0 and "Pad" not in m["artifact"]["build"]["ops"]
    assert compressor.verify(r.bundle)["passed"]


def test_architecture_matches_the_shipped_weights():
    import torch

    model = efficientnet_lite0()
    state = torch.load(efficientnet_lite0_weights(), weights_only=True)
    assert set(model.state_dict()) == set(state)
    assert PREPROCESSING["crop"] == 224
