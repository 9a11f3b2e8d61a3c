"""compressor search on the bundled Fashion-MNIST CNN: a small real search (real ORT builds, validation, benchmarks in fresh
processes), resumed after a kill, the same candidates on a local Ray cluster, and each bad input refused in one line."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import FASHION, FASHION_ARCH, ROOT, cli, cli_in_process, one_line_error

SPACE = """search:
  space:
    precisions: [fp32, int8]
    prune_macs: [0, 0.5]
    calibrations: [mse, minmax]
    qat: [false]
"""


def search_args(out: Path, recipe: Path, data: Path, *extra: str) -> list[str]:
    return ["search", str(FASHION / "fashion_cnn.safetensors"), "--recipe", str(recipe), "--arch", FASHION_ARCH,
            "--input-shape", "1,1,28,28", "--scale", str(1 / 255), "--mean", "0.2860", "--std", "0.3530", "--eval", str(data),
            "--calib", str(data), "--targets", "ort-cpu-int8", "--max-accuracy-drop", "1", "--duration", "0.3", "--iterations", "10",
            "--output", str(out), *extra]


@pytest.fixture(scope="module")
def space_recipe(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("recipe") / "space.yaml"
    path.write_text(SPACE)
    return path


def trials(folder: Path) -> list:
    """The optuna trials of a search's journal."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return optuna.load_study(study_name="compressor-search", storage=JournalStorage(JournalFileBackend(str(folder / "trials.journal")))).trials


def records(folder: Path) -> list[dict]:
    """Every evaluated trial in a search's journal (repeat proposals answered from an earlier trial excluded)."""
    return [t.user_attrs["record"] for t in trials(folder) if "record" in t.user_attrs and "repeat_of" not in t.user_attrs]


@pytest.fixture(scope="module")
def size_search(tmp_path_factory, space_recipe, fashion_small):
    """A search for the smallest candidate within 1 accuracy point: 5 trials, TPE (seed 0) after 3 start-up trials."""
    out = tmp_path_factory.mktemp("search") / "best"
    res = cli(*search_args(out, space_recipe, fashion_small, "--objective", "size", "--trials", "5", "--keep-pareto",
                           "--json", str(out.parent / "r.json")))
    assert res.returncode == 0, res.stderr[-3000:]
    return out, res


def test_search_writes_the_best_feasible_candidate(size_search):
    out, res = size_search
    folder = out.with_name("best-search")
    result = json.loads((out.parent / "r.json").read_text())
    trials = json.loads((folder / "search.json").read_text())["trials"]
    assert len(trials) == 5 and len({json.dumps(t["point"]) for t in trials}) == 5  # five distinct candidates
    feasible = [t for t in trials if t["status"] == "feasible"]
    chosen = result["chosen"]
    assert chosen["status"] == "feasible" and chosen["size_mb"] == min(t["size_mb"] for t in feasible)
    assert chosen["fidelity"]["accuracy_drop_pp"] <= 1 and chosen["p50_ms"] > 0  # measured, in its fresh process
    plain = [t for t in trials if t["baseline"]]
    assert [t["label"] for t in plain] == ["ort-cpu-int8, mse"]  # the plain compress of the listed target, evaluated first
    assert plain[0]["trial"] == 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["gate"]["passed"] and manifest["target"]["name"] == chosen["target"]
    assert manifest["recipe"]["quantization"]["calibration"] == (chosen["point"]["calibration"] or "mse")
    assert manifest["artifact"]["size_bytes"] / 2**20 == pytest.approx(chosen["size_mb"])
    assert (folder / "search.png").read_bytes()[:4] == b"\x89PNG"
    md = (folder / "SEARCH.md").read_text()
    assert md.count("\n| ") == 6 and "★ chosen" in md  # header and one row per trial
    for t in trials:  # infeasible candidates are not benchmarked: a budget already failed
        assert (t["p50_ms"] is not None) == (t["status"] == "feasible"), t
    assert cli_verify(out).returncode == 0
    front = json.loads((folder / "search.json").read_text())["pareto"]
    assert chosen["trial"] in front and result["pareto"] == front
    kept = sorted((folder / "pareto").iterdir())
    assert [int(p.name.split("-")[1]) for p in kept] == sorted(front)  # --keep-pareto: one bundle per trial of the front
    assert all(json.loads((p / "manifest.json").read_text())["gate"]["passed"] for p in kept)


