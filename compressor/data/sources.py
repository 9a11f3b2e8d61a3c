"""Calibration and evaluation data: image folders, ``.npy``/``.npz`` arrays, user callables, or
synthetic data when (and only when) asked for.

Everything is read into a :class:`DataSource` of numpy arrays with a leading sample axis, checked
against the input specs once, so later stages never meet a surprise shape.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compressor.core.errors import DataError
from compressor.core.model import numpy_dtype
from compressor.core.refs import is_ref, resolve
from compressor.core.specs import InputSpec, Preprocessing

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
_INPUT_KEYS = ("x", "inputs", "input", "data", "images", "arr_0")
_LABEL_KEYS = ("y", "labels", "label", "targets")


@dataclass
class DataSource:
    inputs: list[np.ndarray]  # one array per model input, leading sample axis
    labels: np.ndarray | None
    description: str
    synthetic: bool = False

    def __len__(self) -> int:
        return int(self.inputs[0].shape[0]) if self.inputs else 0

    def batches(self, batch_size: int) -> Iterator[tuple[list[np.ndarray], np.ndarray | None]]:
        for i in range(0, len(self), batch_size):
            labels = self.labels[i : i + batch_size] if self.labels is not None else None
            yield [a[i : i + batch_size] for a in self.inputs], labels

    def take(self, n: int) -> DataSource:
        return DataSource([a[:n] for a in self.inputs], None if self.labels is None else self.labels[:n], self.description, self.synthetic)

    def to_dict(self) -> dict:
        return {"description": self.description, "samples": len(self), "labels": self.labels is not None, "synthetic": self.synthetic}


def load_data(
    ref: str,
    inputs: Sequence[InputSpec],
    preprocessing: Preprocessing | None = None,
    labels_file: str | None = None,
    max_samples: int | None = None,
    what: str = "eval data",
) -> DataSource:
    """Read ``ref`` (folder, .npy/.npz file, or package.module:function) into a checked DataSource."""
    path = Path(ref)
    if path.is_dir():
        source = _image_folder(path, inputs, preprocessing or Preprocessing(), labels_file, max_samples, what)
    elif path.suffix in (".npy", ".npz"):
        if not path.is_file():
            raise DataError(f"{what} '{ref}' not found: check the path")
        source = _arrays(path, inputs, preprocessing, labels_file, what)
    elif is_ref(ref) and not path.exists():
        source = _callable(ref, inputs, what)
    elif not path.exists():
        raise DataError(f"{what} '{ref}' not found: give a folder of images, a .npy/.npz file or package.module:function")
    else:
        raise DataError(f"{what} '{ref}' is not a folder, .npy or .npz file: convert it to one of those, or pass package.module:function")
    if max_samples is not None:
        source = source.take(max_samples)
    if len(source) == 0:
        raise DataError(f"{what} '{ref}' holds no samples")
    for spec, arr in zip(inputs, source.inputs):
        spec.check(arr.shape, what=f"{what} '{ref}'")
    if source.labels is not None and len(source.labels) != len(source):
        raise DataError(f"{what} '{ref}' has {len(source)} samples but {len(source.labels)} labels: they must match")
    check_finite(source, f"{what} '{ref}'")
    return source


def check_finite(source: DataSource, what: str) -> None:
    """Refuse NaN/inf inputs (every metric on them is meaningless) and negative labels (labels are class indices)."""
    for spec_index, arr in enumerate(source.inputs):
        if not np.issubdtype(arr.dtype, np.floating) or arr.size == 0:
            continue
        flat = arr.reshape(len(arr), -1)
        bad = np.concatenate([~np.isfinite(flat[i : i + 256]).all(axis=1) for i in range(0, len(flat), 256)])
        if bad.any():  # (in chunks: a boolean copy of a large eval set would double its memory)
            raise DataError(f"{what} has non-finite values (NaN/inf) in {int(bad.sum())} sample(s) of input {spec_index + 1}, the first at "
                            f"sample {int(np.argmax(bad))}: clean or drop those samples")
    if source.labels is not None and len(source.labels) and source.labels.min() < 0:
        raise DataError(f"{what} has negative labels (e.g. {int(source.labels.min())}): labels are class indices 0..classes-1")


def synthetic_data(inputs: Sequence[InputSpec], samples: int = 32, seed: int = 0) -> DataSource:
    """Random inputs, clearly marked synthetic: fidelity on them says nothing about real accuracy."""
    rng = np.random.default_rng(seed)
    arrays = []
    for s in inputs:
        shape = (samples,) + s.shape(batch=1)[1:]
        dt = numpy_dtype(s.dtype)
        if np.issubdtype(dt, np.floating):
            arrays.append(rng.standard_normal(shape).astype(dt))
        else:
            arrays.append(rng.integers(0, 2, size=shape).astype(dt))
    return DataSource(arrays, None, f"synthetic: {samples} random samples (seed {seed})", synthetic=True)


# --- images -----------------------------------------------------------------------------------


def _read_labels_file(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise DataError(f"labels file '{path}' not found: check the path")
    mapping: dict[str, str] = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in (line.split(",") if "," in line else line.split())]
        if len(parts) != 2:
            raise DataError(f"labels file '{path}' line {n}: expected 'file label' or 'file,label', got '{line}'")
        mapping[parts[0]] = parts[1]
    if not mapping:
        raise DataError(f"labels file '{path}' lists no files")
    return mapping


def _label_ids(names: list[str]) -> np.ndarray:
    if all(n.lstrip("-").isdigit() for n in names):
        return np.asarray([int(n) for n in names], dtype=np.int64)
    classes = sorted(set(names))
    return np.asarray([classes.index(n) for n in names], dtype=np.int64)


def _image_folder(folder, inputs, pre: Preprocessing, labels_file, max_samples, what) -> DataSource:
    if len(inputs) != 1:
        raise DataError(f"{what}: an image folder feeds one input but the model has {len(inputs)}; use .npz or a callable")
    files: list[Path]
    names: list[str] | None = None
    if labels_file:
        mapping = _read_labels_file(Path(labels_file))
        files = []
        for rel in sorted(mapping):
            f = folder / rel
            if not f.is_file():
                raise DataError(f"labels file names '{rel}' but {folder / rel} does not exist")
            files.append(f)
        names = [mapping[str(f.relative_to(folder))] for f in files]
    else:
        subdirs = sorted(d for d in folder.iterdir() if d.is_dir())
        if subdirs:
            files, names = [], []
            for d in subdirs:
                for f in sorted(d.iterdir()):
                    if f.suffix.lower() in IMAGE_SUFFIXES:
                        files.append(f)
                        names.append(d.name)
        else:
            files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{what} folder '{folder}' holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    if max_samples is not None:
        files = files[:max_samples]
        names = names[:max_samples] if names else names
    spec = inputs[0]
    arr = np.stack([preprocess_image(f, spec, pre) for f in _progress(files, f"reading {what}")])
    labels = _label_ids(names) if names else None
    return DataSource([arr.astype(numpy_dtype(spec.dtype))], labels, f"image folder {folder} ({len(files)} images)")


def _progress(items, label: str):
    if len(items) < 200:
        return items
    from rich.progress import track

    return track(items, description=label, transient=True)


def image_geometry(spec: InputSpec, pre: Preprocessing) -> tuple[int, int, int]:
    """(channels, height, width) that the input spec asks of an image."""
    dims = spec.shape(batch=1)
    if len(dims) != 4:
        raise DataError(f"images need a 4-D input (N,C,H,W or N,H,W,C) but input '{spec.name}' is ({spec.shape_str})")
    c, h, w = (dims[1], dims[2], dims[3]) if pre.layout == "nchw" else (dims[3], dims[1], dims[2])
    if c not in (1, 3):
        raise DataError(f"images have 1 or 3 channels but input '{spec.name}' expects {c} (layout {pre.layout})")
    return c, h, w


def preprocess_image(path: Path, spec: InputSpec, pre: Preprocessing) -> np.ndarray:
    """Read one image and turn it into one sample (no batch axis) for ``spec``."""
    from PIL import Image, UnidentifiedImageError

    c, h, w = image_geometry(spec, pre)
    try:
        img = Image.open(path)
        img = img.convert("L" if c == 1 else "RGB")
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"cannot read image '{path}': {e}")
    resample = getattr(Image.Resampling, pre.interpolation.upper())
    if pre.resize is None and pre.crop is None:
        img = img.resize((w, h), resample)
    if pre.resize is not None:
        if isinstance(pre.resize, int):
            iw, ih = img.size
            s = pre.resize / min(iw, ih)
            img = img.resize((max(1, round(iw * s)), max(1, round(ih * s))), resample)
        else:
            img = img.resize((pre.resize[1], pre.resize[0]), resample)
    if pre.crop is not None:
        ch, cw = (pre.crop, pre.crop) if isinstance(pre.crop, int) else pre.crop
        iw, ih = img.size
        left, top = int(round((iw - cw) / 2.0)), int(round((ih - ch) / 2.0))
        img = img.crop((left, top, left + cw, top + ch))
    x = np.asarray(img, dtype=np.float32)
    if x.ndim == 2:
        x = x[:, :, None]
    if x.shape[0] != h or x.shape[1] != w:
        raise DataError(
            f"after preprocessing, image '{path.name}' is {x.shape[0]}x{x.shape[1]} but input '{spec.name}' expects {h}x{w}: "
            "set --resize/--crop to match"
        )
    if pre.channel_order == "bgr":
        x = x[:, :, ::-1]
    x = pre.normalise(x, channel_axis=2)
    return np.ascontiguousarray(x.transpose(2, 0, 1) if pre.layout == "nchw" else x)


# --- arrays -----------------------------------------------------------------------------------


def _arrays(path: Path, inputs, pre: Preprocessing | None, labels_file, what) -> DataSource:
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - numpy raises many types for bad files
        raise DataError(f"cannot read {what} '{path}': {e}")
    labels = None
    if isinstance(loaded, np.ndarray):
        if len(inputs) != 1:
            raise DataError(f"{what} '{path}' is one array but the model has {len(inputs)} inputs: use an .npz keyed by input name")
        arrays = [loaded]
    else:
        keys = list(loaded.keys())
        if all(s.name in keys for s in inputs):
            arrays = [loaded[s.name] for s in inputs]
        elif len(inputs) == 1 and (key := next((k for k in _INPUT_KEYS if k in keys), None)):
            arrays = [loaded[key]]
        else:
            raise DataError(
                f"{what} '{path}' has arrays {keys}; name them after the inputs ({', '.join(s.name for s in inputs)}) or 'x'"
            )
        lkey = next((k for k in _LABEL_KEYS if k in keys), None)
        labels = loaded[lkey].astype(np.int64).reshape(-1) if lkey else None
    if labels_file:
        lp = Path(labels_file)
        if lp.suffix != ".npy" or not lp.is_file():
            raise DataError(f"labels for array data must be an existing .npy file, got '{labels_file}'")
        labels = np.load(lp, allow_pickle=False).astype(np.int64).reshape(-1)
    out = []
    for spec, arr in zip(inputs, arrays):
        spec.check(arr.shape, what=f"{what} '{path}'")
        want = numpy_dtype(spec.dtype)
        check_dtype(arr, spec, f"{what} '{path}'")
        if pre is not None and np.issubdtype(arr.dtype, np.integer) and np.issubdtype(want, np.floating):
            arr = pre.normalise(arr, channel_axis=1 if pre.layout == "nchw" else arr.ndim - 1)
        out.append(np.ascontiguousarray(arr.astype(want)))
    return DataSource(out, labels, f"arrays {path} ({len(out[0])} samples)")


def check_dtype(arr: np.ndarray, spec: InputSpec, what: str) -> None:
    """Refuse data whose dtype cannot mean what the input expects (casting would silently change it)."""
    want = numpy_dtype(spec.dtype)
    if np.issubdtype(want, np.integer) and not np.issubdtype(arr.dtype, np.integer) and arr.dtype != np.bool_:
        raise DataError(f"{what} is {arr.dtype} but input '{spec.name}' expects {spec.dtype} (e.g. token ids): "
                        "give integer data, or change --input-dtype")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise DataError(f"{what} has dtype {arr.dtype}, not numbers: input '{spec.name}' expects {spec.dtype}")


# --- callables --------------------------------------------------------------------------------


def _callable(ref: str, inputs, what) -> DataSource:
    fn = resolve(ref, what, DataError)
    xs: list[list[np.ndarray]] = [[] for _ in inputs]
    ys: list[np.ndarray] = []
    for batch in fn():
        feats, labels = _split_batch(batch, inputs, ref)
        for i, a in enumerate(feats):
            xs[i].append(a)
        if labels is not None:
            ys.append(labels)
    if not xs[0]:
        raise DataError(f"{what} '{ref}' yielded no batches")
    arrays = [np.concatenate(x) for x in xs]
    for a, s in zip(arrays, inputs):
        check_dtype(a, s, f"{what} '{ref}'")
    arrays = [a.astype(numpy_dtype(s.dtype)) for a, s in zip(arrays, inputs)]
    labels = np.concatenate(ys).astype(np.int64) if ys else None
    return DataSource(arrays, labels, f"callable {ref} ({len(arrays[0])} samples)")


def _as_numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def _split_batch(batch, inputs, ref):
    if isinstance(batch, dict):
        missing = [s.name for s in inputs if s.name not in batch]
        if missing:
            raise DataError(f"batches from '{ref}' lack the input(s) {missing}")
        labels = next((batch[k] for k in _LABEL_KEYS if k in batch), None)
        return [_as_numpy(batch[s.name]) for s in inputs], None if labels is None else _as_numpy(labels)
    if isinstance(batch, (tuple, list)):
        if len(batch) == 2 and len(inputs) == 1:
            return [_as_numpy(batch[0])], _as_numpy(batch[1])
        if len(batch) == 2 and isinstance(batch[0], (tuple, list)) and len(batch[0]) == len(inputs):
            return [_as_numpy(b) for b in batch[0]], _as_numpy(batch[1])
        if len(batch) == len(inputs):
            return [_as_numpy(b) for b in batch], None
        raise DataError(f"a batch from '{ref}' has {len(batch)} parts; yield x, (x, y), ((x1, x2), y) or a dict")
    if len(inputs) != 1:
        raise DataError(f"a batch from '{ref}' is one array but the model has {len(inputs)} inputs")
    return [_as_numpy(batch)], None
