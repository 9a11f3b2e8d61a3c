"""`compressor verify BUNDLE --on arm64` (and `compress --verify-on arm64`): edge bundles re-run by their own runtime on
emulated Arm CPUs (qemu user mode, an arm64 Debian root, the runtimes' aarch64 wheels).

The refusals run everywhere. The emulated runs are marked ``arm64`` (and slow): they need `compressor setup-arm64` (`make
arm64`) on the machine, and skip with the reason where it is not there or emulation is impossible."""

import json
import shutil
import textwrap

import numpy as np
import pytest

import compressor
from compressor.bundle import arm64
from compressor.core.errors import InputError, VerificationError

from .conftest import FASHION, FASHION_ARCH, cli, cli_in_process, one_line_error, read_manifest

SMALL = dict(input_shape="1,1,28,28", duration=0.3, iterations=10)  # the bundles of test_edge and test_manifest, shared
ORT_FP32 = dict(calib=None, max_accuracy_drop=0.1, tar=True, duration=0.3, iterations=10)


def _env(runtime: str) -> None:
    problem = arm64.environment_problem(runtime)
    if problem:
        pytest.skip(f"no arm64 check here: {problem}")


def _rehash(bundle) -> None:
    """Make the manifest list the bundle's files as they are now (a tampered bundle whose hashes were fixed up too: only a
    re-run can catch it)."""
    from compressor.core.files import sha256_file

    m = read_manifest(bundle)
    m["files"] = {rel: sha256_file(bundle / rel) for rel in m["files"]}
    (bundle / "manifest.json").write_text(json.dumps(m, indent=2))


# --- refusals: one line, a non-zero exit, nothing changed -------------------------------------------------------------------

def test_unknown_isa_and_unsafe_cpu_are_refused_in_one_line(tmp_path):
    one_line_error(cli_in_process("verify", str(tmp_path), "--on", "riscv64"), "unknown ISA 'riscv64'", "arm64")
    one_line_error(cli_in_process("verify", str(tmp_path), "--on", "arm64", "--cpu", "max"), "unsafe emulated CPU 'max'", "SME")
    one_line_error(cli_in_process("verify", str(tmp_path), "--cpu", "cortex-a53"), "--cpu picks the emulated CPU models of --on")
    with pytest.raises(InputError, match="unknown ISA 'x86'"):
        compressor.compress(FASHION / "fashion_cnn.safetensors", target="executorch-xnnpack-int8", verify_on="x86", output=tmp_path / "o",
                            arch=FASHION_ARCH, input_shape="1,1,28,28", eval=FASHION / "test_subset.npz")
    assert not (tmp_path / "o").exists()


@pytest.mark.slow  # builds an OpenVINO and an ORT bundle when no other test of the run did
def test_a_runtime_without_an_arm64_runner_and_a_missing_environment_are_named(fashion_bundles, tmp_path, monkeypatch):
    ov = fashion_bundles.get("openvino-cpu-fp32", duration=0.3, iterations=10, sensitivity=False)  # shared with test_openvino
    before = (ov.bundle / "manifest.json").read_bytes()
    one_line_error(cli_in_process("verify", str(ov.bundle), "--on", "arm64"), "openvino-cpu-fp32", "has no arm64 runner",
                   "ExecuTorch, LiteRT and ONNX Runtime")
    assert (ov.bundle / "manifest.json").read_bytes() == before
    ort = fashion_bundles.get("ort-cpu-fp32", **ORT_FP32)
    monkeypatch.setenv("COMPRESSOR_ARM64_ROOT", str(tmp_path / "no-root"))
    line = one_line_error(cli_in_process("verify", str(ort.bundle), "--on", "arm64"), "cannot check bundle")
    assert "compressor setup-arm64" in line or "binfmt" in line  # no environment, or (elsewhere) no emulation at all


