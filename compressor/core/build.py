"""Build settings that backends read while compiling (recipe section ``build``): what hardware to build for."""

from __future__ import annotations

import re
import signal
import threading
from contextlib import contextmanager
from typing import Literal, Optional

from pydantic import field_validator

from compressor.core.errors import CompressorError
from compressor.core.options import OUTPUT, Settings, option


class BuildTimeout(CompressorError):
    """A target's build ran past --build-timeout."""

_ARCH = re.compile(r"^sm\d{2,3}$")


class BuildSettings(Settings):
    gpu_arch: Optional[str] = option(None, "GPU targets: compute capabilities to build engines for, e.g. sm86,sm89,sm120 (default: the "
                                           "local GPU, else the TensorRT flavour's default set).", flag="--gpu-arch", panel=OUTPUT)

    input_layout: Literal["nchw", "nhwc"] = option(
        "nchw", "LiteRT targets: the layout of 4-D inputs (nhwc: channels-last, as Android camera pipelines hand images, with "
                "no transpose in front of the model; verify and bench still feed N,C,H,W and the runner transposes).",
        flag="--input-layout", panel=OUTPUT)

    timeout: float = option(1800.0, "Seconds one target's build (export, quantization, compile) may take before it is stopped, "
                                    "its row failed (0: no limit).", flag="--build-timeout", panel=OUTPUT, ge=0)

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


#: seconds a deadline waits for an import in progress before it looks again
IMPORT_GRACE = 0.05


def importing(frame) -> bool:
    """Whether ``frame`` (or a caller of it) runs a module's import."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib._bootstrap"):
            return True
        frame = frame.f_back
    return False


@contextmanager
def time_limit(seconds: float, what: str):
    """Stop the block with a one-line error after ``seconds`` (main thread only, where signals arrive; elsewhere no limit)."""
    if not seconds or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def stop(signum, frame):
        if importing(frame):  # never stop a module's first import: a library left half-imported breaks every later build in
            signal.setitimer(signal.ITIMER_REAL, IMPORT_GRACE)  # this process (the next export falls back, plans lose their
            return  # layer names); stop just after it instead
        raise _Deadline  # a BaseException: the libraries' own `except Exception` cannot swallow it

    old = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except _Deadline:
        raise BuildTimeout(f"{what} did not finish in {seconds:g} s and was stopped: raise --build-timeout, or choose another target") \
            from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


class _Deadline(BaseException):
    pass
