"""The ``compressor`` command. Flags are shortcuts for recipe fields (see compressor/recipe.py)."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import List, Optional

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
        except Exception as e:  # noqa: BLE001 - the point of this wrapper
            _fail(e)

    return wrapper


def _floats(text: Optional[str], flag: str) -> Optional[list[float]]:
    if text is None:
        return None
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        from compressor.core.errors import InputError

        raise InputError(f"{flag} takes numbers separated by commas, like 0.485,0.456,0.406; got '{text}'")


def _size(text: Optional[str], flag: str):
    if text is None:
        return None
    vals = [int(v) for v in _floats(text, flag)]
    return vals[0] if len(vals) == 1 else vals


def _write_json(path: Optional[Path], data) -> None:
    if path is None:
        return
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    tmp.rename(path)


P_MODEL, P_INPUT, P_PRE, P_DATA, P_GATE, P_QUANT, P_PRUNE, P_BENCH, P_OUT = (
    "Model", "Inputs", "Preprocessing", "Data", "Accuracy gate", "Quantization (INT8 targets)", "Pruning", "Benchmark", "Output")


@app.command()
@one_line_errors
def compress(
    checkpoint: Optional[Path] = typer.Argument(None, help="state_dict (.pt/.pth/.safetensors, with --arch), TorchScript, torch.export .pt2, or pickled module."),
    recipe: Optional[Path] = typer.Option(None, "--recipe", "-r", help="YAML/JSON recipe; flags override its fields."),
    arch: Optional[str] = typer.Option(None, help="Architecture for a state_dict: torchvision:<name> or package.module:callable.", rich_help_panel=P_MODEL),
    arch_kwargs: Optional[str] = typer.Option(None, help="JSON keyword arguments for --arch, e.g. '{\"num_classes\": 10}'.", rich_help_panel=P_MODEL),
    trust_checkpoint: Optional[bool] = typer.Option(None, "--trust-checkpoint", help="Allow unpickling a whole pickled module (runs code from the file).", rich_help_panel=P_MODEL),
    input_shape: Optional[List[str]] = typer.Option(None, help="Input shape, e.g. 1,3,224,224 or batch=1:32,3,224,224; repeat for several inputs.", rich_help_panel=P_INPUT),
    input_name: Optional[List[str]] = typer.Option(None, help="Input name, one per --input-shape (default: input).", rich_help_panel=P_INPUT),
    input_dtype: Optional[List[str]] = typer.Option(None, help="Input dtype (float32, int64, …): one, or one per input.", rich_help_panel=P_INPUT),
    output_name: Optional[List[str]] = typer.Option(None, help="Output names, one per model output.", rich_help_panel=P_INPUT),
    task: Optional[str] = typer.Option(None, help="What the first output is: auto | classification | embedding | other (decides which fidelity metrics apply).", rich_help_panel=P_MODEL),
    resize: Optional[str] = typer.Option(None, help="Resize images: shorter side (256) or H,W.", rich_help_panel=P_PRE),
    crop: Optional[str] = typer.Option(None, help="Centre crop: 224 or H,W.", rich_help_panel=P_PRE),
    interpolation: Optional[str] = typer.Option(None, help="nearest | bilinear | bicubic | lanczos.", rich_help_panel=P_PRE),
    scale: Optional[float] = typer.Option(None, help="Multiply pixel values (0..255) by this (default 1/255).", rich_help_panel=P_PRE),
    mean: Optional[str] = typer.Option(None, help="Per-channel mean after scaling, e.g. 0.485,0.456,0.406.", rich_help_panel=P_PRE),
    std: Optional[str] = typer.Option(None, help="Per-channel std after scaling, e.g. 0.229,0.224,0.225.", rich_help_panel=P_PRE),
    channel_order: Optional[str] = typer.Option(None, help="rgb | bgr.", rich_help_panel=P_PRE),
    layout: Optional[str] = typer.Option(None, help="nchw | nhwc.", rich_help_panel=P_PRE),
    target: Optional[str] = typer.Option(None, "--target", "-t", help="Target to build (see `compressor targets`). Default ort-cpu-fp32."),
    eval_data: Optional[str] = typer.Option(None, "--eval", help="Eval data: image folder, .npy/.npz, or package.module:function.", rich_help_panel=P_DATA),
    eval_labels: Optional[Path] = typer.Option(None, help="Labels for --eval: a 'file label' text file (images) or .npy (arrays).", rich_help_panel=P_DATA),
    eval_samples: Optional[int] = typer.Option(None, help="Use only the first N eval samples.", rich_help_panel=P_DATA),
    calib: Optional[str] = typer.Option(None, help="Calibration data (same forms as --eval).", rich_help_panel=P_DATA),
    calib_labels: Optional[Path] = typer.Option(None, help="Labels for --calib.", rich_help_panel=P_DATA),
    calib_samples: Optional[int] = typer.Option(None, help="Use at most N calibration samples.", rich_help_panel=P_DATA),
    synthetic: Optional[bool] = typer.Option(None, "--synthetic", help="No real data: validate on random inputs (marked synthetic everywhere).", rich_help_panel=P_DATA),
    max_accuracy_drop: Optional[float] = typer.Option(None, help="Fail if accuracy drops more than X percentage points (needs labels).", rich_help_panel=P_GATE),
    min_agreement: Optional[float] = typer.Option(None, help="Fail if top-1 agreement with FP32 is below X (0..1).", rich_help_panel=P_GATE),
    min_cosine: Optional[float] = typer.Option(None, help="Fail if the mean cosine similarity with FP32 outputs is below X (embeddings).", rich_help_panel=P_GATE),
    max_size_mb: Optional[float] = typer.Option(None, help="Fail if the model file(s) exceed X MB (says by how much).", rich_help_panel=P_GATE),
    max_memory_mb: Optional[float] = typer.Option(None, help="Fail if loading and running the model takes more than X MB (measured).", rich_help_panel=P_GATE),
    force: Optional[bool] = typer.Option(None, "--force", help="Write the bundle even if it fails its gate (marked as failing).", rich_help_panel=P_GATE),
    calibration: Optional[str] = typer.Option(None, help="Activation calibration: minmax | percentile | mse | entropy (default percentile).", rich_help_panel=P_QUANT),
    percentile: Optional[float] = typer.Option(None, help="Percentile for --calibration percentile (default 99.999).", rich_help_panel=P_QUANT),
    exclude: Optional[List[str]] = typer.Option(None, help="Keep layers float: a name or glob (layer4.*), re:<regex>, or type:<Conv2d|Linear|…>; repeatable.", rich_help_panel=P_QUANT),
    quantizer: Optional[str] = typer.Option(None, help="sdk (default: this SDK's plan) | nncf (OpenVINO INT8 only, for comparison).", rich_help_panel=P_QUANT),
    no_sensitivity: bool = typer.Option(False, "--no-sensitivity", help="Skip the per-layer sensitivity analysis of INT8 targets.", rich_help_panel=P_QUANT),
    prune_macs: Optional[float] = typer.Option(None, help="Prune channels until this fraction of MACs is gone (e.g. 0.5).", rich_help_panel=P_PRUNE),
    prune_ratio: Optional[float] = typer.Option(None, help="Prune this fraction of channels instead.", rich_help_panel=P_PRUNE),
    prune_heads: Optional[float] = typer.Option(None, help="Remove this fraction of attention heads (transformers).", rich_help_panel=P_PRUNE),
    prune_importance: Optional[str] = typer.Option(None, help="l1 | l2 (default) | taylor (needs labelled --finetune data) | bn_scale.", rich_help_panel=P_PRUNE),
    prune_global: Optional[bool] = typer.Option(None, "--prune-global", help="Rank channels across layers instead of per layer.", rich_help_panel=P_PRUNE),
    prune_exclude: Optional[List[str]] = typer.Option(None, help="Keep layers whole: name/glob, re:<regex>, type:<Conv2d|Linear>; repeatable.", rich_help_panel=P_PRUNE),
    round_to: Optional[int] = typer.Option(None, help="Round channel counts to this multiple (default: from the target's vector width).", rich_help_panel=P_PRUNE),
    save_pruned: Optional[Path] = typer.Option(None, help="Also write the pruned model as a .safetensors that reloads with --arch + the file.", rich_help_panel=P_PRUNE),
    prune_hook: Optional[str] = typer.Option(None, help="package.module:callable(model, step) run after each pruning step (your own training).", rich_help_panel=P_PRUNE),
    finetune: Optional[str] = typer.Option(None, "--finetune", help="Fine-tune after pruning on this data (same forms as --eval).", rich_help_panel=P_PRUNE),
    finetune_labels: Optional[Path] = typer.Option(None, help="Labels for --finetune.", rich_help_panel=P_PRUNE),
    finetune_samples: Optional[int] = typer.Option(None, help="Use at most N fine-tuning samples.", rich_help_panel=P_PRUNE),
    finetune_epochs: Optional[int] = typer.Option(None, help="Fine-tuning epochs (default 1; early stop on a held-out tenth).", rich_help_panel=P_PRUNE),
    finetune_lr: Optional[float] = typer.Option(None, help="Peak learning rate (one-cycle, AdamW; default 1e-3).", rich_help_panel=P_PRUNE),
    finetune_batch_size: Optional[int] = typer.Option(None, help="Fine-tuning batch size (default 64).", rich_help_panel=P_PRUNE),
    distill: Optional[bool] = typer.Option(None, "--distill", help="Distil from the unpruned model as well as the labels.", rich_help_panel=P_PRUNE),
    finetune_loss: Optional[str] = typer.Option(None, help="package.module:callable(student_out, teacher_out, labels) -> loss.", rich_help_panel=P_PRUNE),
    threads: Optional[int] = typer.Option(None, help="Threads for every runtime (default: all usable CPUs).", rich_help_panel=P_BENCH),
    batch_size: Optional[int] = typer.Option(None, help="Batch size for the benchmark (default 1).", rich_help_panel=P_BENCH),
    duration: Optional[float] = typer.Option(None, help="Minimum timed seconds per benchmark (default 3).", rich_help_panel=P_BENCH),
    iterations: Optional[int] = typer.Option(None, help="Minimum timed iterations per benchmark (default 50).", rich_help_panel=P_BENCH),
    no_benchmark: bool = typer.Option(False, "--no-benchmark", help="Skip benchmarking (no latency in the manifest).", rich_help_panel=P_BENCH),
    no_eager_baseline: bool = typer.Option(False, "--no-eager-baseline", help="Do not benchmark torch eager for the speed-up.", rich_help_panel=P_BENCH),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Bundle directory to write (must not exist).", rich_help_panel=P_OUT),
    overwrite: Optional[bool] = typer.Option(None, "--overwrite", help="Replace an existing bundle directory.", rich_help_panel=P_OUT),
    tar: Optional[bool] = typer.Option(None, "--tar", help="Also write BUNDLE.tar.gz.", rich_help_panel=P_OUT),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Also write the manifest's metrics to this JSON file.", rich_help_panel=P_OUT),
    analyze_only: bool = typer.Option(False, "--analyze-only", hidden=True, help="Used by `compressor analyze`."),
    bench_targets: Optional[str] = typer.Option(None, "--bench-targets", hidden=True, help="Used by `compressor bench --targets`."),
    batch_sizes: Optional[str] = typer.Option(None, help="`compressor bench --targets` only: batch sizes to sweep, e.g. 1,8,32.", rich_help_panel=P_BENCH),
    plot: Optional[Path] = typer.Option(None, help="`compressor bench --targets` only: write a PNG of latency against fidelity.", rich_help_panel=P_OUT),
) -> None:
    """Compress CHECKPOINT for a target: build, validate against FP32, benchmark, and write a bundle."""
    from compressor.app.api import _overrides
    from compressor.io.arch import parse_kwargs
    from compressor.app.compress import compress as run
    from compressor.app.recipe import build_config
    from compressor.bundle.report import print_table

    pre = {k: v for k, v in {
        "resize": _size(resize, "--resize"), "crop": _size(crop, "--crop"), "interpolation": interpolation,
        "scale": scale, "mean": _floats(mean, "--mean"), "std": _floats(std, "--std"),
        "channel_order": channel_order, "layout": layout,
    }.items() if v is not None}
    overrides = _overrides(
        checkpoint=checkpoint, arch=arch, arch_kwargs=parse_kwargs(arch_kwargs) if arch_kwargs else None,
        trust_checkpoint=trust_checkpoint, input_shape=input_shape or None, input_names=input_name or None,
        input_dtype=(input_dtype[0] if input_dtype and len(input_dtype) == 1 else input_dtype) or None,
        output_names=output_name or None, preprocessing=pre, target=target, eval=eval_data, eval_labels=eval_labels,
        eval_samples=eval_samples, calib=calib, calib_labels=calib_labels, calib_samples=calib_samples, synthetic=synthetic,
        max_accuracy_drop=max_accuracy_drop, min_agreement=min_agreement, min_cosine=min_cosine, task=task, max_size_mb=max_size_mb, max_memory_mb=max_memory_mb, force=force, threads=threads, batch_size=batch_size,
        duration=duration, iterations=iterations, benchmark=False if no_benchmark else None,
        compare_eager=False if no_eager_baseline else None, output=output, overwrite=overwrite, tar=tar,
        calibration=calibration, percentile=percentile, exclude=exclude or None, sensitivity=False if no_sensitivity else None, quantizer=quantizer,
        prune_macs=prune_macs, prune_ratio=prune_ratio, prune_heads=prune_heads, prune_importance=prune_importance,
        prune_global=prune_global, prune_exclude=prune_exclude or None, round_to=round_to, save_pruned=save_pruned,
        prune_hook=prune_hook, finetune=finetune, finetune_labels=finetune_labels, finetune_samples=finetune_samples,
        finetune_epochs=finetune_epochs, finetune_lr=finetune_lr, finetune_batch_size=finetune_batch_size, distill=distill,
        finetune_loss=finetune_loss,
    )
    if bench_targets is not None:
        overrides["output.path"] = None  # bench writes no bundle
    config = build_config(recipe, overrides)
    if analyze_only:
        return _print_analysis(config, json_path)
    if bench_targets is not None:
        return _run_multibench(config, bench_targets, batch_sizes, json_path, plot)
    if batch_sizes or plot:
        from compressor.core.errors import InputError

        raise InputError("--batch-sizes and --plot belong to `compressor bench MODEL --targets …`")
    result = run(config)
    print_table(result.rows, title=f"{Path(config.model.checkpoint).name} → {config.target}")
    status = "[green]passed its gate[/]" if result.passed else "[red]FAILED its gate (written because of --force)[/]"
    from compressor.bundle.report import console

    console().print(f"bundle: [bold]{result.bundle}[/] — {status}")
    _write_json(json_path, {"bundle": str(result.bundle), "passed": result.passed, "metrics": result.metrics})


def _run_multibench(config, targets: str, batch_sizes: Optional[str], json_path: Optional[Path], plot_path: Optional[Path]) -> None:
    from compressor.app import bench as multibench
    from compressor.bundle.report import console, print_table

    for p in (json_path, plot_path):
        if p is not None and not p.parent.exists():
            from compressor.core.errors import InputError

            raise InputError(f"the folder of '{p}' does not exist: create it first")
    result = multibench.bench_targets(config, targets, batch_sizes)
    env = result["environment"]["cpu"]
    print_table(multibench.table_rows(result), columns=multibench.TABLE_COLUMNS,
                title=f"{result['model']['checkpoint']} on {env['model']} — {result['settings']['threads']} threads, "
                      f"eval {result['eval']['samples']} samples{' (synthetic)' if result['eval']['synthetic'] else ''}")
    if json_path:
        multibench.write_json(json_path, result)
        console().print(f"results: {json_path}")
    if plot_path:
        multibench.plot(result, plot_path)
        console().print(f"plot: {plot_path}")


def _print_analysis(config, json_path: Optional[Path]) -> None:
    from rich.table import Table

    from compressor.app.compress import analyze as run_analysis
    from compressor.bundle.report import console

    result = run_analysis(config)
    q = result["quantization"]
    s = q["sensitivity"]
    sqnr = {d["layer"]: d["sqnr_db"] for d in s["all_quantized_worst_sqnr"]}
    table = Table(title=f"{result['model']} → {result['target']}: per-layer sensitivity on {s['samples']} samples "
                        f"(all INT8: output cosine {s['all_quantized']['cosine_mean']:.5f})")
    for c in ("rank", "layer", "op", "loss alone (1 − cosine)", "top-1 agreement alone", "SQNR all-INT8 (dB)"):
        table.add_column(c, justify="left" if c in ("layer", "op") else "right", no_wrap=c == "layer")
    for i, d in enumerate(s["layers_alone"], 1):
        agree = "–" if d["top1_agreement"] is None else f"{d['top1_agreement']:.3f}"
        table.add_row(str(i), d["layer"], d["op_type"], f"{d['loss']:.2e}", agree, f"{sqnr.get(d['layer'], float('nan')):.1f}")
    console().print(table)
    float_layers = q["float_layers"]
    if float_layers:
        console().print("kept float: " + "; ".join(f"{n} ({why})" for n, why in float_layers.items()))
    console().print("to keep a layer float: --exclude NAME (or a glob, re:REGEX, type:Conv2d)")
    _write_json(json_path, result)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@one_line_errors
def analyze(ctx: typer.Context) -> None:
    """Per-layer INT8 sensitivity (which layers to keep float). Takes every `compress` option; no bundle is written.

    Example: compressor analyze model.pth --arch torchvision:resnet18 --input-shape 1,3,224,224 --calib data/ --eval data/ --target ort-cpu-int8
    """
    args = list(ctx.args)
    if any(a in ("--output", "-o") for a in args):
        from compressor.core.errors import InputError

        raise InputError("analyze writes no bundle: drop --output (use --json PATH to save the table)")
    if not any(a in ("--target", "-t") or a.startswith("--target=") for a in args):
        args += ["--target", "ort-cpu-int8"]
    _forward("compress", args + ["--analyze-only"], "compressor analyze")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []})
@one_line_errors
def bench(ctx: typer.Context) -> None:
    """Benchmark. Two forms:

    compressor bench MODEL --targets LIST|all [compress options] [--batch-sizes 1,8,32] [--json R.json] [--plot R.png]:
    build every listed target from one checkpoint, validate each against FP32, benchmark each in a fresh process, one table.

    compressor bench ARTIFACT_OR_BUNDLE [--target T] [--threads N] [--batch-size B] [--duration S] [--json R.json]:
    benchmark something already built (see `compressor bench-artifact --help`).
    """
    args = list(ctx.args)
    if any(a in ("--help", "-h") for a in args) and not any(a.startswith("--targets") for a in args):
        typer.echo(ctx.get_help())
        return
    if any(a == "--targets" or a.startswith("--targets=") for a in args):
        args = ["--bench-targets" + a[len("--targets"):] if a.startswith("--targets") else a for a in args]
        return _forward("compress", args, "compressor bench")
    return _forward("bench-artifact", args, "compressor bench")


def _forward(command: str, args: list[str], prog: str) -> None:
    """Run another command's parser on ``args`` (one option list serves several entry points)."""
    code = typer.main.get_command(app).commands[command].main(args, prog_name=prog, standalone_mode=False)
    if isinstance(code, int) and code:
        raise typer.Exit(code)


