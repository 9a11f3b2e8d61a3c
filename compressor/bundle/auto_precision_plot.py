"""Figures of the auto-precision walk (fidelity against latency per step): written beside the bundle and drawn in the HTML
report. Plotting lives with the reports, not in the evaluation that produces the figures."""

from __future__ import annotations

from pathlib import Path

PLOT_FILE = "auto_precision.png"


def plot(section: dict, path: Path, title: str) -> None:
    """Write :func:`figure` as an image."""
    import matplotlib.pyplot as plt

    fig = figure(section, title)
    fig.savefig(path)
    plt.close(fig)


def figure(section: dict, title: str):
    """Fidelity (the gate's metric) against latency, one point per step, the chosen one marked (also in the HTML report)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = section["metric"]
    steps = [st for st in section["steps"] if st["p50_ms"] is not None and st[metric] is not None]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for phase, colour in (("ptq", "tab:blue"), ("qat", "tab:green")):
        pts = [st for st in steps if st["phase"] == phase]
        if pts:
            ax.plot([st["p50_ms"] for st in pts], [st[metric] for st in pts], "o-", color=colour, label=phase.upper())
    for st in steps:
        ax.annotate(f"{st['step']} ({len(st['float_layers'])} float)", (st["p50_ms"], st[metric]), textcoords="offset points",
                    xytext=(6, 4 + 8 * (st["step"] % 2)), fontsize=8)
        if st.get("chosen"):
            ax.plot([st["p50_ms"]], [st[metric]], "*", color="gold", markersize=16, markeredgecolor="black", label="chosen")
    if section.get("fp32_p50_ms"):
        ax.axvline(section["fp32_p50_ms"], color="grey", linestyle="--", label=f"{section['fp32_target']} p50")
    ax.set_xlabel("p50 latency (ms)")
    ax.set_ylabel((section.get("objective") or {}).get("shown_label") or metric.replace("_", " "))
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