def test_grid_sampler_walks_the_space_in_order_and_time_budget_stops(tmp_path, space_recipe, fashion_small):
    res = cli(*search_args(tmp_path / "grid", space_recipe, fashion_small, "--sampler", "grid", "--trials", "2"))
    assert res.returncode == 0, res.stderr[-3000:]
    labels = [t["label"] for t in json.loads((tmp_path / "grid-search" / "search.json").read_text())["trials"]]
    assert labels == ["ort-cpu-int8, mse", "ort-cpu-fp32"]  # the plain compress, then the grid from its first point
    res = cli(*search_args(tmp_path / "quick", space_recipe, fashion_small, "--trials", "4", "--time-budget", "0.5s"))
    assert res.returncode == 0, res.stderr[-3000:]
    assert "--time-budget 0.5 s reached after 1 trial(s)" in res.stderr
    assert len(json.loads((tmp_path / "quick-search" / "search.json").read_text())["trials"]) == 1


def cli_verify(bundle: Path):
    return cli("verify", str(bundle))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_head():
    """A local Ray cluster with 2 CPUs, started for the test and stopped after it."""
    ray = shutil.which("ray", path=str(Path(sys.executable).parent))
    port = _free_port()
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run([ray, "start", "--head", "--num-cpus", "2", "--port", str(port), "--include-dashboard", "false",
                    "--disable-usage-stats"], check=True, capture_output=True, env=env, timeout=180)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True, env=env, timeout=120)


@pytest.mark.slow
def test_ray_executor_evaluates_the_same_candidates(tmp_path, space_recipe, fashion_small, size_search, ray_head):
    out = tmp_path / "best"
    res = cli(*search_args(out, space_recipe, fashion_small, "--objective", "size", "--trials", "5", "--executor", "ray",
                           "--ray-address", ray_head))
    assert res.returncode == 0, res.stderr[-3000:]
    local = json.loads((size_search[0].with_name("best-search") / "search.json").read_text())["trials"]
    remote = json.loads((tmp_path / "best-search" / "search.json").read_text())["trials"]
    assert [t["point"] for t in remote] == [t["point"] for t in local]
    assert [t["status"] for t in remote] == [t["status"] for t in local]
    assert all(t["node"]["hostname"] and t["node"]["cpu"] for t in remote)  # each result carries the environment of its node
    assert json.loads((out / "manifest.json").read_text())["gate"]["passed"]


@pytest.mark.slow
def test_a_killed_search_resumes_without_evaluating_a_trial_twice(tmp_path, space_recipe, fashion_small):
    out = tmp_path / "best"
    args = search_args(out, space_recipe, fashion_small, "--trials", "5")
    code = f"import sys\nfrom compressor.app.cli import run\nsys.argv = ['compressor'] + {args!r}\nrun()"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}, start_new_session=True)
    seen = []
    deadline = time.time() + 300
    for line in proc.stderr:
        if line.startswith("trial "):
            seen.append(line)
        if len(seen) == 2 or time.time() > deadline:
            break
    def running():
        return [t for t in trials(tmp_path / "best-search") if "point" in t.user_attrs and "record" not in t.user_attrs]

    while not running() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # in the middle of the third trial
    proc.wait(timeout=60)
    assert len(seen) == 2, seen
    before = records(tmp_path / "best-search")
    assert len(before) == 2 and not out.exists()
    killed = running()
    assert len(killed) == 1
    res = cli(*args)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "resuming" in res.stderr and "2 candidate(s) already evaluated" in res.stderr
    after = records(tmp_path / "best-search")
    keys = [json.dumps(r["point"]) for r in after]
    assert len(after) == 5 and len(set(keys)) == 5  # five candidates, none evaluated twice
    assert [r["point"] for r in after[:2]] == [r["point"] for r in before]
    assert after[2]["point"] == killed[0].user_attrs["point"]  # the interrupted trial never finished: it is evaluated first
    assert (out / "manifest.json").exists()


