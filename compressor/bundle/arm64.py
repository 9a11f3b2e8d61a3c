"""``compressor verify BUNDLE --on arm64``: re-run an edge bundle's reference inputs on an emulated Arm CPU with the
bundle's own runtime, before it ships.

The environment (``compressor setup-arm64``, cached outside the checkout, shared by every clone on the machine):
- Debian's ``qemu-user-static`` with ``binfmt-support``: aarch64 binaries run through qemu's user-mode emulator;
- an arm64 Debian root made by ``mmdebstrap`` (minbase and python3);
- the runtimes' aarch64 wheels, pinned by constraints.txt, installed by the host's pip with ``--platform`` (pip under
  emulation takes a minute per 100 MB): LiteRT and ONNX Runtime in one folder, ExecuTorch (whose Python bindings link
  libtorch, so torch's aarch64 wheel comes too, a few GB) in another.

Each run enters the root with ``chroot`` in a private mount namespace (its own ``/proc``; a small fake
``/sys/devices/system/cpu``, which XNNPACK reads: the host's ``/sys`` crashes oneDNN there) and pins the emulated CPU with
``QEMU_CPU``. qemu's default ``max`` advertises SME, under which XNNPACK's int8 kernels gave wrong outputs (and ``-cpu max``
crashed), so only named cores without SME are accepted, and the worker records the hardware capabilities the emulated
process saw (``/proc/self/auxv``), SME among them.

Emulated time is recorded as such and is never device latency.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from compressor.core.errors import InputError, TargetError, VerificationError

#: ISAs ``--on`` knows
ISAS = ("arm64",)
#: qemu CPU models that may be emulated (none advertises SME), and what each stands for
CPU_MODELS = {
    "cortex-a53": "Cortex-A53: in-order Armv8.0 core of low-end phones and boards (no fp16 arithmetic, no dot product)",
    "cortex-a72": "Cortex-A72: Raspberry Pi 4 class Armv8.0 core",
    "cortex-a76": "Cortex-A76: Armv8.2 phone big core (fp16 arithmetic, dot product)",
    "neoverse-n1": "Neoverse-N1: Armv8.2 server core, A76 class (fp16 arithmetic, dot product)",
    "neoverse-v1": "Neoverse-V1: Armv8.4 server core with SVE (no SME)",
}
DEFAULT_CPUS = ("cortex-a53", "neoverse-n1")
SUITE = "bookworm"
#: each runtime: the folder under /opt in the root, the distributions installed there with their dependencies, and those
#: installed without (ExecuTorch's own dependencies are its exporter's; running a .pte needs only its bindings and torch).
#: Versions are constraints.txt's.
RUNTIME_GROUPS = {"litert": ("light", ("ai-edge-litert", "numpy"), ()), "ort": ("light", ("onnxruntime", "numpy"), ()),
                  "executorch": ("executorch", ("torch", "numpy"), ("executorch",))}
WORKER = "edge_worker.py"
HWCAP_BITS = {"fp": (16, 0), "asimd": (16, 1), "fphp": (16, 9), "asimdhp": (16, 10), "asimddp": (16, 20), "sve": (16, 22),
              "i8mm": (26, 13), "bf16": (26, 14), "sme": (26, 23)}


#: glibc of the root's Debian release: every manylinux tag up to it is installable there (NCCL's aarch64 wheel is 2_18)
GLIBC = (2, 36)
#: the host's pip installing aarch64 wheels for the root's Python 3.11 (pip under emulation takes a minute per 100 MB)
AARCH64_PIP = (sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-warn-conflicts", "--upgrade",
               *(a for minor in range(GLIBC[1], 16, -1) for a in ("--platform", f"manylinux_2_{minor}_aarch64")),
               "--platform", "manylinux2014_aarch64", "--python-version", "3.11", "--implementation", "cp", "--abi", "cp311",
               "--only-binary=:all:")


def root_dir() -> Path:
    """Where the arm64 root lives: ``COMPRESSOR_ARM64_ROOT``, else ``~/.cache/compressor/arm64-bookworm``."""
    env = os.environ.get("COMPRESSOR_ARM64_ROOT")
    return Path(env) if env else Path.home() / ".cache" / "compressor" / f"arm64-{SUITE}"


def _stamp(root: Path) -> Path:
    return root / "opt" / "compressor-arm64.json"


def emulation_problem() -> str | None:
    """Why aarch64 binaries cannot be run here (None when they can)."""
    if os.name != "posix" or not Path("/proc/sys/fs/binfmt_misc").is_dir():
        return "this machine has no binfmt_misc (Linux user-mode emulation needs it)"
    entry = Path("/proc/sys/fs/binfmt_misc/qemu-aarch64")
    if not entry.is_file() or "enabled" not in entry.read_text():
        return "qemu-aarch64 is not registered with binfmt_misc: run `compressor setup-arm64` (as root)"
    if "flags: " in entry.read_text() and "F" not in entry.read_text().split("flags: ", 1)[1].split()[0]:
        return "the qemu-aarch64 binfmt entry lacks the F flag (the emulator must be usable inside a chroot): reinstall qemu-user-static"
    return None


def environment_problem(runtime: str | None = None) -> str | None:
    """Why ``verify --on arm64`` cannot run here for ``runtime`` (None when it can)."""
    problem = emulation_problem()
    if problem:
        return problem
    root = root_dir()
    if not _stamp(root).is_file():
        return f"there is no arm64 environment at {root}: run `compressor setup-arm64` (or `make arm64`) once on this machine"
    if os.geteuid() != 0:
        return "entering the arm64 root needs chroot, i.e. root: run as root"
    if runtime:
        have = json.loads(_stamp(root).read_text()).get("runtimes", {})
        if runtime not in have:
            return f"the arm64 environment at {root} has no {runtime} runtime: run `compressor setup-arm64 --runtimes {runtime}`"
    return None


def installed() -> dict[str, Any]:
    """What ``setup`` recorded (empty when there is no environment)."""
    stamp = _stamp(root_dir())
    return json.loads(stamp.read_text()) if stamp.is_file() else {}


def _pins(constraints: Path) -> dict[str, str]:
    pins = {}
    for line in constraints.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.strip().lower()] = version.strip()
    return pins


def _run(cmd: list[str], what: str, **kw) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if done.returncode != 0:
        tail = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise TargetError(f"arm64 setup: {what} failed ({tail})")


def setup(runtimes: list[str], constraints: Path, progress) -> dict[str, Any]:
    """Install the emulator, build the root and install the runtimes' aarch64 wheels; idempotent (each step is skipped when
    its result is there). Returns what was installed, with sizes and times."""
    unknown = [r for r in runtimes if r not in RUNTIME_GROUPS]
    if unknown:
        raise InputError(f"unknown arm64 runtime '{unknown[0]}': choose from {', '.join(RUNTIME_GROUPS)}")
    if not constraints.is_file():
        raise TargetError(f"arm64 setup pins the runtimes by {constraints.name}, which is not at {constraints}: run it from a checkout")
    if os.geteuid() != 0:
        raise TargetError("compressor setup-arm64 installs Debian packages and builds a chroot: run it as root")
    root, times = root_dir(), {}
    if not (shutil.which("qemu-aarch64-static") and shutil.which("mmdebstrap") and shutil.which("update-binfmts")):
        if not shutil.which("apt-get"):
            raise TargetError("arm64 setup needs Debian's qemu-user-static, binfmt-support and mmdebstrap, and this machine has no apt-get")
        t0 = time.perf_counter()
        with progress.stage("apt-get install qemu-user-static binfmt-support mmdebstrap"):
            env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
            _run(["apt-get", "update", "-qq"], "apt-get update", env=env)
            _run(["apt-get", "install", "-y", "-qq", "qemu-user-static", "binfmt-support", "mmdebstrap"], "apt-get install", env=env)
        times["apt_s"] = round(time.perf_counter() - t0, 1)
    if not Path("/proc/sys/fs/binfmt_misc/register").exists():
        _run(["mount", "-t", "binfmt_misc", "binfmt_misc", "/proc/sys/fs/binfmt_misc"], "mounting binfmt_misc")
    if emulation_problem():
        _run(["update-binfmts", "--enable", "qemu-aarch64"], "update-binfmts --enable qemu-aarch64")
    problem = emulation_problem()
    if problem:
        raise TargetError(f"arm64 setup: {problem}")
    if not (root / "usr" / "bin" / "python3").is_file():
        t0 = time.perf_counter()
        tmp = root.with_name(root.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.parent.mkdir(parents=True, exist_ok=True)
        with progress.stage(f"arm64 Debian {SUITE} root (mmdebstrap, minbase + python3; a few minutes)"):
            _run(["mmdebstrap", "--quiet", "--arch=arm64", "--variant=minbase", "--include=python3", "--mode=root", SUITE, str(tmp)],
                 "mmdebstrap")
        shutil.rmtree(root, ignore_errors=True)
        tmp.rename(root)
        times["root_s"] = round(time.perf_counter() - t0, 1)
    stamp = json.loads(_stamp(root).read_text()) if _stamp(root).is_file() else {"runtimes": {}}
    pins = _pins(constraints)
    for runtime in runtimes:
        group, dists, bare = RUNTIME_GROUPS[runtime]
        want = {d: pins.get(d) for d in (*dists, *bare)}
        if stamp["runtimes"].get(runtime, {}).get("versions") == want:
            continue
        missing = [d for d, v in want.items() if v is None]
        if missing:
            raise TargetError(f"arm64 setup: {missing[0]} has no pin in {constraints}")
        t0 = time.perf_counter()
        target = root / "opt" / group
        with progress.stage(f"aarch64 wheels for {runtime} ({', '.join(f'{d}=={v}' for d, v in want.items())})"):
            for names, deps in ((dists, ()), (bare, ("--no-deps",))):
                if names:
                    _run([*AARCH64_PIP, "--target", str(target), "-c", str(constraints), *deps, *(f"{d}=={want[d]}" for d in names)],
                         f"pip install ({runtime})")
        stamp["runtimes"][runtime] = {"folder": f"/opt/{group}", "versions": want, "seconds": round(time.perf_counter() - t0, 1)}
        _stamp(root).parent.mkdir(parents=True, exist_ok=True)
        _stamp(root).write_text(json.dumps(stamp, indent=1))  # what is installed so far survives a later failure
    stamp.update({"suite": SUITE, "root": str(root), "size_bytes": _size(root), **{k: v for k, v in times.items()}})
    _stamp(root).parent.mkdir(parents=True, exist_ok=True)
    _stamp(root).write_text(json.dumps(stamp, indent=1))
    return stamp


def _size(path: Path) -> int:
    total = 0
    for p in path.rglob("*"):
        if p.is_file() and not p.is_symlink() and not str(p).startswith(str(path / "proc")):
            total += p.stat().st_size
    return total


def _fake_sysfs(root: Path, cpus: int) -> None:
    """XNNPACK's cpuinfo reads the possible and present CPUs from sysfs; the host's sysfs is not given to the root."""
    cpu = root / "sys" / "devices" / "system" / "cpu"
    cpu.mkdir(parents=True, exist_ok=True)
    for name in ("possible", "present", "online"):
        (cpu / name).write_text(f"0-{cpus - 1}\n" if cpus > 1 else "0\n")


AUXV_SNIPPET = """
import struct
caps = {}
with open('/proc/self/auxv', 'rb') as f:
    data = f.read()
