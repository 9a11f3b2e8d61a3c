"""What a search shows: every trial in one table, the Pareto front, the best feasible trial per target, and a plot."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from compressor.bundle.present import NUMERIC, cell

OBJECTIVES = ("p50_ms", "size_mb", "loss")  # all minimised; the front is over these


def _dominates(a: dict, b: dict) -> bool:
    va = [a[k] if a.get(k) is not None else math.inf for k in OBJECTIVES]
    vb = [b[k] if b.get(k) is not None else math.inf for k in OBJECTIVES]
    return all(x <= y for x, y in zip(va, vb)) and any(x < y for x, y in zip(va, vb))


def pareto(records: list[dict]) -> list[dict]:
    """The measured feasible trials no other feasible trial beats on latency, size and accuracy loss all at once."""
    pool = [r for r in records if r["status"] == "feasible" and r.get("p50_ms") is not None]
    return sorted([r for r in pool if not any(_dominates(o, r) for o in pool if o is not r)], key=lambda r: r["p50_ms"])


def objective_key(objective: str) -> str:
    return {"latency": "p50_ms", "size": "size_mb", "accuracy": "loss"}[objective]


def best(records: list[dict], objective: str) -> dict | None:
    """The best feasible trial (ties: faster, then smaller)."""
    key = objective_key(objective)
    pool = [r for r in records if r["status"] == "feasible" and r.get(key) is not None]
    return min(pool, key=lambda r: (r[key], r.get("p50_ms") or math.inf, r.get("size_mb") or math.inf), default=None)


def best_per_target(records: list[dict], objective: str) -> dict[str, dict]:
    out = {}
    for target in dict.fromkeys(r["target"] for r in records):
        b = best([r for r in records if r["target"] == target], objective)
        if b is not None:
            out[target] = b
    return out


def closest(records: list[dict], n: int = 3) -> list[dict]:
    """The trials nearest to the budgets (fewest failures, then how far over), for a search no trial passed."""
    pool = [r for r in records if r["status"] == "infeasible"]
    return sorted(pool, key=lambda r: (len(r["failures"]), r.get("loss") if r.get("loss") is not None else math.inf))[:n]


def rows(records: list[dict], chosen: dict | None, front: list[dict]) -> list[dict[str, str]]:
    on_front = {r["trial"] for r in front}
    out = []
    for r in sorted(records, key=lambda r: r["trial"]):
        f = r.get("fidelity") or {}
        mark = "★ chosen" if chosen is not None and r["trial"] == chosen["trial"] else "front" if r["trial"] in on_front else ""
        status = r["status"] + (" (plain compress)" if r.get("baseline") else "")
        why = "; ".join(r.get("failures") or []) or r.get("reason") or ""
        size = None if r.get("size_mb") is None else round(r["size_mb"] * 2**20)
        out.append({"trial": str(r["trial"]), "candidate": r["label"], "status": status, "p50 ms": cell("p50 ms", r.get("p50_ms")),
                    "size": cell("size", size), "accuracy": cell("top-1", f.get("accuracy")), "drop pts": cell("drop pts", f.get("accuracy_drop_pp")),
                    "agreement": cell("agreement", f.get("top1_agreement")), "cosine": cell("cosine", f.get("cosine_mean")),
                    "s": cell("s", r.get("seconds")), "": mark, "why": why})
    return out


def print_rows(table_rows: list[dict[str, str]], title: str) -> None:
    from rich.table import Table

    from compressor.bundle.report import console

    table = Table(title=title)
    for c in table_rows[0] if table_rows else ():
        table.add_column(c, justify="right" if c in NUMERIC or c == "accuracy" else "left", overflow="fold")
    for r in table_rows:
        table.add_row(*r.values(), style="bold green" if r[""] == "★ chosen" else None)
    console().print(table)


def markdown(table_rows: list[dict[str, str]], header: str) -> str:
    if not table_rows:
        return header + "\n\n(no trials)\n"
    cols = list(table_rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(r[c].replace("|", "/") for c in cols) + " |" for r in table_rows]
    return header + "\n\n" + "\n".join(lines) + "\n"


def plot(records: list[dict], front: list[dict], chosen: dict | None, gate, path: Path, title: str, chosen_p50: float | None = None) -> Path:
    """Latency against the accuracy loss of every measured trial: one colour per target, feasible filled, infeasible hollow,
    the front joined, the chosen trial starred, the budgets drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [r for r in records if r.get("p50_ms") is not None and r.get("loss") is not None]
    fig, ax = plt.subplots(figsize=(8, 5.2))
    targets = list(dict.fromkeys(r["target"] for r in measured))
    colours = plt.get_cmap("tab10")
    for i, t in enumerate(targets):
        mine = [r for r in measured if r["target"] == t]
        ok = [r for r in mine if r["status"] == "feasible"]
        bad = [r for r in mine if r["status"] != "feasible"]
        ax.scatter([r["p50_ms"] for r in ok], [r["loss"] for r in ok], color=colours(i % 10), label=t, s=40, zorder=3)
        ax.scatter([r["p50_ms"] for r in bad], [r["loss"] for r in bad], facecolors="none", edgecolors=colours(i % 10), s=40, zorder=3)
    if front:
        ax.plot([r["p50_ms"] for r in front], [r["loss"] for r in front], "k--", lw=1, label="Pareto front (feasible)", zorder=2)
    if chosen is not None and chosen.get("p50_ms") is not None and chosen.get("loss") is not None:
        x = chosen_p50 if chosen_p50 is not None else chosen["p50_ms"]  # its re-measured median, where there is one
        ax.scatter([x], [chosen["loss"]], marker="*", s=300, color="gold", edgecolors="k", zorder=4,
                   label="chosen" + (" (p50 re-measured in turns)" if chosen_p50 is not None else ""))
    if gate.max_latency_ms is not None:
        ax.axvline(gate.max_latency_ms, color="red", lw=1, ls=":", label="latency budget")
    objective = gate.objective(next((r.get("fidelity") for r in records if r.get("fidelity")), None))
    limit = objective.loss_limit
    if limit is not None:
        ax.axhline(limit, color="red", lw=1, ls="-.", label="accuracy budget")
    unmeasured = len(records) - len(measured)
    ax.set_xlabel("p50 latency (ms)")
    ax.set_ylabel(objective.loss_label)
    ax.set_title(title + (f"\n({unmeasured} trial(s) not benchmarked: over a budget before timing, or failed)" if unmeasured else ""),
                 fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def summary(records: list[dict], chosen: dict | None, objective: str) -> dict[str, Any]:
    """How the chosen trial compares with the best plain `compress` of the listed targets (both measured in this search)."""
    plain = [r for r in records if r.get("baseline") and r.get("p50_ms") is not None]
    fastest_plain = min(plain, key=lambda r: r["p50_ms"], default=None)
    feasible_plain = best([r for r in records if r.get("baseline")], objective)
    out: dict[str, Any] = {"chosen_trial": chosen["trial"] if chosen else None}
    if chosen and fastest_plain and chosen.get("p50_ms"):
        out["fastest_plain_compress"] = {"trial": fastest_plain["trial"], "label": fastest_plain["label"], "p50_ms": fastest_plain["p50_ms"],
                                         "status": fastest_plain["status"]}
        out["speedup_vs_fastest_plain"] = fastest_plain["p50_ms"] / chosen["p50_ms"]
    if chosen and feasible_plain and chosen.get("p50_ms"):
        out["best_feasible_plain_compress"] = {"trial": feasible_plain["trial"], "label": feasible_plain["label"],
                                               "p50_ms": feasible_plain["p50_ms"]}
        out["speedup_vs_best_feasible_plain"] = feasible_plain["p50_ms"] / chosen["p50_ms"]
    return out
