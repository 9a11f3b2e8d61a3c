"""Test tiers, applied automatically at collection (pytest plugin, loaded by conftest.py).

- Kind: ``e2e`` (the test starts the CLI or another process), ``integration`` (in-process, on a real model, real data or a
  real runtime session), ``unit`` (neither). Read from the test's source and its fixtures, so a new test is classified
  without anyone remembering to: a ``unit`` test that starts a process fails (an autouse guard), which catches a wrong guess.
- ``slow``: measured over ``SLOW_S`` seconds in ``tests/durations.json`` (``make test-durations`` rewrites it on this kind of
  machine), or marked by hand.
- Environment: ``browser`` (headless Chromium, an apt package), ``dataset`` (the Debian Fashion-MNIST training set),
  ``ray`` (a local Ray cluster), ``cxx`` (a C++ compiler: AOTInductor), ``gpu`` (an NVIDIA GPU), ``arm64`` (the emulated arm64
  environment of ``make arm64``; marked by hand).
- The fast tier (``make test``) is ``not slow and not browser and not dataset and not ray and not gpu and not arm64``; ``--tier-budget S``
  fails the run when its own wall time passes S seconds, so the tier cannot grow slow unnoticed.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from compressor.core.build import importing

HERE = Path(__file__).resolve().parent
DURATIONS = HERE / "durations.json"
SLOW_S = 10.0
KINDS = ("unit", "integration", "e2e")
ENVIRONMENT = ("browser", "dataset", "ray", "cxx", "gpu", "arm64")
FAST = "not slow and not browser and not dataset and not ray and not gpu and not arm64"

#: fixtures that load a real model, real data or a real runtime
INTEGRATION_FIXTURES = {"fashion_ckpt", "resnet18_ckpt", "fashion_small", "fashion_subset", "fashion_session", "fashion_bundle",
                        "plugin_path", "size_search", "space_recipe", "tiny_lm_folder"}
#: what in a test's source means it runs the SDK on a model in this process
INTEGRATION_CALLS = ("cli_in_process(", "FASHION / ", "_session(", "compressor.compress(", "compressor.bench(", "compressor.analyze(",
                     "compressor.search(", "EvaluationSession", "load_model(", "open_session(", "prune(", "bench_targets(",
                     "run_isolated(", "compile(", "InferenceSession", "compare(", "Core()", "_load_module_or_state(", "torch.load(")
E2E_CALLS = ("cli(", "subprocess.", "Popen(")
#: what needs something beyond the project's Python packages
ENVIRONMENT_HINTS = {"browser": ("chromium",), "dataset": ("compressor.zoo.fashion:train", "zoo.fashion import"),
                     "ray": ("ray_head", "--executor\", \"ray"), "cxx": ("torch-inductor-cpu", "tests/test_inductor.py"), "gpu": ("requires_gpu",)}


def _body(fn) -> str:
    """A function's source from its ``def`` (a parametrize list above it is data, not what the test does)."""
    try:
        src = inspect.getsource(fn)
    except (OSError, TypeError):
        return ""
    return src[src.find("def "):]


def _source(item) -> str:
    """The test's body and the bodies of the fixtures it asks for (what runs for it)."""
    defs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {}) or {}
    own = [d[-1].func for name, d in defs.items() if d and not name.startswith("_") and d[-1].baseid]  # the project's fixtures only
    return "\n".join(_body(f) for f in [item.function, *own])


def _recorded() -> dict[str, float]:
    try:
        return json.loads(DURATIONS.read_text())["seconds"]
    except (OSError, ValueError, KeyError):
        return {}


def classify(item, recorded: dict[str, float]) -> list[str]:
    src = _source(item)
    fixtures = set(getattr(item, "fixturenames", ()))
    if any(c in src for c in E2E_CALLS):
        kind = "e2e"
    elif fixtures & INTEGRATION_FIXTURES or any(c in src for c in INTEGRATION_CALLS):
        kind = "integration"
    else:
        kind = "unit"
    marks = [kind]
    marks += [env for env, hints in ENVIRONMENT_HINTS.items() if any(h in src or h in fixtures or h in item.nodeid for h in hints)]
    if recorded.get(item.nodeid, 0.0) > SLOW_S:
        marks.append("slow")
    return marks


def pytest_configure(config):
    for name, what in [("unit", "no model, no process: pure logic"), ("integration", "in-process, real models / data / runtimes"),
                       ("e2e", "starts the CLI or another process"), ("slow", f"measured over {SLOW_S:g} s (tests/durations.json)"),
                       ("browser", "needs headless Chromium (apt)"), ("dataset", "needs the Debian Fashion-MNIST training set (apt)"),
                       ("ray", "starts a local Ray cluster"), ("cxx", "needs a C++ compiler (AOTInductor)"), ("gpu", "needs an NVIDIA GPU"),
                       ("arm64", "runs bundles on an emulated arm64 CPU (make arm64)")]:
        config.addinivalue_line("markers", f"{name}: {what}")
    config._tier_started = time.monotonic()


def pytest_addoption(parser):
    parser.addoption("--tier-budget", type=float, default=None, help="fail the run when its wall time passes this many seconds")
    parser.addoption("--record-durations", action="store_true", help=f"write each test's seconds to {DURATIONS.name}")


def pytest_collection_modifyitems(config, items):
    recorded = _recorded()
    for item in items:
        have = {m.name for m in item.iter_markers()}
        for name in classify(item, recorded):
            if name not in have and not (name in KINDS and have & set(KINDS)):
                item.add_marker(name)


@pytest.fixture(autouse=True)
def _unit_tests_start_no_process(request, monkeypatch):
    """A unit test that starts a process is misfiled: fail it where it happens."""
    if request.node.get_closest_marker("unit") is None:
        return

    start = subprocess.Popen.__init__

    def refuse(self, *args, **kwargs):
        if importing(sys._getframe(1)):  # a library probing its machine on first import (ctypes' ldconfig) is not the test's
            return start(self, *args, **kwargs)  # process, and failing it would leave the library half-imported for later tests
        raise AssertionError(f"{request.node.nodeid} is a unit test and started a process ({args[0] if args else kwargs}): "
                             "give it a real fixture or call that makes it an integration or e2e test")

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)


_seconds: dict[str, float] = {}


def pytest_runtest_logreport(report):
    _seconds[report.nodeid] = _seconds.get(report.nodeid, 0.0) + report.duration


def pytest_sessionfinish(session, exitstatus):
    config = session.config
    if config.getoption("--record-durations"):
        import platform

        old = _recorded()
        cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name")),
                   platform.processor()) if Path("/proc/cpuinfo").exists() else platform.processor()
        DURATIONS.write_text(json.dumps({"cpu": cpu, "cores": len(__import__("os").sched_getaffinity(0)),
                                         "seconds": dict(sorted({**old, **{k: round(v, 2) for k, v in _seconds.items()}}.items()))},
                                        indent=1) + "\n")
    budget = config.getoption("--tier-budget")
    took = time.monotonic() - config._tier_started
    if budget is not None and took > budget:
        reporter = config.pluginmanager.get_plugin("terminalreporter")
        slowest = sorted(_seconds.items(), key=lambda kv: -kv[1])[:5]
        line = (f"this tier took {took:.0f} s, over its budget of {budget:g} s: move the slowest to a slower tier "
                f"(make test-durations), or make them cheaper; slowest: " + ", ".join(f"{k} {v:.0f} s" for k, v in slowest))
        if reporter is not None:
            reporter.write_line(line, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
