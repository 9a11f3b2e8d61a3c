"""``compressor search CHECKPOINT``: budgets in, the best measured candidate out.

Each trial is one candidate of the evaluation session (target × precision plan × pruning × calibration × QAT): built,
validated on the eval data and, when it meets the accuracy and size budgets, benchmarked on its runtime in a fresh process.
The plain ``compress`` of every listed target is evaluated first, so the search always reports what it gained over it.
optuna proposes the rest (TPE by default, seeded; random and grid as alternatives) and keeps every trial in a storage file
beside the output, so a killed search resumes where it stopped: a candidate is never evaluated twice.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from compressor.app.recipe import RunConfig
from compressor.app.search import results
from compressor.app.search.evaluator import objective_value
from compressor.app.search.fingerprint import differences, fingerprint
from compressor.app.search.space import Point, Space, build_space
from compressor.app.search_settings import BY_NAME
from compressor.bundle.writer import check_destination
from compressor.core.errors import GateError, InputError
from compressor.core.files import write_json
from compressor.core.progress import Progress
from compressor.core.registry import get_target

STUDY = "compressor-search"
STORAGE_FILE = "trials.journal"
#: how many repeat proposals in a row end a search (the sampler keeps proposing candidates already measured)
MAX_REPEATS = 200
#: rounds in which the chosen trial and the best plain compress are re-measured in turns
CONFIRM_ROUNDS = 3
#: a latency search keeps the plain compress when its pick is not at least this much faster, re-measured (simpler recipe)
TIE = 0.03


@dataclass
class SearchResult:
    records: list[dict[str, Any]]
    chosen: dict[str, Any] | None
    front: list[dict[str, Any]]
    per_target: dict[str, dict]
    summary: dict[str, Any]
    folder: Path
    bundle: Path | None = None
    pareto_bundles: list[Path] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def check_budgets(config: RunConfig) -> None:
    """Budgets the search cannot honour, or that contradict each other, before any work."""
    g, s, b = config.gate, config.search, config.benchmark
    measured = [flag for flag, v in (("--max-latency-ms", g.max_latency_ms), ("--max-memory-mb", g.max_memory_mb)) if v is not None]
    if not b.enabled and (measured or s.objective == "latency"):
        what = ", ".join(measured + (["--objective latency"] if s.objective == "latency" else []))
        raise InputError(f"{what} need(s) the benchmark, and --no-benchmark turns it off: drop one of them")
    if g.max_accuracy_drop is not None and g.max_accuracy_drop <= 0 and g.min_agreement is None and g.min_cosine is None:
        raise InputError("--max-accuracy-drop 0 leaves no room for any compression: give the accuracy points you can lose (e.g. 0.5)")
    if g.min_agreement is not None and g.min_agreement <= 0 or g.min_cosine is not None and g.min_cosine <= -1:
        raise InputError("--min-agreement must be above 0 and --min-cosine above -1: a budget every model meets is no budget")
    if s.ray_address is not None and s.executor != "ray":
        raise InputError("--ray-address is where --executor ray sends its trials: add --executor ray, or drop --ray-address")
    if g.force:
        raise InputError("--force writes a bundle that fails its gate; a search writes the best trial that passes: drop --force")
    if s.objective == "accuracy" and not (g.active or measured or g.max_size_mb is not None):
        raise InputError("--objective accuracy with no budget would choose the FP32 model: add --max-latency-ms, --max-size-mb or "
                         "--max-memory-mb (what the accuracy is traded for)")
    if s.objective in ("latency", "size") and not g.active and g.max_size_mb is None and not measured:
        raise InputError(f"--objective {s.objective} with no accuracy budget would choose the most compressed model whatever it "
                         "loses: add --max-accuracy-drop, --min-agreement or --min-cosine")


def _open_study(path: Path, config: RunConfig, fp: dict[str, Any]):
    import warnings

    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    s = config.search
    if s.sampler == "tpe":  # budgets reach it as each trial's constraints (set_constraint): feasible trials are modelled apart
        startup = max(3, min(10, s.trials // 3))
        sampler = optuna.samplers.TPESampler(seed=s.seed, n_startup_trials=startup, multivariate=True, group=True)
    else:  # grid: the points are enqueued in order; the random sampler is never asked
        sampler = optuna.samplers.RandomSampler(seed=s.seed)
    storage = JournalStorage(JournalFileBackend(str(path)))
    study = optuna.create_study(study_name=STUDY, storage=storage, sampler=sampler, direction="minimize", load_if_exists=True)
    old = study.user_attrs.get("fingerprint")
    if old is None:
        study.set_user_attr("fingerprint", fp)
    elif old.get("sha256") != fp["sha256"]:
        what = differences(old, fp)
        shown = ", ".join(what[:4]) + (f" and {len(what) - 4} more" if len(what) > 4 else "")
        raise InputError(f"{path} holds trials of a search with different settings ({shown}): it cannot be resumed with these "
                         f"settings; use another --output, or delete {path.parent} to start over")
    return study


def _constrain(trial, record: dict[str, Any], gate) -> None:
    """One constraint per budget, > 0 when over it (the TPE sampler keeps feasible and infeasible trials apart with these)."""
    f = record.get("fidelity")
    out: dict[str, float] = {o.metric: loss - o.loss_limit for o in gate.objectives if (loss := o.loss(f)) is not None}
    for key, limit in (("size_mb", gate.max_size_mb), ("model_rss_mb", gate.max_memory_mb), ("p50_ms", gate.max_latency_ms)):
        if limit is not None and record.get(key) is not None:
            out[key] = (record[key] - limit) / limit
    if record["status"] == "infeasible" and not any(v > 0 for v in out.values()):
        out["other"] = 1.0
    for name, value in out.items():
        trial.set_constraint(name, value)


def _line(record: dict[str, Any], n: int, total: int, gate) -> str:
    f = record.get("fidelity")
    bits = [f"trial {n}/{total}: {record['label']}"]
    colour = {"feasible": "green", "infeasible": "yellow"}.get(record["status"], "red")
    bits.append(f"[{colour}]{record['status']}[/]")
    if record.get("p50_ms") is not None:
        bits.append(f"p50 {record['p50_ms']:.3g} ms")
    if record.get("size_mb") is not None:
        bits.append(f"{record['size_mb']:.3g} MiB")
    if f is not None:
        bits.append(gate.objective(f).progress(f))
    why = "; ".join(record.get("failures") or []) or record.get("reason")
    return " · ".join(bits) + (f" ({why})" if why and record["status"] != "feasible" else "") + f" [{record.get('seconds', 0):.0f} s]"


def _executor(config: RunConfig, ui: Progress, quiet: bool):
    """The executor, connected (a Ray cluster is asked for its GPUs before the space is built); its evaluators start later."""
    from compressor.app.search.executors import LocalExecutor, RayExecutor

    if config.search.executor == "ray":
        return RayExecutor(config.search.ray_address, config.benchmark.resolved().threads, ui)
    return LocalExecutor(quiet)


def _start(executor, config: RunConfig, space: Space) -> None:
    points = space.points() + space.baselines
    calibrate = any(get_target(p.target).needs_calibration for p in points)
    trains = {d.name for d, _ in space.dimensions if d.searchable.training != "none"}
    train = bool(config.finetune.data) and any(BY_NAME[n].searchable.active(v) for p in points for n, v in p.values if n in trains)
    executor.start(config.model_copy(update={"benchmark": config.benchmark.resolved()}).model_dump_json(), calibrate, train)


def search(config: RunConfig, quiet: bool = False) -> SearchResult:
    from compressor.core.registry import package_missing

    ui = Progress(quiet)
    missing = package_missing("optuna")
    if missing:
        raise InputError(f"compressor search needs optuna: {missing} (pip install 'compressor[search]')")
    if config.output is None:
        raise InputError("no output directory: pass --output DIR (the chosen bundle; the trials are kept beside it in DIR-search/)")
    check_budgets(config)
    out = Path(config.output.path).resolve()
    check_destination(out, config.output.overwrite)
    folder = out.with_name(out.name + "-search")
    from compressor.evaluation.session import quantization_status

    def status(spec):  # what the session would say, before loading anything (the data each target needs is in the config)
        if spec.needs_calibration and not config.data.calib and not config.data.synthetic:
            return False, "static INT8 needs calibration data: pass --calib DATA"
        return quantization_status(spec, config.quantization)

    executor = _executor(config, ui, quiet)
    try:
        return _search(config, executor, status, out, folder, ui)
    finally:
        executor.close()


def _search(config: RunConfig, executor, status, out: Path, folder: Path, ui: Progress) -> SearchResult:
    from optuna.trial import TrialState

    s = config.search
    space = build_space(config, executor.gpus, status)
    for d in space.dropped:
        ui.note(f"[yellow]left out[/] {d}")
    for n in space.notes:
        ui.note(f"[yellow]note[/] {n}")
    points = space.points()
    ui.note(f"search space: {len(points)} candidates ({space.summary()}); {s.trials} trials, sampler {s.sampler} (seed {s.seed}), "
            f"executor {s.executor}")
    folder.mkdir(exist_ok=True)
    storage_path = folder / STORAGE_FILE
    study = _open_study(storage_path, config, fingerprint(config, space.describe()))

    done, pending = _resume(study, space, ui, storage_path)
    baseline_keys = {b.key for b in space.baselines}
    started = False
    t0, repeats = time.monotonic(), 0
    size = len({p.key for p in points} | baseline_keys)
    while len(done) < min(s.trials, size):
        if s.time_budget is not None and time.monotonic() - t0 > s.time_budget:
            ui.warn(f"--time-budget {s.time_budget:g} s reached after {len(done)} trial(s)")
            break
        pending = [p for p in pending if p.key not in done]
        if pending:
            study.enqueue_trial(Space.params(pending[0]))
        trial = study.ask()
        point = space.suggest(trial)
        if point.key in done:  # a repeat proposal: answered from the first evaluation, not evaluated again
            first = done[point.key]
            trial.set_user_attr("repeat_of", first["trial"])
            _constrain(trial, first, config.gate)
            if first["status"] in ("failed", "not run"):
                study.tell(trial, state=TrialState.FAIL)
            else:
                study.tell(trial, objective_value(first, s.objective))
            repeats += 1
            if repeats > MAX_REPEATS:
                ui.note(f"the sampler proposed only candidates already measured ({MAX_REPEATS} times in a row): stopping")
                break
            continue
        repeats = 0
        trial.set_user_attr("point", point.to_dict())
        if not started:
            _start(executor, config, space)
            started = True
        with ui.stage(f"trial {len(done) + 1}/{min(s.trials, size)} evaluated: {point.label()}"):
            record = executor.evaluate(point)
        record.update(trial=len(done) + 1, optuna_trial=trial.number, baseline=point.key in baseline_keys, params=trial.params,
                      objective=objective_value(record, s.objective))
        trial.set_user_attr("record", _json_safe(record))
        _constrain(trial, record, config.gate)
        if record["status"] in ("failed", "not run"):
            study.tell(trial, state=TrialState.FAIL)
        else:
            study.tell(trial, record["objective"])
        done[point.key] = record
        ui.note(_line(record, len(done), min(s.trials, size), config.gate))
    records = sorted(done.values(), key=lambda r: r["trial"])
    result = _finish(config, records, folder, space, ui, executor, started)
    if result.chosen is None:
        near = results.closest(records)
        raise GateError(f"no trial met the budgets ({len(records)} evaluated; table and plot in {folder}): closest "
                        + "; ".join(f"trial {r['trial']} {r['label']} ({'; '.join(r['failures'])})" for r in near)
                        + " — relax a budget, widen the space (recipe search.space) or add --trials" if near else
                        f"no trial met the budgets ({len(records)} evaluated, none could be measured; see {folder})")
    if not started:
        _start(executor, config, space)
    _write_bundles(executor, result, config, out, ui)
    result.dropped, result.notes = space.dropped, space.notes
    return result


def _confirm(executor, result: SearchResult, ui: Progress, objective: str) -> None:
    """The chosen trial against the best plain compress (the fastest feasible one, else the fastest), re-measured in turns: a
    winner picked from single measurements is flattered by their noise, so the gain the search reports is this one."""
    plain = result.summary.get("best_feasible_plain_compress") or result.summary.get("fastest_plain_compress")
    chosen = result.chosen
    if not plain or chosen.get("p50_ms") is None or plain["trial"] == chosen["trial"]:
        return
    other = next(r for r in result.records if r["trial"] == plain["trial"])
    pair = [Point.of(chosen["point"]), Point.of(other["point"])]
    with ui.stage(f"re-measured the chosen trial and the best plain compress in turns ({CONFIRM_ROUNDS} rounds)"):
        p50s = executor.confirm(pair, CONFIRM_ROUNDS)
    if len(p50s) < 2:
        return
    mine, theirs = (statistics.median(p50s[p.key]) for p in pair)
    result.summary["confirmed"] = {"rounds": CONFIRM_ROUNDS, "chosen_p50_ms": mine, "plain_p50_ms": theirs, "speedup": theirs / mine,
                                   "plain_trial": plain["trial"], "chosen_p50s": p50s[pair[0].key], "plain_p50s": p50s[pair[1].key],
                                   "picked_trial": chosen["trial"], "kept_plain": False}
    if objective == "latency" and other["status"] == "feasible" and theirs / mine < 1 + TIE:
        result.chosen = other  # not measurably faster: the plain compress is the simpler bundle to ship
        result.summary["chosen_trial"] = other["trial"]
        result.summary["confirmed"]["kept_plain"] = True



def _write_bundles(executor, result: SearchResult, config: RunConfig, out: Path, ui: Progress) -> None:
    """The chosen trial's bundle at ``out``; with --keep-pareto, every trial of the front in OUTPUT-search/pareto/."""
    chosen = Point.of(result.chosen["point"])
    with ui.stage(f"wrote the chosen bundle: trial {result.chosen['trial']}, {chosen.label()}"):
        executor.write(chosen, out, config.output.overwrite)
    result.bundle = out
    if config.search.keep_pareto:
        (result.folder / "pareto").mkdir(exist_ok=True)
        for r in result.front:
            dest = result.folder / "pareto" / f"trial-{r['trial']:03d}-{r['target']}"
            with ui.stage(f"wrote the front's bundle {dest.name}"):
                executor.write(Point.of(r["point"]), dest, True)
            result.pareto_bundles.append(dest)


