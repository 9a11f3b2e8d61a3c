"""The ``compressor`` command.

``compress``, ``analyze`` and ``bench`` take every run option; their flags are generated from the one
option table (compressor/app/options.py), which is derived from the recipe's settings models, so a flag
is always a shortcut for a recipe field. Importing this module stays light (no pydantic, numpy or
runtime): the generated commands are built when the CLI runs.
"""

from __future__ import annotations

import errno
import functools
import inspect
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, Optional

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Turn a trained PyTorch checkpoint into a validated, benchmarked, device-specific bundle.",
)
_state = {"debug": False}


def _version(value: bool) -> None:
    if value:
        from compressor.core.version import __version__

        typer.echo(f"compressor {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    _state["debug"] = debug
    if debug:  # a candidate's non-SDK exception then propagates with its traceback (and reaches benchmark workers too)
        from compressor.core.errors import STRICT_ENV

        os.environ[STRICT_ENV] = "1"


_WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EFBIG)
_OUT_OF_MEMORY = ("DefaultCPUAllocator", "alloc_cpu", "not enough memory", "bad_alloc", "Failed to allocate memory")


def _fail(exc: BaseException) -> None:
    """One line on stderr, a non-zero exit; the traceback only with --debug."""
    from compressor.core.errors import CompressorError, first_line

    if _state["debug"]:
        import traceback

        traceback.print_exception(exc)
    if isinstance(exc, CompressorError):
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(exc.exit_code)
    first = first_line(exc, empty="")
    if isinstance(exc, OSError) and exc.errno in _WRITE_ERRNOS:
        where = f" ({exc.filename})" if exc.filename else ""
        typer.echo(f"error: cannot write{where}: {exc.strerror or first}; nothing was written: free space or choose another --output", err=True)
        raise typer.Exit(2)
    if isinstance(exc, MemoryError) or any(t in first for t in _OUT_OF_MEMORY):
        typer.echo("error: ran out of memory: the input shape (times the batch) is too large for this machine "
                   f"({first[:120] or 'MemoryError'}); use a smaller --input-shape or batch size", err=True)
        raise typer.Exit(2)
    typer.echo(f"internal error: {type(exc).__name__}: {first} (rerun with --debug for the traceback)", err=True)
    raise typer.Exit(1)


