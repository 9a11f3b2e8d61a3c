"""Faults: Ctrl-C, a full disk, a benchmark worker killed, two runs side by side. Nothing half-written, the rest goes on."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from tests.conftest import FASHION_ARCH, ROOT, cli, fashion_args, one_line_error, read_manifest


def _leftovers(parent, tmpdir):
    """Our staging folders beside the output, and our temporary folders (compressor-*; the libraries keep caches there)."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(".")) + sorted(
        p.name for p in tmpdir.iterdir() if p.name.startswith("compressor-"))


def test_ctrl_c_during_compress_leaves_nothing(tmp_path, fashion_ckpt, fashion_small):
    out, tmpdir = tmp_path / "out", tmp_path / "tmp"
    tmpdir.mkdir()
    args = fashion_args(fashion_ckpt, fashion_small, out, "--target", "ort-cpu-int8", "--calib", str(fashion_small), "--duration", "30")
    proc = _start(args, TMPDIR=str(tmpdir))
    deadline = time.time() + 300
    while time.time() < deadline and not any(p.name.startswith("compressor-session-") for p in tmpdir.iterdir()):
        time.sleep(0.2)  # the session holds its working files: the run is under way
    time.sleep(6)  # building or benchmarking (the benchmark alone takes 30 s)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert not out.exists() and _leftovers(tmp_path, tmpdir) == [], _leftovers(tmp_path, tmpdir)


def test_full_disk_while_writing_the_bundle(tmp_path, fashion_ckpt, fashion_small):
    prelude = ("import errno, compressor.bundle.writer as w\n"
               "def full(*a, **k): raise OSError(errno.ENOSPC, 'No space left on device', a[1] if len(a) > 1 else None)\n"
               "w.shutil.copy2 = full")
    out = tmp_path / "out"
    res = cli(*fashion_args(fashion_ckpt, fashion_small, out, "--no-benchmark"), prelude=prelude)
    one_line_error(res, "No space left on device", "nothing was written")
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def _start(args, **env):
    # A shell that starts a job in the background (CI runners, `make test &`) hands it SIGINT ignored, and Python keeps that:
    # restore Ctrl-C's default handling, as a user's terminal has it
    code = ("import signal, sys\nsignal.signal(signal.SIGINT, signal.default_int_handler)\nfrom compressor.app.cli import run\n"
            f"sys.argv = ['compressor'] + {list(map(str, args))!r}\nrun()")
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200", **env})


def _children(parent):
    """Process ids whose parent is ``parent``, read from /proc (``ps`` cuts long command lines at the terminal's width)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue  # gone meanwhile
            if int(stat.rsplit(")", 1)[1].split()[1]) == parent:  # fields after "(comm)": state, ppid, ...
                out.append(int(entry))
    return out


def _cmdline(pid):
    try:
        return open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def test_a_killed_benchmark_worker_leaves_a_failed_row(tmp_path, fashion_ckpt):
    proc = _start(["bench", fashion_ckpt, "--arch", FASHION_ARCH, "--input-shape", "1,1,28,28", "--synthetic", "--targets",
                   "ort-cpu-fp32,openvino-cpu-fp32", "--duration", "2", "--json", tmp_path / "r.json"])
    killed, deadline = [], time.time() + 300
    while not killed and proc.poll() is None and time.time() < deadline:
        for pid in _children(proc.pid):
            if "compressor.evaluation.bench_worker" in _cmdline(pid):  # only our run's worker
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                break
        time.sleep(0.05)
    _, err = proc.communicate(timeout=600)
    assert killed and proc.returncode == 0, err
    rows = json.loads((tmp_path / "r.json").read_text())["rows"]
    batches = [b for r in rows for b in (r.get("batches") or {}).values()]
    assert sum("killed by SIGKILL" in b.get("error", "") for b in batches) == 1, batches
    assert sum("latency_ms" in b for b in batches) >= 2  # the other targets (and the eager baseline) were measured


def test_two_runs_into_the_same_folder(tmp_path, fashion_ckpt, fashion_small):
    procs = [_start(fashion_args(fashion_ckpt, fashion_small, tmp_path / name, "--no-benchmark")) for name in ("a", "b")]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    for name in ("a", "b"):
        assert cli("verify", str(tmp_path / name)).returncode == 0
        assert read_manifest(tmp_path / name)["target"]["name"] == "ort-cpu-fp32"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]