@app.command("bench-artifact", hidden=False)
@one_line_errors
def bench_artifact(
    artifact: Path = typer.Argument(..., help="A bundle directory, a .tar.gz bundle, or an artifact file (.onnx, .pt2, .xml)."),
    target: Optional[str] = typer.Option(None, "--target", "-t", help="Target to run it as (default: the bundle's, or from the file suffix)."),
    threads: Optional[int] = typer.Option(None, help="Threads (default: all usable CPUs)."),
    batch_size: int = typer.Option(1, help="Batch size (must fit the artifact's input shapes)."),
    duration: float = typer.Option(3.0, help="Minimum timed seconds."),
    iterations: int = typer.Option(50, help="Minimum timed iterations."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write every figure, the settings and the environment to this JSON file."),
) -> None:
    """Benchmark an existing bundle or artifact in a fresh process."""
    from compressor.app.api import bench as run
    from compressor.bundle.report import print_table, row

    result = run(artifact, target=target, threads=threads, batch_size=batch_size, duration=duration, iterations=iterations)
    print_table([row(result["target"], result["precision"], result["size_bytes"], None, result, None)],
                title=f"{artifact} — {result['threads']} threads, batch {result['batch_size']}, {result['iterations']} iterations, feeds: {result['feeds']}",
                columns=("target", "precision", "size", "p50 ms", "p90 ms", "throughput/s", "peak RSS"))
    lat = result["latency_ms"]
    typer.echo(f"p99 {lat['p99']:.2f} ms, mean {lat['mean']:.2f} ms, load {result['load_time_s']:.2f} s")
    _write_json(json_path, result)


@app.command()
@one_line_errors
def verify(
    bundle: Path = typer.Argument(..., help="A bundle directory or .tar.gz."),
    threads: Optional[int] = typer.Option(None, help="Threads for the runtime."),
    json_path: Optional[Path] = typer.Option(None, "--json", help="Write the verification result to this JSON file."),
) -> None:
    """Re-check every file's sha256 and re-run the reference inputs through the artifact."""
    from compressor.app.api import verify as run

    result = run(bundle, threads=threads)
    worst = max((o["max_abs_error"] for o in result["outputs"]), default=0.0)
    typer.echo(f"OK: {result['files_checked']} files intact; {result['reference_samples']} reference inputs re-run on "
               f"{result['target']}, max abs error {worst:.3g} (within tolerance)")
    _write_json(json_path, result)


@app.command()
@one_line_errors
def targets(json_path: Optional[Path] = typer.Option(None, "--json", help="Write the list to this JSON file.")) -> None:
    """List every known target, whether it is usable on this machine, and if not, why."""
    from rich.table import Table

    from compressor.app.api import list_targets as run
    from compressor.bundle.report import console

    rows = run()
    table = Table(title="targets")
    for c in ("target", "device", "precision", "format", "usable here", "why not / description"):
        table.add_column(c, no_wrap=c != "why not / description")
    for r in rows:
        table.add_row(r["name"], r["device"], r["precision"], r["format"], "[green]yes[/]" if r["usable"] else "[red]no[/]",
                      r["description"] if r["usable"] else r["reason"])
    console().print(table)
    _write_json(json_path, rows)


def run() -> None:  # console-script entry point
    app()


if __name__ == "__main__":
    sys.exit(app())
