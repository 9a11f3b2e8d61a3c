"""Every checkpoint format, and every way loading one can go wrong."""

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from compressor.core.errors import CheckpointError, InputError, UntrustedCheckpointError
from compressor.core.specs import InputSpec
from compressor.io.loading import load_model

from .conftest import FASHION_ARCH

SPEC = [InputSpec.parse("1,1,28,28")]


def _fashion():
    from compressor.zoo.fashion_cnn import fashion_cnn

    torch.manual_seed(0)
    return fashion_cnn().eval()


def test_safetensors_state_dict(fashion_ckpt):
    h = load_model(fashion_ckpt, SPEC, FASHION_ARCH)
    assert h.source["kind"] == "state_dict" and h.source["format"] == "safetensors"
    assert h.output_names == ["output"] and len(h.source["sha256"]) == 64


def test_torchvision_arch_with_kwargs(tmp_path):
    m = torchvision.models.resnet18(num_classes=7)
    torch.save(m.state_dict(), tmp_path / "r.pth")
    h = load_model(tmp_path / "r.pth", [InputSpec.parse("1,3,64,64")], "torchvision:resnet18", '{"num_classes": 7}')
    assert h.probe() == [(1, 7)]


def test_wrapped_and_dataparallel_state_dict(tmp_path):
    m = _fashion()
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in m.state_dict().items()}}, tmp_path / "w.pt")
    h = load_model(tmp_path / "w.pt", SPEC, FASHION_ARCH)
    x = torch.randn(1, 1, 28, 28)
    assert torch.allclose(h.module(x), m(x))


def test_state_dict_needs_arch(fashion_ckpt):
    with pytest.raises(CheckpointError, match="--arch"):
        load_model(fashion_ckpt, SPEC, None)


def test_mismatched_state_dict_names_keys_and_shapes(tmp_path):
    sd = _fashion().state_dict()
    sd.pop("classifier.1.bias")
    sd["extra.weight"] = torch.zeros(1)
    sd["classifier.1.weight"] = torch.zeros(3, 128)
    save_file(sd, str(tmp_path / "bad.safetensors"))
    with pytest.raises(CheckpointError) as e:
        load_model(tmp_path / "bad.safetensors", SPEC, FASHION_ARCH)
    msg = str(e.value)
    assert "classifier.1.bias" in msg and "extra.weight" in msg and "(3, 128) vs (10, 128)" in msg


def test_pickled_module_needs_explicit_trust(tmp_path):
    torch.save(_fashion(), tmp_path / "whole.pt")
    with pytest.raises(UntrustedCheckpointError, match="--trust-checkpoint"):
        load_model(tmp_path / "whole.pt", SPEC)
    h = load_model(tmp_path / "whole.pt", SPEC, trust_checkpoint=True)
    assert h.source["kind"] == "module"


def test_torchscript_archive(tmp_path):
    m = _fashion()
    torch.jit.trace(m, torch.randn(1, 1, 28, 28)).save(str(tmp_path / "m.ts"))
    h = load_model(tmp_path / "m.ts", SPEC)
    assert h.source["kind"] == "torchscript"
    x = torch.randn(1, 1, 28, 28)
    assert torch.allclose(h.module(x), m(x), atol=1e-5)


def test_exported_program_infers_inputs(tmp_path):
    m = _fashion()
    torch.export.save(torch.export.export(m, (torch.randn(1, 1, 28, 28),)), str(tmp_path / "m.pt2"))
    h = load_model(tmp_path / "m.pt2", None)
    assert h.source["kind"] == "exported_program"
    assert h.inputs[0].shape() == (1, 1, 28, 28)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", None])
def test_missing_empty_or_corrupt(tmp_path, fashion_ckpt, content):
    p = tmp_path / "bad.pth"
    if content is not None:
        p.write_bytes(content)
    with pytest.raises(CheckpointError):
        load_model(p, SPEC, FASHION_ARCH)


def test_truncated_checkpoint(tmp_path):
    torch.save(_fashion().state_dict(), tmp_path / "ok.pth")
    data = (tmp_path / "ok.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_model(tmp_path / "cut.pth", SPEC, FASHION_ARCH)
    (tmp_path / "cut.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":")
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_model(tmp_path / "cut.safetensors", SPEC, FASHION_ARCH)


def test_input_shape_the_model_rejects(fashion_ckpt):
    with pytest.raises(InputError, match="rejects input"):
        load_model(fashion_ckpt, [InputSpec.parse("1,3,28,28")], FASHION_ARCH)


def test_bad_arch_references(fashion_ckpt):
    with pytest.raises(InputError, match="did you mean resnet18"):
        load_model(fashion_ckpt, SPEC, "torchvision:resnet81")
    with pytest.raises(InputError, match="cannot import"):
        load_model(fashion_ckpt, SPEC, "no_such_pkg.mod:fn")
    with pytest.raises(InputError, match="has no .nothing."):
        load_model(fashion_ckpt, SPEC, "compressor.zoo.fashion_cnn:nothing")
    with pytest.raises(InputError, match="JSON"):
        load_model(fashion_ckpt, SPEC, FASHION_ARCH, "{num_classes: 10")


def test_multi_input_user_model(tmp_path):
    from .models_for_tests import two_inputs

    torch.save(two_inputs().state_dict(), tmp_path / "t.pth")
    specs = [InputSpec.parse("batch,12", name="ids", dtype="int64"), InputSpec.parse("batch,8", name="feats")]
    h = load_model(tmp_path / "t.pth", specs, "tests.models_for_tests:two_inputs")
    assert h.output_names == ["output_0", "output_1"]
