"""Which data a run reads (recipe section ``data``): eval data (what fidelity is measured on), calibration
data (INT8 ranges), or synthetic inputs when, and only when, asked for."""

from __future__ import annotations

from typing import Optional

from compressor.core.options import DATA, Settings, option


class DataSettings(Settings):
    eval: Optional[str] = option(None, "Eval data: image folder, .npy/.npz, or package.module:function.", flag="--eval", panel=DATA)
    eval_labels: Optional[str] = option(None, "Labels for --eval: a 'file label' text file (images) or .npy (arrays).",
                                        flag="--eval-labels", panel=DATA)
    eval_samples: Optional[int] = option(None, "Use only the first N eval samples.", flag="--eval-samples", panel=DATA, ge=1)
    calib: Optional[str] = option(None, "Calibration data (same forms as --eval).", flag="--calib", panel=DATA)
    calib_labels: Optional[str] = option(None, "Labels for --calib.", flag="--calib-labels", panel=DATA)
    calib_samples: Optional[int] = option(None, "Use at most N calibration samples (default 128 for INT8).", flag="--calib-samples",
                                          panel=DATA, ge=1)
    synthetic: bool = option(False, "No real data: validate on random inputs (marked synthetic everywhere).", flag="--synthetic",
                             panel=DATA)
    synthetic_samples: int = option(32, "How many random samples --synthetic makes.", ge=1)
