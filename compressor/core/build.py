"""Build settings that backends read while compiling (recipe section ``build``): what hardware to build for."""

from __future__ import annotations

import re
from typing import Optional

from pydantic import field_validator

from compressor.core.options import OUTPUT, Settings, option

_ARCH = re.compile(r"^sm\d{2,3}$")


class BuildSettings(Settings):
    gpu_arch: Optional[str] = option(None, "GPU targets: compute capabilities to build engines for, e.g. sm86,sm89,sm120 (default: the "
                                           "local GPU, else the TensorRT flavour's default set).", flag="--gpu-arch", panel=OUTPUT)

    @field_validator("gpu_arch")
    @classmethod
    def _archs(cls, v: Optional[str]) -> Optional[str]:
        if v is None:
            return v
        bad = [a for a in v.split(",") if not _ARCH.match(a.strip().lower())]
        if bad or not v.strip():
            raise ValueError(f"unknown GPU architecture {', '.join(repr(b) for b in bad) or repr(v)}: give compute capabilities "
                             "like sm86,sm89,sm120 (compute capability 8.6 is sm86)")
        return ",".join(a.strip().lower() for a in v.split(","))

    @property
    def archs(self) -> list[str]:
        return self.gpu_arch.split(",") if self.gpu_arch else []