def one_line_errors(command):
    """Every failure of a command becomes one line on stderr and a non-zero exit (see _fail)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except typer.Exit:
            raise
        except KeyboardInterrupt:
            typer.echo("interrupted: nothing was written (partial work removed)", err=True)
            raise typer.Exit(130) from None
        except Exception as e:  # noqa: BLE001 - the point of this wrapper
            _fail(e)

    return wrapper


def _write_json(path: Optional[Path], data) -> None:
    if path is not None:
        from compressor.core.files import write_json

        write_json(path, data)


def _check_folder(*paths: Optional[Path]) -> None:
    from compressor.core.errors import InputError

    for p in paths:
        if p is not None and not Path(p).parent.exists():
            raise InputError(f"the folder of '{p}' does not exist: create it first")


# --- commands generated from the option table ---------------------------------------------------------

def _param(name: str, annotation, default) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)


def _run_params(command: str) -> list[inspect.Parameter]:
    """CHECKPOINT, --recipe and one parameter per option of the table that ``command`` offers (the inputs composite included)."""
    from compressor.app.options import INPUT_OPTIONS, options

    params = [
        _param("checkpoint", Optional[Path], typer.Argument(None, help="state_dict (.pt/.pth/.safetensors, with --arch), TorchScript, "
                                                                       "torch.export .pt2, or pickled module.")),
        _param("recipe", Optional[Path], typer.Option(None, "--recipe", "-r", help="YAML/JSON recipe; flags override its fields.")),
    ]
    for o in (*INPUT_OPTIONS, *options()):
        if not o.offered_by(command):
            continue
        decls = [o.flag] + ([o.short] if o.short else [])
        if o.kind == "negate":
            params.append(_param(f"no_{o.keyword}", bool, typer.Option(False, *decls, help=o.help, rich_help_panel=o.panel)))
        elif o.kind == "flag":
            params.append(_param(o.keyword, Optional[bool], typer.Option(None, *decls, help=o.help, rich_help_panel=o.panel)))
        elif o.kind == "multiple":
            params.append(_param(o.keyword, Optional[list[str]], typer.Option(None, *decls, help=o.help, rich_help_panel=o.panel)))
        else:
            params.append(_param(o.keyword, Optional[o.type], typer.Option(None, *decls, help=o.help, rich_help_panel=o.panel)))
    return params


def _config(kwargs: dict[str, Any], command: str):
    """The validated run settings from the arguments of generated command ``command`` (the options ``_run_params(command)``
    gave it; analyze and bench write no bundle, so output settings are dropped for them)."""
    from compressor.app.options import INPUT_OPTIONS, options, overrides
    from compressor.app.recipe import build_config

    values: dict[str, Any] = {"checkpoint": kwargs.pop("checkpoint")}
    recipe = kwargs.pop("recipe")
    for o in (*INPUT_OPTIONS, *options()):
        if not o.offered_by(command):
            continue
        if o.kind == "negate":
            values[o.keyword] = False if kwargs.pop(f"no_{o.keyword}") else None
        else:
            values[o.keyword] = kwargs.pop(o.keyword)
    over = overrides(values)
    if command in ("analyze", "bench"):
        over = {k: v for k, v in over.items() if not k.startswith("output.")}
    config = build_config(recipe, over)
    if config.model.task == "text-generation" and command != "compress":
        from compressor.core.errors import InputError

        raise InputError("--task text-generation works with `compressor compress` (then `compressor verify BUNDLE` and "
                         "`compressor bench BUNDLE`); analyze, search and bench --targets do not take language models yet")
    return config


def _generated(name: str, run: Callable[..., None], extra: list[inspect.Parameter], help: str, **settings) -> None:
    """Register command ``name``: every run option plus ``extra``; ``run(config_kwargs, **extra_values)``."""

    def command(**kwargs):
        mine = {p.name: kwargs.pop(p.name) for p in extra}
        return run(kwargs, **mine)

    command.__signature__ = inspect.Signature(_run_params(name) + extra)
    command.__doc__ = help
    command.__name__ = name.replace("-", "_")
    app.command(name, **settings)(one_line_errors(command))


JSON = _param("json_path", Optional[Path], typer.Option(None, "--json", help="Also write the results to this JSON file.",
                                                         rich_help_panel="Output"))


def _compress(kwargs: dict[str, Any], json_path: Optional[Path]) -> None:
    from compressor.app.compress import compress as run
    from compressor.bundle.report import console, print_table

    _check_folder(json_path)
    config = _config(kwargs, "compress")
    if config.model.task == "text-generation":
        return _compress_lm(config, json_path)
    result = run(config)
    print_table(result.rows, title=f"{Path(config.model.checkpoint).name} → {config.target}")
    status = "[green]passed its gate[/]" if result.passed else "[red]FAILED its gate (written because of --force)[/]"
    validation = result.manifest.get("validation") or {"validated": True}
    if not validation["validated"]:
        status = f"[yellow]built, NOT validated ({validation['reason']})[/]: run `compressor verify` on the device"
    console().print(f"bundle: [bold]{result.bundle}[/] — {status}")
    _write_json(json_path, {"bundle": str(result.bundle), "passed": result.passed, "metrics": result.metrics})


def _compress_lm(config, json_path: Optional[Path]) -> None:
    from rich.table import Table

    from compressor.app.compress_lm import compress_lm
    from compressor.bundle.report import console
    from compressor.core.files import fmt_size

    result = compress_lm(config)
    m = result.manifest["metrics"]
    table = Table(title=f"{Path(config.model.checkpoint).name} → {config.target}")
    for c in ("target", "precision", "size", "perplexity", "FP32 perplexity", "increase", "next-token agreement"):
        table.add_column(c, justify="left" if c in ("target", "precision") else "right")
    table.add_row(config.target, result.manifest["precision"], fmt_size(result.manifest["artifact"]["size_bytes"]),
                  f"{m['perplexity']:.3f}", f"{m['reference_perplexity']:.3f}", f"{m['perplexity_increase_pct']:+.2f} %",
                  f"{m['top1_agreement']:.4f}")
    console().print(table)
    status = "[green]passed its gate[/]" if result.passed else "[red]FAILED its gate (written because of --force)[/]"
    console().print(f"bundle: [bold]{result.bundle}[/] — {status}")
    _write_json(json_path, {"bundle": str(result.bundle), "passed": result.passed, "metrics": m})


def _analyze(kwargs: dict[str, Any], json_path: Optional[Path]) -> None:
    from rich.table import Table

    from compressor.app.analyze import analyze as run
    from compressor.bundle.report import console
    from compressor.core.errors import InputError

    if kwargs.get("output") is not None:
        raise InputError("analyze writes no bundle: drop --output (use --json PATH to save the table)")
    _check_folder(json_path)
    kwargs["target"] = kwargs.get("target") or "ort-cpu-int8"
    result = run(_config(kwargs, "analyze"))
    q = result["quantization"]
    s = q["sensitivity"]
    sqnr = {d["layer"]: d["sqnr_db"] for d in s["all_quantized_worst_sqnr"]}
    table = Table(title=f"{result['model']} → {result['target']}: per-layer sensitivity")
    for c in ("rank", "layer", "op", "loss alone (1 − cosine)", "top-1 agreement alone", "SQNR all-INT8 (dB)", "input range spread"):
        table.add_column(c, justify="left" if c in ("layer", "op") else "right", no_wrap=c == "layer")
    for i, d in enumerate(s["layers_alone"], 1):
        agree = "–" if d["top1_agreement"] is None else f"{d['top1_agreement']:.3f}"
        db, spread = sqnr.get(d["layer"]), d.get("input_range_spread")
        table.add_row(str(i), d["layer"], d["op_type"], f"{d['loss']:.2e}", agree, "–" if db is None else f"{db:.1f}",
                      "–" if spread is None else f"{spread:.1f}")
    console().print(table)
    # facts a user needs go on their own lines, never into a title a narrow terminal cuts
    console().print(f"measured on {s['samples']} samples, run on {s['runtime']}; all layers INT8: output cosine "
                    f"{s['all_quantized']['cosine_mean']:.5f}", soft_wrap=True)
    if q["float_layers"]:
        console().print("kept float: " + "; ".join(f"{n} ({why})" for n, why in q["float_layers"].items()))
    from compressor.bundle.report import transforms_lines

    for line in transforms_lines(q.get("transforms") or {}):
        console().print(line.lstrip("- "), soft_wrap=True)
    console().print("to keep a layer float: --exclude NAME (or a glob, re:REGEX, type:Conv2d)")
    _write_json(json_path, result)


def _bench(kwargs: dict[str, Any], targets: Optional[str], batch_sizes: Optional[str], json_path: Optional[Path],
           plot: Optional[Path]) -> None:
    from compressor.core.errors import InputError

    _check_folder(json_path, plot)
    if targets is None:  # an artifact or a bundle that is already built
        if batch_sizes or plot:
            raise InputError("--batch-sizes and --plot belong to `compressor bench MODEL --targets …`")
        allowed = {"checkpoint", "target", "threads", "batch_size", "duration", "iterations"}
        given = [k for k, v in kwargs.items() if k not in allowed | {"recipe"} and v not in (None, False, [], ())]
        if given or kwargs.get("recipe"):
            flags = ", ".join("--" + k.replace("_", "-") for k in (given or ["recipe"]))
            raise InputError(f"{flags} only apply when building: add --targets LIST to build and bench a model, "
                             "or drop them to bench an artifact or bundle")
        if kwargs.get("checkpoint") is None:
            raise InputError("give the artifact, bundle or model to benchmark: compressor bench PATH [--targets LIST]")
        def given(name, default):
            return default if kwargs.get(name) is None else kwargs[name]

        return _bench_artifact(kwargs["checkpoint"], kwargs.get("target"), kwargs.get("threads"), given("batch_size", 1),
                               given("duration", 3.0), given("iterations", 50), json_path)
    from compressor.app import bench as multibench
    from compressor.bundle.report import console, print_table

    result = multibench.bench_targets(_config(kwargs, "bench"), targets, batch_sizes)
    env = result["environment"]["cpu"]
    print_table(multibench.table_rows(result), columns=multibench.TABLE_COLUMNS,
                title=f"{result['model']['checkpoint']} on {env['model']} — {result['settings']['threads']} threads, "
                      f"eval {result['eval']['samples']} samples{' (synthetic)' if result['eval']['synthetic'] else ''}")
    if json_path:
        _write_json(json_path, result)
        console().print(f"results: {json_path}")
    if plot:
        multibench.plot(result, plot)
        console().print(f"plot: {plot}")


def _bench_artifact(artifact: Path, target: Optional[str], threads: Optional[int], batch_size: int, duration: float, iterations: int,
                    json_path: Optional[Path]) -> None:
    from compressor.app.api import bench as run
    from compressor.bundle.report import console, print_table, row

    if artifact.is_dir() and (artifact / "manifest.json").is_file() and \
            json.loads((artifact / "manifest.json").read_text()).get("task") == "text-generation":
        return _bench_lm_bundle(artifact, threads, json_path)
    result = run(artifact, target=target, threads=threads, batch_size=batch_size, duration=duration, iterations=iterations)
    print_table([row(result["target"], result["precision"], result["size_bytes"], None, result, None)],
                title=f"{artifact}", columns=("target", "precision", "size", "p50 ms", "p90 ms", "throughput/s", "peak RSS"))
    lat = result["latency_ms"]
    # facts a user needs go on their own lines, never into a title a narrow terminal cuts
    console().print(f"{result['threads']} threads, batch {result['batch_size']}, {result['iterations']} iterations; "
                    f"feeds: {result['feeds']}", soft_wrap=True)
    typer.echo(f"p99 {lat['p99']:.2f} ms, mean {lat['mean']:.2f} ms, load {result['load_time_s']:.2f} s")
    _write_json(json_path, result)


def _bench_lm_bundle(bundle: Path, threads: Optional[int], json_path: Optional[Path]) -> None:
    from rich.table import Table

    from compressor.app.lm_bench import bench_bundle
    from compressor.bundle.report import console
    from compressor.bundle.writer import check_files, read_manifest
    from compressor.core.environment import default_threads
    from compressor.core.errors import VerificationError
    from compressor.core.files import fmt_size

    manifest = read_manifest(bundle)
    problems = check_files(bundle, manifest)
    if problems:
        raise VerificationError(f"bundle '{bundle}' is damaged: {problems[0]}; rebuild it")
    with console().status("generation benchmark (fresh process) …"):
        r = bench_bundle(bundle, manifest, threads or default_threads())
    table = Table(title=f"{bundle} — {r['target']}, batch 1, greedy, {r['threads']} threads")
    for c in ("TTFT 128 ms", "TTFT 512 ms", "decode tok/s", "load s", "peak RSS", "size", "GB/s moved", "share of bandwidth"):
        table.add_column(c, justify="right")
    t, rf = r["ttft_ms"], r["roofline"]
    table.add_row(*(f"{t[k]:.1f}" if k in t else "–" for k in ("128", "512")), f"{r['decode_tokens_per_s']:.1f}",
                  f"{r['load_time_s']:.2f}", fmt_size(int(r["peak_rss_mb"] * 2**20)), fmt_size(r["size_bytes"]),
                  f"{rf['gb_per_s']:.2f}", f"{rf['share_of_bandwidth']:.0%}" if rf["share_of_bandwidth"] else "–")
    console().print(table)
    console().print(f"[dim]{r['method']}; {rf['method']}: {rf['bandwidth_gb_per_s']:.1f} GB/s[/]", soft_wrap=True)
    _write_json(json_path, r)


def _search(kwargs: dict[str, Any], json_path: Optional[Path]) -> None:
    from compressor.app.search.run import search as run
    from compressor.bundle.report import console

    _check_folder(json_path)
    result = run(_config(kwargs, "search"))
    c = result.chosen
    console().print(f"bundle: [bold]{result.bundle}[/] — trial {c['trial']}, {c['label']}: p50 {c['p50_ms']:.3g} ms, "
                    f"{c['size_mb']:.3g} MiB (passed every budget)", soft_wrap=True)
    for p in result.pareto_bundles:
        console().print(f"Pareto front bundle: {p}")
    _write_json(json_path, {"bundle": str(result.bundle), "folder": str(result.folder), "chosen": c, "summary": result.summary,
                            "pareto": [r["trial"] for r in result.front]})


def _register_generated() -> None:
    _generated("compress", _compress, [JSON],
               "Compress CHECKPOINT for a target: build, validate against FP32, benchmark, and write a bundle.")
    _generated("analyze", _analyze, [JSON],
               "Per-layer INT8 sensitivity (which layers to keep float), measured on the target's own runtime; no bundle is written.\n\n"
               "Example: compressor analyze model.pth --arch torchvision:resnet18 --input-shape 1,3,224,224 --calib data/ --eval data/ "
               "--target ort-cpu-int8")
    _generated("search", _search, [JSON],
               "Search targets × precision plans × pruning × calibration × QAT for the candidate that best meets your budgets; each "
               "trial is built, validated and benchmarked on its runtime in a fresh process, and the chosen one is written as a bundle.\n\n"
               "Example: compressor search model.pth --arch torchvision:resnet18 --input-shape 1,3,224,224 --eval data/ --calib data/ "
               "--targets ort-cpu-int8,openvino-cpu-int8 --max-accuracy-drop 1 --max-latency-ms 20 --trials 20 --output best/\n\n"
               "Trials are kept in OUTPUT-search/ (table, plot, optuna journal): rerun the same command to resume a stopped search.")
    _generated("bench", _bench, [
        _param("targets", Optional[str], typer.Option(None, "--targets", help="Build every listed target (or 'all') from CHECKPOINT.",
                                                      rich_help_panel="Benchmark")),
        _param("batch_sizes", Optional[str], typer.Option(None, "--batch-sizes", help="--targets: batch sizes to sweep, e.g. 1,8,32.",
                                                          rich_help_panel="Benchmark")),
        JSON,
        _param("plot", Optional[Path], typer.Option(None, "--plot", help="--targets: write a PNG of latency against fidelity.",
                                                    rich_help_panel="Output")),
    ], "Benchmark a model on many targets (--targets), or an artifact or bundle already built.\n\n"
       "compressor bench MODEL --targets LIST|all [compress options] [--batch-sizes 1,8,32] [--json R.json] [--plot R.png]: "
       "build every listed target from one checkpoint, validate each against FP32, benchmark each in a fresh process, one table.\n\n"
       "compressor bench ARTIFACT_OR_BUNDLE [--target T] [--threads N] [--batch-size B] [--duration S] [--json R.json]: "
       "benchmark something already built, in a fresh process.")


def verify(
    bundle: Path = typer.Argument(..., help="A bundle directory or .tar.gz."),
    threads: Optional[int] = typer.Option(None, help="Threads for the runtime."),
    on: Optional[str] = typer.Option(None, "--on", help="Re-run the reference inputs on an emulated CPU of this ISA (arm64) with the "
                                     "bundle's own runtime, and record the passing check in the manifest (validation.arm64). "
                                     "Needs `compressor setup-arm64` once on this machine."),
    cpu: Optional[str] = typer.Option(None, "--cpu", help="--on: emulated CPU models, comma-separated (default cortex-a53,neoverse-n1)."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the verification result to this JSON file."),
) -> None:
    """Check the manifest against its schema, re-check every file's sha256 and re-run the reference inputs through the artifact."""
    from compressor.app.api import verify as run
    from compressor.bundle.arm64 import parse_cpus
    from compressor.core.errors import InputError

    if cpu is not None and on is None:
        raise InputError("--cpu picks the emulated CPU models of --on: add --on arm64, or drop --cpu")
    result = run(bundle, threads=threads, on=on, cpus=parse_cpus(cpu) if on else None, quiet=False)
    if on is not None:
        cpus = ", ".join(f"{r['cpu']} {r['max_abs_error']:.3g}" for r in result["cpus"])
        typer.echo(f"OK on emulated {on}: {result['reference_samples']} reference inputs re-run by {result['runtime']} "
                   f"{result['runtime_version']} ({result['emulator']}), max abs error per CPU: {cpus}; CPU models "
                   f"{'agree bit for bit' if result['cpus_agree'] else 'differ within tolerance'}; recorded in the manifest "
                   "(validation.arm64). Emulated time is not device latency.")
        return _write_json(json_path, result)
    if "prompts" in result:  # a language model: its greedy generations replayed
        typer.echo(f"OK: {result['files_checked']} files intact; {len(result['prompts'])} reference prompts re-run on "
                   f"{result['target']}, every greedy token the same")
        return _write_json(json_path, result)
    worst = max((o["max_abs_error"] for o in result["outputs"]), default=0.0)
    typer.echo(f"OK: {result['files_checked']} files intact; {result['reference_samples']} reference inputs re-run on "
               f"{result['target']}, max abs error {worst:.3g} (within tolerance)")
    _write_json(json_path, result)