# --- emulated runs ----------------------------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.arm64
@pytest.mark.e2e  # the emulated runtime runs in a process of its own
def test_executorch_int8_bundle_passes_on_two_emulated_cpus_and_records_it(fashion_bundles, tmp_path):
    _env("executorch")
    src = fashion_bundles.get("executorch-xnnpack-int8", **SMALL)
    bundle = tmp_path / "et"
    shutil.copytree(src.bundle, bundle)
    res = compressor.verify(bundle, on="arm64")
    a = read_manifest(bundle)["validation"]["arm64"]
    assert a == {k: res[k] for k in a} and a["passed"] and a["runtime"] == "executorch" and a["runtime_version"] == "1.5.1"
    assert [c["cpu"] for c in a["cpus"]] == ["cortex-a53", "neoverse-n1"] and a["cpus_agree"]
    caps = {c["cpu"]: c["hwcaps"] for c in a["cpus"]}
    assert not caps["cortex-a53"]["asimddp"] and caps["neoverse-n1"]["asimddp"] and not any(c["sme"] for c in caps.values())
    assert a["max_abs_error"] <= 1e-4 and "qemu" in a["emulator"].lower()
    assert compressor.verify(bundle)["passed"]  # the manifest gained a field; every hashed file is as it was


@pytest.mark.slow
@pytest.mark.arm64
@pytest.mark.e2e  # the emulated runtime runs in a process of its own
def test_compress_verify_on_arm64_litert_int8_then_tampered_outputs_fail_in_one_line(tmp_path):
    _env("litert")
    out = tmp_path / "lt"
    res = cli("compress", str(FASHION / "fashion_cnn.safetensors"), "--arch", "compressor.zoo.fashion_cnn:fashion_cnn",
              "--input-shape", "1,1,28,28", "--scale", str(1 / 255), "--mean", "0.2860", "--std", "0.3530",
              "--eval", str(FASHION / "test_subset.npz"), "--calib", str(FASHION / "calib_subset.npz"), "--no-benchmark",
              "--target", "litert-xnnpack-int8", "--verify-on", "arm64", "--verify-cpus", "cortex-a53", "--output", str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    a = read_manifest(out)["validation"]["arm64"]
    assert a["passed"] and a["runtime"] == "litert" and [c["cpu"] for c in a["cpus"]] == ["cortex-a53"]
    assert "emulated" in res.stderr and "not device latency" in res.stderr
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    with np.load(bad / "reference" / "outputs.npz") as z:
        outs = {k: z[k] for k in z.files}
    first = next(iter(outs))
    outs[first] = outs[first] + 1.0  # the stored outputs altered, and the hashes fixed up to match
    np.savez(bad / "reference" / "outputs.npz", **outs)
    _rehash(bad)
    m = read_manifest(bad)
    del m["validation"]
    (bad / "manifest.json").write_text(json.dumps(m, indent=2))
    before = (bad / "manifest.json").read_bytes()
    one_line_error(cli("verify", str(bad), "--on", "arm64", "--cpu", "cortex-a53"), "emulated cortex-a53", "drifted",
                   "kept as it was")
    assert (bad / "manifest.json").read_bytes() == before


@pytest.mark.slow
@pytest.mark.arm64
@pytest.mark.e2e  # the emulated runtime runs in a process of its own
def test_an_emulated_crash_names_the_signal_and_keeps_the_bundle(fashion_bundles, tmp_path):
    from compressor.bundle.verify_arm64 import verify_on

    _env("ort")
    src = fashion_bundles.get("ort-cpu-fp32", **ORT_FP32)
    bundle = tmp_path / "ort"
    shutil.copytree(src.bundle, bundle)
    worker = tmp_path / "crash.py"  # a runtime that dies in native code, as a miscompiled kernel does
    worker.write_text(textwrap.dedent("""
        import ctypes
        ctypes.string_at(0)
    """))
    before = (bundle / "manifest.json").read_bytes()
    with pytest.raises(VerificationError, match="crashed with SIGSEGV.*kept as it was"):
        verify_on(bundle, "arm64", worker, cpus=["cortex-a53"])
    assert (bundle / "manifest.json").read_bytes() == before
