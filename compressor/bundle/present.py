"""The one presenter of result figures: every table that shows a result (compress's terminal table and REPORT.md, bench's
table, the search table, the HTML report) formats each figure here, so the same number reads the same everywhere, and sizes
are binary units labelled as such (KiB, MiB: :func:`compressor.core.files.fmt_size`)."""

from __future__ import annotations

from typing import Any

from compressor.core.files import fmt_size
from compressor.evaluation.benchmark import BenchResult

EMPTY = "–"

#: column -> (format spec, suffix); a column not listed is shown as it is
FORMATS: dict[str, tuple[str, str]] = {
    "top-1": (".4f", ""),
    "agreement": (".4f", ""),
    "cosine mean": (".5f", ""),
    "cosine min": (".5f", ""),
    "cosine": (".5f", ""),
    "drop pts": (".2f", ""),
    "p50 ms": (".4g", ""),
    "p90 ms": (".4g", ""),
    "throughput/s": (".1f", ""),
    "peak RSS": (".0f", " MiB"),
    "speed-up vs torch": (".2f", "×"),
    "build s": (".1f", ""),
    "of peak": (".0%", ""),
    "s": (".0f", ""),
}
NUMERIC = frozenset(FORMATS) | {"size", "trial", "batch"}


def fmt(value: Any, spec: str = "", suffix: str = "") -> str:
    """One figure, ``–`` when it was not measured."""
    return EMPTY if value is None else f"{value:{spec}}{suffix}"


def cell(column: str, value: Any) -> str:
    """``value`` as the ``column`` of every table shows it (``–`` for a figure that was not measured; ``size`` is bytes)."""
    if column == "size":
        return fmt_size(value)
    return fmt(value, *FORMATS.get(column, ("", "")))


def fidelity_cells(fidelity: dict[str, Any] | None) -> dict[str, str]:
    """The fidelity columns (a synthetic-data figure says so: it measures agreement, not accuracy)."""
    f = fidelity or {}
    synthetic = " (synthetic)" if f.get("synthetic") else ""
    return {"top-1": cell("top-1", f.get("accuracy")) + (synthetic if f.get("accuracy") is not None else ""),
            "drop pts": cell("drop pts", f.get("accuracy_drop_pp")),
            "agreement": cell("agreement", f.get("top1_agreement")) + (synthetic if f.get("top1_agreement") is not None else ""),
            "cosine mean": cell("cosine mean", f.get("cosine_mean")), "cosine min": cell("cosine min", f.get("cosine_min"))}


def bench_cells(bench: BenchResult | dict[str, Any] | None, speedup: float | None = None) -> dict[str, str]:
    """The measured columns of one benchmark (typed, or as a manifest or a bench JSON holds it)."""
    b = bench.to_dict() if isinstance(bench, BenchResult) else bench or {}
    lat = b.get("latency_ms") or {}
    return {"p50 ms": cell("p50 ms", lat.get("p50")), "p90 ms": cell("p90 ms", lat.get("p90")),
            "throughput/s": cell("throughput/s", b.get("throughput_per_s")), "peak RSS": cell("peak RSS", b.get("peak_rss_mb")),
            "speed-up vs torch": cell("speed-up vs torch", speedup)}


def result_cells(size_bytes: int | None, fidelity: dict[str, Any] | None, bench: BenchResult | dict[str, Any] | None,
                 speedup: float | None = None) -> dict[str, str]:
    """Size, fidelity and the measured columns of one artifact."""
    return {"size": cell("size", size_bytes), **fidelity_cells(fidelity), **bench_cells(bench, speedup)}