@pytest.mark.parametrize("extra, needles", [
    (["--no-benchmark", "--max-latency-ms", "5"], ["--max-latency-ms", "--no-benchmark"]),
    (["--max-latency-ms", "-1"], ["--max-latency-ms", "greater than 0"]),
    (["--max-accuracy-drop", "0"], ["leaves no room"]),
    (["--targets", "tensorrt-gpu-int8"], ["search space is empty", "tensorrt-gpu-int8", "cannot run here"]),
    (["--executor", "ray", "--ray-address", "127.0.0.1:1"], ["cannot reach the Ray cluster at 127.0.0.1:1"]),
    (["--time-budget", "ten minutes"], ["--time-budget", "10m"]),
])
def test_bad_search_input_is_one_line_and_writes_nothing(tmp_path, space_recipe, fashion_small, extra, needles):
    out = tmp_path / "best"
    args = search_args(out, space_recipe, fashion_small, "--trials", "2")
    if "--max-accuracy-drop" in extra:  # replace the default budget
        i = args.index("--max-accuracy-drop")
        del args[i:i + 2]
    if "--targets" in extra:
        i = args.index("--targets")
        del args[i:i + 2]
    one_line_error(cli_in_process(*args, *extra), *needles)
    assert not out.exists() and not (tmp_path / "best-search").exists()


def test_no_feasible_trial_exits_non_zero_with_the_closest(tmp_path, space_recipe, fashion_small):
    out = tmp_path / "best"
    res = cli(*search_args(out, space_recipe, fashion_small, "--trials", "2", "--max-latency-ms", "0.00001"))
    line = one_line_error(res, "no trial met the budgets", "closest", "p50 latency")
    assert "trial 1" in line
    assert not out.exists() and (tmp_path / "best-search" / "SEARCH.md").exists()  # the table of what was tried is kept


@pytest.mark.slow  # runs the module's 5-trial search (size_search) first: 20-26 s
def test_resume_against_another_search_is_refused(size_search, space_recipe, fashion_small):
    out = size_search[0]
    res = cli(*search_args(out, space_recipe, fashion_small, "--objective", "size", "--trials", "5", "--seed", "7", "--overwrite"))
    one_line_error(res, "holds trials of a search with different settings (search.seed)", "cannot be resumed")
    res = cli(*search_args(out, space_recipe, fashion_small, "--objective", "size", "--trials", "5", "--overwrite",
                           "--max-accuracy-drop", "2"))
    one_line_error(res, "different settings (gate.max_accuracy_drop)")
    # a setting no hand-written list named (QAT epochs): the trials are not reused
    res = cli(*search_args(out, space_recipe, fashion_small, "--objective", "size", "--trials", "5", "--overwrite", "--qat-epochs", "3"))
    one_line_error(res, "different settings (qat.epochs)")
    assert json.loads((out / "manifest.json").read_text())["gate"]["passed"]  # the bundle of the first search is untouched


def test_ddp_with_more_processes_than_shards_is_refused(tmp_path):
    out = tmp_path / "out"
    res = cli("compress", str(FASHION / "fashion_cnn.safetensors"), "--recipe", str(FASHION / "fashion_cnn.yaml"), "--target",
              "ort-cpu-fp32", "--prune-macs", "0.25", "--ddp", "4", "--finetune-batch-size", "2", "--no-benchmark", "--output", str(out))
    one_line_error(res, "--ddp 4", "only 2 sample(s) per batch")
    assert not out.exists()


@pytest.mark.slow
def test_ddp_finetuning_with_two_gloo_processes_matches_one(tmp_path):
    """Pruning recovery on 6,000 Fashion-MNIST images: 2 processes (gloo, each half of every batch) within 0.5 point of 1."""
    import compressor

    acc = {}
    for n in (1, 2):
        r = compressor.compress(FASHION / "fashion_cnn.safetensors", recipe=FASHION / "fashion_cnn.yaml", target="ort-cpu-fp32",
                                prune_macs=0.25, ddp=n, output=tmp_path / f"ddp{n}", benchmark=False)
        ft = r.manifest["pruning"]["finetune"]
        assert ft["processes"] == n and ft["history"][-1]["seconds"] > 0
        acc[n] = r.fidelity["accuracy"]
    assert abs(acc[2] - acc[1]) <= 0.005, acc
    assert acc[2] > 0.85  # it trained: the pruned model without recovery is far below