def _resume(study, space: Space, ui: Progress, storage_path: Path) -> tuple[dict[str, dict], list[Point]]:
    """What an earlier run of this search left: the records of every candidate it evaluated (by key), and what to evaluate
    first: a trial it was killed in the middle of, the plain compress of each listed target, and for grid every point."""
    from optuna.trial import TrialState

    done: dict[str, dict[str, Any]] = {}
    for t in study.get_trials(deepcopy=False):
        rec = t.user_attrs.get("record")
        if t.state in (TrialState.COMPLETE, TrialState.FAIL) and rec and t.user_attrs.get("repeat_of") is None:
            done.setdefault(Point.of(rec["point"]).key, rec)
    stale = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING]
    for t in stale:  # killed mid-trial: it never finished, so it is evaluated again, first
        study.tell(t.number, state=TrialState.FAIL)
    if done:
        ui.note(f"resuming {storage_path}: {len(done)} candidate(s) already evaluated, not evaluated again")
    pending = [Point.of(t.user_attrs["point"]) for t in stale if "point" in t.user_attrs] + space.baselines
    if study.user_attrs["fingerprint"]["fields"]["search.sampler"] == "grid":
        pending += space.points()
    return done, [p for p in dict.fromkeys(pending) if p.key not in done]


def _json_safe(value):
    """Plain JSON for a trial's stored record: non-finite numbers become null, anything else unusual its text."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value if value is None or isinstance(value, (str, int, bool)) else str(value)


def _finish(config: RunConfig, records: list[dict], folder: Path, space: Space, ui: Progress, executor, started: bool) -> SearchResult:
    """Choose, confirm the choice against plain compress, then show and write the table, the plot, SEARCH.md and search.json."""
    s = config.search
    chosen = results.best(records, s.objective)
    front = results.pareto(records)
    per_target = results.best_per_target(records, s.objective)
    result = SearchResult(records, chosen, front, per_target, results.summary(records, chosen, s.objective), folder)
    if chosen is not None and started:
        _confirm(executor, result, ui, s.objective)
        chosen = result.chosen
    summary = result.summary
    table = results.rows(records, chosen, front)
    title = (f"search: {Path(config.model.checkpoint).name}, {len(records)} trials, objective {s.objective}"
             + (f" under {_budget_text(config.gate)}" if _budget_text(config.gate) else ""))
    results.print_rows(table, title)
    c = summary.get("confirmed")
    chosen_p50 = (c["plain_p50_ms"] if c["kept_plain"] else c["chosen_p50_ms"]) if c else None
    plot_path = results.plot(records, front, chosen, config.gate, folder / "search.png", title, chosen_p50)
    lines = [f"# {title}", "", f"- date: {datetime.now(UTC).isoformat(timespec='seconds')}",
             f"- plot: {plot_path.name}; trials: {STORAGE_FILE} (optuna journal: rerun the same command to resume or extend)"]
    for target, r in per_target.items():
        lines.append(f"- best feasible on {target}: trial {r['trial']} ({r['label']}), p50 {r['p50_ms']:.3g} ms, {r['size_mb']:.3g} MiB")
    if summary.get("fastest_plain_compress") and chosen and summary.get("speedup_vs_fastest_plain"):
        fp = summary["fastest_plain_compress"]
        lines.append(f"- the search's pick, trial {c['picked_trial'] if c else chosen['trial']}, was {summary['speedup_vs_fastest_plain']:.2f}× "
                     f"as fast as the fastest plain compress (trial {fp['trial']}, {fp['label']}, {fp['p50_ms']:.3g} ms, {fp['status']}) "
                     "in their trials")
    if c:
        lines.append(f"- re-measured in turns ({c['rounds']} rounds, medians): the pick {c['chosen_p50_ms']:.3g} ms, plain compress "
                     f"(trial {c['plain_trial']}) {c['plain_p50_ms']:.3g} ms: {c['speedup']:.2f}× as fast"
                     + (f" — under {TIE:.0%} faster, so the plain compress (trial {c['plain_trial']}) is chosen: the same speed with the "
                        "simpler recipe" if c["kept_plain"] else ""))
    lines += [f"- left out: {d}" for d in space.dropped] + [f"- note: {n}" for n in space.notes]
    (folder / "SEARCH.md").write_text(results.markdown(table, "\n".join(lines)))
    payload = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "settings": config.search.model_dump(mode="json"),
               "budgets": config.gate.model_dump(mode="json", exclude={"force"}), "space": space.describe(), "dropped": space.dropped,
               "trials": records, "pareto": [r["trial"] for r in front], "best_per_target": {k: v["trial"] for k, v in per_target.items()},
               "summary": summary}
    write_json(folder / "search.json", _json_safe(payload))
    for line in lines[3:]:
        ui.note(line.removeprefix("- "))
    ui.note(f"table, plot and trials: {folder}")
    return result


def _budget_text(g) -> str:
    parts = []
    for flag, v in (("latency", g.max_latency_ms), ("size", g.max_size_mb), ("memory", g.max_memory_mb)):
        if v is not None:
            parts.append(f"{flag} ≤ {v:g} {'ms' if flag == 'latency' else 'MiB'}")
    if g.max_accuracy_drop is not None:
        parts.append(f"accuracy drop ≤ {g.max_accuracy_drop:g} pts")
    if g.min_agreement is not None:
        parts.append(f"agreement ≥ {g.min_agreement:g}")
    if g.min_cosine is not None:
        parts.append(f"cosine ≥ {g.min_cosine:g}")
    return ", ".join(parts)


