"""Input specifications and preprocessing: what the model eats, parsed and checked once.

An input shape is written ``1,3,224,224`` (static) or ``batch,3,224,224`` (a named dynamic dimension,
range 1..64 by default) or ``batch=1:32,3,224,224`` (a named dynamic dimension with its range). The
range is the shape profile: exporters and runtimes that need one get it from here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Optional, Union

from pydantic import field_validator

from compressor.core.errors import DataError, InputError
from compressor.core.options import PREPROCESSING, Settings, option

#: what a model's first output is: decides which fidelity metrics apply (top-1 for classifiers, cosine for embeddings)
TASKS = ("auto", "classification", "embedding", "other", "text-generation")
DTYPES = ("float32", "float16", "bfloat16", "int64", "int32", "uint8", "bool")
DEFAULT_DYNAMIC_RANGE = (1, 64)
_DIM_RE = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:=(?P<min>\d+):(?P<max>\d+))?$")


@dataclass(frozen=True)
class Dim:
    """One dimension: static (``value``) or dynamic (``name`` with ``min``..``max``)."""

    value: int | None = None
    name: str | None = None
    min: int = 1
    max: int = 1

    @property
    def dynamic(self) -> bool:
        return self.value is None

    def __str__(self) -> str:
        if not self.dynamic:
            return str(self.value)
        return f"{self.name}={self.min}:{self.max}"

    def accepts(self, size: int) -> bool:
        return size == self.value if not self.dynamic else self.min <= size <= self.max


def parse_dim(text: str) -> Dim:
    text = text.strip()
    if text.isdigit():
        if int(text) < 1:
            raise InputError(f"dimension '{text}' must be at least 1")
        return Dim(value=int(text))
    m = _DIM_RE.match(text)
    if not m:
        raise InputError(
            f"cannot read dimension '{text}': use a number (224), a name (batch) or a name with a range (batch=1:32)"
        )
    lo, hi = (int(m["min"]), int(m["max"])) if m["min"] else DEFAULT_DYNAMIC_RANGE
    if not 1 <= lo <= hi:
        raise InputError(f"dimension '{text}': the range must satisfy 1 <= min <= max")
    return Dim(name=m["name"], min=lo, max=hi)


@dataclass(frozen=True)
class InputSpec:
    name: str
    dims: tuple[Dim, ...]
    dtype: str = "float32"

    @classmethod
    def parse(cls, shape: str | Sequence[int | str], name: str = "input", dtype: str = "float32") -> InputSpec:
        parts = shape.split(",") if isinstance(shape, str) else [str(p) for p in shape]
        if not parts or any(not p.strip() for p in parts):
            raise InputError(f"cannot read input shape '{shape}': write it like 1,3,224,224 or batch,3,224,224")
        if dtype not in DTYPES:
            raise InputError(f"unknown input dtype '{dtype}': use one of {', '.join(DTYPES)}")
        dims = tuple(parse_dim(p) for p in parts)
        names = [d.name for d in dims if d.dynamic]
        if len(names) != len(set(names)):
            raise InputError(f"input shape '{shape}' names a dynamic dimension twice")
        return cls(name=name, dims=dims, dtype=dtype)

    @property
    def rank(self) -> int:
        return len(self.dims)

    @property
    def shape_str(self) -> str:
        return ",".join(str(d) for d in self.dims)

    @property
    def dynamic(self) -> bool:
        return any(d.dynamic for d in self.dims)

    @property
    def batch_dynamic(self) -> bool:
        return bool(self.dims) and self.dims[0].dynamic

    def shape(self, batch: int | None = None, sizes: dict[str, int] | None = None) -> tuple[int, ...]:
        """A concrete shape: the batch dimension set to ``batch`` where it is dynamic, other dynamic
        dimensions taken from ``sizes`` or their minimum."""
        out = []
        for i, d in enumerate(self.dims):
            if not d.dynamic:
                out.append(d.value)
            elif i == 0 and batch is not None:
                out.append(min(max(batch, d.min), d.max))
            else:
                out.append((sizes or {}).get(d.name, d.min))
        return tuple(out)

    def export_shape(self) -> tuple[int, ...]:
        """The example shape for tracing: dynamic dims at 2 (clamped to their range), since exporters
        specialise dimensions of size 0 and 1."""
        return tuple(d.value if not d.dynamic else min(max(2, d.min), d.max) for d in self.dims)

    def check(self, shape: Sequence[int], what: str, batched: bool = True) -> None:
        """Raise a DataError when ``shape`` (with a leading sample axis if ``batched``) does not fit."""
        got = tuple(shape)
        want = self.dims if batched else self.dims[1:]
        if len(got) != len(want) or not all(d.accepts(s) or (batched and i == 0) for i, (d, s) in enumerate(zip(want, got))):
            raise DataError(
                f"{what} has shape {got} but input '{self.name}' expects ({self.shape_str}): "
                "give data of that shape, or change --input-shape"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "shape": [d.value if not d.dynamic else d.name for d in self.dims],
            "dtype": self.dtype,
            "dynamic_axes": {str(i): {"name": d.name, "min": d.min, "max": d.max} for i, d in enumerate(self.dims) if d.dynamic},
            "spec": self.shape_str,
        }


INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "lanczos")


class Preprocessing(Settings):
    """How raw images become input tensors; recorded in the manifest so the device side can repeat it.

    Pixels are read as floats in 0..255 in ``channel_order``; then optional ``resize`` (shorter side,
    or [h, w]) with ``interpolation`` and centre ``crop``; then ``x * scale``; then ``(x - mean) / std``
    per channel. For arrays (``.npy``/``.npz``) only the arithmetic part (scale, mean, std) applies.
    """

    resize: Optional[Union[int, list[int]]] = option(None, "Resize images: shorter side (256) or H,W.", flag="--resize", parse="size",
                                                     panel=PREPROCESSING)
    interpolation: Literal[INTERPOLATIONS] = option("bilinear", "nearest | bilinear | bicubic | lanczos.",  # type: ignore[valid-type]
                                                    flag="--interpolation", panel=PREPROCESSING)
    crop: Optional[Union[int, list[int]]] = option(None, "Centre crop: 224 or H,W.", flag="--crop", parse="size", panel=PREPROCESSING)
    scale: float = option(1.0 / 255.0, "Multiply pixel values (0..255) by this (default 1/255).", flag="--scale", panel=PREPROCESSING)
    mean: list[float] = option(help="Per-channel mean after scaling, e.g. 0.485,0.456,0.406.", flag="--mean", parse="floats",
                               panel=PREPROCESSING, default_factory=lambda: [0.0])
    std: list[float] = option(help="Per-channel std after scaling, e.g. 0.229,0.224,0.225.", flag="--std", parse="floats",
                              panel=PREPROCESSING, default_factory=lambda: [1.0])
    channel_order: Literal["rgb", "bgr"] = option("rgb", "rgb | bgr.", flag="--channel-order", panel=PREPROCESSING)
    layout: Literal["nchw", "nhwc"] = option("nchw", "nchw | nhwc.", flag="--layout", panel=PREPROCESSING)

    @field_validator("std")
    @classmethod
    def _no_zero_std(cls, v: list[float]) -> list[float]:
        if any(s == 0 for s in v):
            raise ValueError("preprocessing std must not contain 0")
        return v

    @field_validator("scale")
    @classmethod
    def _no_zero_scale(cls, v: float) -> float:
        if v == 0:
            raise ValueError("preprocessing scale must not be 0")
        return v

    def normalise(self, x, channel_axis: int):
        """Apply ``x * scale`` then ``(x - mean) / std`` along ``channel_axis`` (numpy, float32)."""
        import numpy as np

        x = x.astype(np.float32) * np.float32(self.scale)
        shape = [1] * x.ndim
        shape[channel_axis] = -1
        mean = np.asarray(self.mean, dtype=np.float32)
        std = np.asarray(self.std, dtype=np.float32)
        if mean.size not in (1, x.shape[channel_axis]) or std.size not in (1, x.shape[channel_axis]):
            raise DataError(
                f"preprocessing mean/std have {mean.size}/{std.size} values but the data has {x.shape[channel_axis]} channels"
            )
        return (x - mean.reshape(shape if mean.size > 1 else [1])) / std.reshape(shape if std.size > 1 else [1])

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")