for i in range(0, len(data) - 15, 16):
    k, v = struct.unpack('<QQ', data[i:i + 16])
    if k in (16, 26):
        caps[k] = v
"""


def run_worker(runtime: str, bundle: Path, artifact: str, inputs: Path, names: list[str], batch: int, cpu: str,
               threads: int, worker: Path, timeout: int = 3600) -> tuple[list[np.ndarray], dict[str, Any]]:
    """Run ``worker`` on ``bundle``'s ``artifact`` inside the root on the emulated ``cpu``; (outputs, what the worker
    reported). A crash raises VerificationError naming the signal; nothing of the bundle is changed."""
    check_cpus([cpu])
    root = root_dir()
    info = installed()["runtimes"][runtime]
    _fake_sysfs(root, threads)
    (root / "tmp").mkdir(exist_ok=True)
    job = Path(tempfile.mkdtemp(prefix="compressor-job-", dir=root / "tmp"))
    try:
        shutil.copytree(bundle, job / "bundle")
        shutil.copy(inputs, job / "inputs.npz")
        shutil.copy(worker, job / WORKER)
        (job / "caps.py").write_text(AUXV_SNIPPET + "bits = " + repr(HWCAP_BITS) + "\nimport json\n"
                                     "print(json.dumps({n: bool(caps.get(k, 0) >> b & 1) for n, (k, b) in bits.items()}))\n")
        inner = f"/{job.relative_to(root)}"
        env = ["env", "-i", f"QEMU_CPU={cpu}", f"PYTHONPATH={info['folder']}", "PATH=/usr/bin:/bin", "HOME=/tmp",
               "TF_CPP_MIN_LOG_LEVEL=3", "PYTHONDONTWRITEBYTECODE=1", "PYTHONWARNINGS=ignore"]
        enter = f"chroot {root} {' '.join(env)} /usr/bin/python3"
        script = (f"mount -t proc proc {root}/proc && {enter} {inner}/{WORKER} {runtime} {inner}/bundle/{artifact} "
                  f"{inner}/inputs.npz {inner}/outputs.npz --names {','.join(names)} --batch {batch} --threads {threads} "
                  f"&& {enter} {inner}/caps.py")
        t0 = time.perf_counter()
        try:
            done = subprocess.run(["unshare", "--mount", "--fork", "sh", "-c", script], capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise VerificationError(f"the emulated {cpu} run of {runtime} took over {timeout} s and was stopped: the bundle is kept "
                                    "as it was") from None
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            code = done.returncode - 128 if done.returncode > 128 else -done.returncode
            if code in signal.valid_signals():
                raise VerificationError(f"the emulated {cpu} run of {runtime} crashed with {signal.Signals(code).name}: the bundle "
                                        "is kept as it was; try another --cpu, and report the artifact")
            tail = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
            raise VerificationError(f"the emulated {cpu} run of {runtime} failed: {tail[:400]}")
        lines = [json.loads(ln) for ln in done.stdout.splitlines() if ln.startswith("{")]
        report, caps = lines[0], lines[-1]
        with np.load(job / "outputs.npz") as z:
            outs = [z[f"output_{k}"] for k in range(len(z.files))]
        return outs, {**report, "cpu": cpu, "hwcaps": caps, "emulated_wall_s": round(wall, 1)}
    finally:
        shutil.rmtree(job, ignore_errors=True)


def check_isa(isa: str) -> str:
    if isa not in ISAS:
        raise InputError(f"unknown ISA '{isa}' for --on: choose from {', '.join(ISAS)}")
    return isa


def parse_cpus(text: str | None) -> list[str]:
    """``cortex-a53,neoverse-n1`` → the list (the default CPUs when empty)."""
    cpus = [c.strip() for c in (text or "").split(",") if c.strip()]
    return cpus or list(DEFAULT_CPUS)


def check_cpus(cpus: list[str]) -> list[str]:
    for cpu in cpus:
        if cpu not in CPU_MODELS:
            why = " (qemu's max advertises SME, under which XNNPACK's int8 kernels give wrong outputs)" if cpu.startswith("max") else ""
            raise InputError(f"unknown or unsafe emulated CPU '{cpu}'{why}: choose from {', '.join(CPU_MODELS)}")
    return cpus


def qemu_version() -> str:
    try:
        out = subprocess.run(["qemu-aarch64-static", "--version"], capture_output=True, text=True, timeout=30).stdout
        return out.splitlines()[0].strip() if out else "unknown"
    except OSError:
        return "unknown"