def setup_arm64(
    runtimes: str = typer.Option("litert,ort,executorch", "--runtimes",
                                 help="Runtimes to install for arm64, comma-separated: litert, ort (together about 150 MB), "
                                      "executorch (its bindings link libtorch: torch's aarch64 wheel and CUDA libraries, a few GB)."),
) -> None:
    """Set up `compressor verify --on arm64` on this machine, once (as root): Debian's qemu-user-static and binfmt, an arm64
    Debian root built by mmdebstrap, and the runtimes' pinned aarch64 wheels; cached outside the checkout
    (COMPRESSOR_ARM64_ROOT, default ~/.cache/compressor/arm64-bookworm) and reused by every clone."""
    from compressor.app.api import setup_arm64 as run
    from compressor.core.files import fmt_size

    done = run([r.strip() for r in runtimes.split(",") if r.strip()])
    have = ", ".join(f"{k} ({', '.join(f'{d} {v}' for d, v in r['versions'].items())})" for k, r in done["runtimes"].items())
    typer.echo(f"arm64 environment ready at {done['root']} ({fmt_size(done['size_bytes'])}): {have}")


def report(
    results: list[Path] = typer.Argument(..., help="`compressor bench --json` results and/or bundles (folder or manifest.json)."),
    output: Path = typer.Option(..., "--output", "-o", help="The HTML file to write, e.g. report.html."),
) -> None:
    """One self-contained HTML page (no server, no network): sortable results table, latency/fidelity plot with its Pareto
    front, per-layer sensitivity and auto-precision charts, and the environment and method of each file."""
    from compressor.bundle.html import write_report

    path = write_report(results, output)
    typer.echo(f"report: {path}")


