"""`compressor report`: one self-contained HTML page (of a bench with roofline figures and --streams throughput), loaded in
a real headless Chromium (Debian's chromium-headless-shell): no console errors, the table sorts, and the screenshot shows
the figures."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import numpy as np
from PIL import Image

from tests.conftest import FASHION_ARCH, cli, cli_in_process, one_line_error

CHROMIUM = "chromium-headless-shell"  # `make test` installs it (apt-get install -y chromium-headless-shell)


def _chromium(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which(CHROMIUM)
    assert exe, f"{CHROMIUM} is not installed: `make chromium` (apt-get install -y {CHROMIUM})"
    return subprocess.run([exe, "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--log-level=0", *args],
                          capture_output=True, text=True, timeout=120)


def test_report_in_a_real_browser(tmp_path, fashion_ckpt, fashion_small):
    res = cli("bench", str(fashion_ckpt), "--arch", FASHION_ARCH, "--input-shape", "1,1,28,28", "--scale", str(1 / 255), "--mean",
              "0.2860", "--std", "0.3530", "--eval", str(fashion_small), "--calib", str(fashion_small), "--targets",
              "ort-cpu-fp32,ort-cpu-int8,openvino-cpu-fp32", "--duration", "0.3", "--iterations", "10", "--streams", "2",
              "--json", str(tmp_path / "r.json"))
    assert res.returncode == 0, res.stderr
    result = json.loads((tmp_path / "r.json").read_text())
    roof = result["roofline"]
    assert roof["flops_per_sample"] > 1e6 and roof["ceilings"]["fp32"] > 1 and roof["ceilings"]["int8"] > 1 and "matmul" in roof["method"]
    rates = {r["target"]: r["batches"]["1"]["roofline"] for r in result["rows"]}
    assert rates["ort-cpu-int8"]["unit"] == "GOP/s" and rates["ort-cpu-fp32"]["unit"] == "GFLOP/s"
    assert all(0 < v["rate"] and 0 < v["share_of_ceiling"] < 5 for v in rates.values()), rates
    for r in result["rows"]:  # --streams 2, reported apart from the latency: OpenVINO's own THROUGHPUT mode, else two instances
        ms = r["batches"]["1"]["multi_stream"]
        assert ms["streams"] == 2 and ms["throughput_per_s"] > 0 and ms["calls"] > 2, ms
        if r["target"].startswith("openvino"):
            assert "PERFORMANCE_HINT=THROUGHPUT" in ms["method"] and ms["streams_compiled"] == 2, ms
        elif r["target"] != "torch-cpu-fp32":
            assert ms["threads_per_stream"] >= 1 and "2 instances" in ms["method"], ms
    page = tmp_path / "report.html"
    res = cli("report", str(tmp_path / "r.json"), "-o", str(page))
    assert res.returncode == 0, res.stderr
    text = page.read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text), "the page must not load anything from the network"
    assert text.count("<svg") >= 2  # latency/fidelity, and the sensitivity of the INT8 row

    dom = _chromium("--dump-dom", f"file://{page}#sort=p50%20ms")
    console = [l for l in dom.stderr.splitlines() if ":CONSOLE" in l]
    assert dom.returncode == 0 and not console, console
    assert 'data-ready="1"' in dom.stdout  # every script ran
    body = dom.stdout[dom.stdout.index("<tbody>"):dom.stdout.index("</tbody>")]
    heads = re.findall(r"<th[^>]*>([^<]+)</th>", dom.stdout)
    col = heads.index("p50 ms")
    p50 = [float(re.findall(r'data-v="([^"]*)"', row)[col]) for row in re.findall(r"<tr>(.*?)</tr>", body)]
    assert len(p50) == 4 and p50 == sorted(p50), p50  # four rows (torch eager and three targets); the browser sorted the table by the #sort link

    shot = tmp_path / "shot.png"
    res = _chromium(f"--screenshot={shot}", "--window-size=1280,2400", f"file://{page}")
    assert res.returncode == 0 and shot.is_file(), res.stderr
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert img.shape[:2] == (2400, 1280)
    def near(rgb: int) -> int:
        return int(((abs(img - np.array([rgb >> 16, (rgb >> 8) & 255, rgb & 255])) < 20).all(axis=2)).sum())

    assert near(0x4C72B0) + near(0xDD8452) > 100, "the latency/fidelity points are not on screen"
    assert near(0xC44E52) > 500, "the sensitivity bars are not on screen"


def test_report_bad_input(tmp_path):
    (tmp_path / "x.json").write_text("{not json")
    one_line_error(cli_in_process("report", str(tmp_path / "x.json"), "-o", str(tmp_path / "r.html")), "is not JSON")
    (tmp_path / "y.json").write_text('{"a": 1}')
    one_line_error(cli_in_process("report", str(tmp_path / "y.json"), "-o", str(tmp_path / "r.html")), "neither")
    one_line_error(cli_in_process("report", str(tmp_path / "none.json"), "-o", str(tmp_path / "r.html")), "not found")
    assert not (tmp_path / "r.html").exists()
