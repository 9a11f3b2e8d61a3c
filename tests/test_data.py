"""Data sources: image folders (sub-folder labels, labels file), arrays, callables, synthetic."""

import numpy as np
import pytest
from PIL import Image

from compressor.core.errors import DataError
from compressor.core.specs import InputSpec, Preprocessing
from compressor.data.sources import load_data, synthetic_data

GREY = [InputSpec.parse("batch,1,28,28")]
PRE = Preprocessing(scale=1 / 255, mean=[0.2860], std=[0.3530])


@pytest.fixture(scope="module")
def fashion_images(tmp_path_factory, fashion_subset):
    """A real image folder: 30 Fashion-MNIST test images as PNGs in class sub-folders."""
    root = tmp_path_factory.mktemp("images")
    with np.load(fashion_subset) as z:
        x, y = z["x"][:30], z["y"][:30]
    for i, (img, label) in enumerate(zip(x, y)):
        (root / f"class{label}").mkdir(exist_ok=True)
        Image.fromarray(img[0]).save(root / f"class{label}" / f"{i:03d}.png")
    return root, x, y


def test_image_folder_with_subfolder_labels_matches_the_arrays(fashion_images):
    root, x, y = fashion_images
    ds = load_data(str(root), GREY, PRE)
    assert len(ds) == 30 and ds.labels is not None and ds.inputs[0].shape == (30, 1, 28, 28)
    # same pixels, same normalisation as the array path (order: sorted by class folder, then file)
    arr = load_data_from_arrays(x, y)
    order = sorted(range(30), key=lambda i: (f"class{y[i]}", f"{i:03d}.png"))
    assert np.allclose(ds.inputs[0], arr[order], atol=1e-6)


def load_data_from_arrays(x, y):
    return PRE.normalise(x, channel_axis=1)


def test_labels_file_selects_and_labels(fashion_images, tmp_path):
    root, x, y = fashion_images
    files = sorted(p.relative_to(root) for p in root.rglob("*.png"))[:5]
    (tmp_path / "labels.txt").write_text("# file label\n" + "\n".join(f"{f} {int(str(f.parent)[5:])}" for f in files))
    ds = load_data(str(root), GREY, PRE, labels_file=str(tmp_path / "labels.txt"))
    assert len(ds) == 5 and list(ds.labels) == [int(str(f.parent)[5:]) for f in files]
    (tmp_path / "bad.txt").write_text("nofile.png 3\n")
    with pytest.raises(DataError, match="does not exist"):
        load_data(str(root), GREY, PRE, labels_file=str(tmp_path / "bad.txt"))


def test_resize_and_crop_and_wrong_size(fashion_images):
    root, _, _ = fashion_images
    rgb = [InputSpec.parse("1,3,20,20")]
    ds = load_data(str(root), rgb, Preprocessing(resize=24, crop=20, interpolation="bicubic"))
    assert ds.inputs[0].shape == (30, 3, 20, 20)
    with pytest.raises(DataError, match="set --resize/--crop"):
        load_data(str(root), rgb, Preprocessing(resize=24, crop=22))


def test_npz_uint8_is_normalised_and_labelled(fashion_subset):
    ds = load_data(str(fashion_subset), GREY, PRE, max_samples=100)
    assert len(ds) == 100 and ds.labels.dtype == np.int64
    assert ds.inputs[0].dtype == np.float32 and abs(float(ds.inputs[0].mean())) < 0.5


def test_npy_and_labels_npy(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((4, 1, 28, 28), np.float32))
    np.save(tmp_path / "y.npy", np.arange(4))
    ds = load_data(str(tmp_path / "x.npy"), GREY, labels_file=str(tmp_path / "y.npy"))
    assert list(ds.labels) == [0, 1, 2, 3]


def test_shape_mismatch_is_a_clear_error(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 3, 28, 28), np.float32))
    with pytest.raises(DataError, match=r"eval data .* has shape \(4, 3, 28, 28\) but input 'input' expects"):
        load_data(str(tmp_path / "d.npz"), GREY)


def test_label_count_mismatch(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 1, 28, 28), np.float32), y=np.arange(3))
    with pytest.raises(DataError, match="4 samples but 3 labels"):
        load_data(str(tmp_path / "d.npz"), GREY)


def test_callable_source():
    ds = load_data("tests.models_for_tests:fashion_batches", GREY)
    assert len(ds) == 64 and ds.labels is not None


def test_missing_and_unsupported(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_data(str(tmp_path / "nope.npz"), GREY)
    (tmp_path / "d.csv").write_text("1,2")
    with pytest.raises(DataError, match="not a folder"):
        load_data(str(tmp_path / "d.csv"), GREY)
    with pytest.raises(DataError, match="cannot load"):
        load_data("tests.models_for_tests:nothing_here", GREY)


def test_synthetic_is_marked():
    ds = synthetic_data(GREY, 8)
    assert ds.synthetic and len(ds) == 8 and ds.to_dict()["synthetic"] is True


def test_dtype_that_cannot_mean_the_input_is_refused(tmp_path):
    ids = [InputSpec.parse("batch,12", name="ids", dtype="int64")]
    np.savez(tmp_path / "f.npz", x=np.random.default_rng(0).standard_normal((4, 12)).astype(np.float32))
    with pytest.raises(DataError, match="float32 but input 'ids' expects int64"):
        load_data(str(tmp_path / "f.npz"), ids, what="calibration data")
    np.savez(tmp_path / "i.npz", x=np.arange(48).reshape(4, 12).astype(np.int32))
    assert load_data(str(tmp_path / "i.npz"), ids).inputs[0].dtype == np.int64
