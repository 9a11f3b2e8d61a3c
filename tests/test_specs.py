import pytest
from pydantic import ValidationError

from compressor.core.errors import DataError, InputError, TargetError
from compressor.core.registry import catalogue, get_target
from compressor.core.specs import InputSpec, Preprocessing


def test_static_shape():
    s = InputSpec.parse("1,3,224,224")
    assert s.shape() == (1, 3, 224, 224) and not s.dynamic
    assert s.to_dict()["shape"] == [1, 3, 224, 224]


def test_named_dynamic_dims_with_and_without_range():
    s = InputSpec.parse("batch=1:32,3,h,224")
    assert s.batch_dynamic and s.dims[0].max == 32
    assert s.dims[2].name == "h" and (s.dims[2].min, s.dims[2].max) == (1, 64)
    assert s.shape(batch=8, sizes={"h": 100}) == (8, 3, 100, 224)
    assert s.shape(batch=99)[0] == 32  # clamped to the profile
    assert s.export_shape()[0] == 2  # exporters specialise size-1 dims
    assert s.to_dict()["dynamic_axes"]["0"] == {"name": "batch", "min": 1, "max": 32}


@pytest.mark.parametrize("bad", ["", "1,,3", "1,3,x y", "batch=0:4,3", "batch=5:2,3", "b,b", "0,3"])
def test_bad_shapes_are_rejected_with_a_hint(bad):
    with pytest.raises(InputError):
        InputSpec.parse(bad)


def test_unknown_dtype():
    with pytest.raises(InputError, match="unknown input dtype"):
        InputSpec.parse("1,3", dtype="float128")


def test_check_names_the_mismatch():
    s = InputSpec.parse("batch,1,28,28")
    s.check((100, 1, 28, 28), "data")
    with pytest.raises(DataError, match=r"\(100, 3, 28, 28\).*batch=1:64,1,28,28"):
        s.check((100, 3, 28, 28), "data")


def test_preprocessing_validation():
    with pytest.raises(ValidationError, match="interpolation"):
        Preprocessing(interpolation="cubic-ish")
    with pytest.raises(ValidationError, match="std must not contain 0"):
        Preprocessing(std=[0.0])
    import numpy as np

    p = Preprocessing(scale=1.0, mean=[127.0], std=[128.0])
    out = p.normalise(np.full((2, 3, 4, 4), 255, dtype=np.uint8), channel_axis=1)
    assert np.allclose(out, 1.0)


def test_target_catalogue():
    assert get_target("ort-cpu-fp32").backend == "onnxruntime"
    with pytest.raises(TargetError, match="known targets are .*ort-cpu-fp32"):
        get_target("ort-cpu-fp64")
    assert get_target("tensorrt-gpu-int8").qdq_layout == "tensorrt" and get_target("tensorrt-gpu-fp16").backend == "tensorrt"
    assert {"torch-cpu-fp32", "ort-cpu-fp32", "openvino-cpu-int8", "executorch-xnnpack-int8"} <= set(catalogue())