def targets(json_path: Optional[Path] = typer.Option(None, "--json", help="Write the list to this JSON file.")) -> None:
    """List every known target, whether it is usable on this machine, and if not, why."""
    from rich.table import Table

    from compressor.app.api import list_passes, list_realisers
    from compressor.app.api import list_targets as run
    from compressor.bundle.report import console
    from compressor.core.registry import load_errors
    from compressor.quantization import pipeline, realiser

    rows = run()
    table = Table(title="targets")
    for c in ("target", "backend", "device", "precision", "format", "usable here", "why not / description"):
        table.add_column(c, no_wrap=c != "why not / description")
    for r in rows:
        why = r["description"] + (f" (needs {r['needs']})" if r["needs"] else "") if r["usable"] else r["reason"]
        usable = "[green]yes[/]" if r["usable"] and r["runs_here"] else "[yellow]build only[/]" if r["usable"] else "[red]no[/]"
        if r["usable"] and not r["runs_here"]:
            why = f"{r['reason']}; {why}"
        table.add_row(r["name"], r["backend"], r["device"], r["precision"], r["format"], usable, why)
    console().print(table)
    from compressor.core.lm_targets import LM_TARGETS

    table = Table(title="language-model targets (--task text-generation; weight-only INT4/INT8 by AWQ, scale estimation, GPTQ)")
    for c in ("target", "runtime", "precision", "usable here", "why not / description"):
        table.add_column(c, no_wrap=c != "why not / description")
    lm_rows = []
    for t in LM_TARGETS.values():
        ok, why = t.available()
        table.add_row(t.name, t.runtime, t.precision, "[green]yes[/]" if ok else "[red]no[/]", t.description if ok else why)
        lm_rows.append({**t.to_dict(), "usable": ok, "reason": why, "description": t.description, "task": "text-generation"})
    console().print(table)
    table = Table(title="quantization realisers (a target's INT8 plan is written by the one its IR and flavour name)")
    for c in ("IR", "flavour", "provided by", "what it writes"):
        table.add_column(c, no_wrap=c != "what it writes")
    for r in list_realisers():
        table.add_row(r["ir"], r["flavour"], r["provided_by"], r["description"])
    console().print(table)
    table = Table(title="compression passes (float: on the model before planning; plan: on a calibrated INT8 plan)")
    for c in ("pass", "phase", "on with", "provided by", "what it does"):
        table.add_column(c, no_wrap=c not in ("what it does", "on with"))
    for r in list_passes():
        table.add_row(r["name"], r["phase"], r["switch"], r["provided_by"], r["description"])
    console().print(table)
    for kind, errors in (("backend", load_errors()), ("realiser", realiser.load_errors()), ("pass", pipeline.load_errors())):
        for name, why in errors.items():
            console().print(f"[red]{kind} '{name}' failed to load:[/] {why}")
    _write_json(json_path, rows + lm_rows)


def _register() -> None:
    """The commands, in the order `compressor --help` lists them."""
    if app.registered_commands:
        return
    _register_generated()
    app.command()(one_line_errors(verify))
    app.command("setup-arm64")(one_line_errors(setup_arm64))
    app.command()(one_line_errors(report))
    app.command()(one_line_errors(targets))


def run() -> None:  # console-script entry point
    from compressor.training import ddp

    group = ddp.launched()
    if group is not None:  # torchrun --nproc-per-node N compressor …: rank 0 runs the command, the others fine-tune with it
        ddp.join(group)
        if not group.main:
            from compressor.training.finetune import train

            ddp.serve(train)
            return
    _register()
    app()


if __name__ == "__main__":
    sys.exit(run())
