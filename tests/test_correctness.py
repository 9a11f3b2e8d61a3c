"""The correctness sweep of issue 22: each item that was found by reading or by trying, held by a test."""

from __future__ import annotations

import pytest

from tests.conftest import FASHION_ARCH


@pytest.fixture
def fashion_session(fashion_ckpt):
    from compressor.core.specs import InputSpec
    from compressor.data.context import RunContext
    from compressor.data.sources import synthetic_data
    from compressor.evaluation.session import EvaluationSession
    from compressor.io.loading import load_model

    h = load_model(fashion_ckpt, [InputSpec.parse("1,1,28,28")], FASHION_ARCH)
    with EvaluationSession(h, RunContext(eval_data=synthetic_data(h.inputs, 4))) as session:
        yield session


def test_an_sdk_bug_in_a_candidate_propagates_under_debug_and_in_tests(fashion_session, monkeypatch):
    from compressor.core.errors import STRICT_ENV, InputError
    from compressor.evaluation.session import Candidate

    def bug(result):
        raise TypeError("an SDK bug")

    monkeypatch.setattr(fashion_session.validator, "validate", bug)  # fault injection: a bug in the validator
    monkeypatch.setenv(STRICT_ENV, "1")
    with pytest.raises(TypeError, match="an SDK bug"):
        fashion_session.evaluate(Candidate("ort-cpu-fp32"), benchmark=False)
    monkeypatch.delenv(STRICT_ENV)  # a user's run without --debug: the candidate's row says what failed
    r = fashion_session.evaluate(Candidate("ort-cpu-fp32"), benchmark=False)
    assert r.status == "failed" and "an SDK bug" in r.reason

    def refused(result):
        raise InputError("bad input the user can fix")

    monkeypatch.setattr(fashion_session.validator, "validate", refused)
    monkeypatch.setenv(STRICT_ENV, "1")  # the SDK's own error family stays a row's status even in strict mode
    r = fashion_session.evaluate(Candidate("ort-cpu-fp32"), benchmark=False)
    assert r.status == "failed" and "bad input" in r.reason


def _attention_model(layout: str, heads: int = 4, kv_heads: int | None = None):
    """A small transformer block: attention in one of the layouts head pruning knows, then an MLP."""
    import torch
    from torch import nn

    class Attention(nn.Module):
        def __init__(self, dim=32):
            super().__init__()
            self.num_heads = heads
            if kv_heads is not None:
                self.num_key_value_heads = kv_heads
            if layout == "qkv":
                self.qkv = nn.Linear(dim, 3 * dim)
            else:
                self.q_proj, self.k_proj, self.v_proj = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
            self.o_proj = nn.Linear(dim, dim)

        def forward(self, x):
            b, t, _ = x.shape
            if layout == "qkv":
                q, k, v = self.qkv(x).reshape(b, t, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
            else:
                q, k, v = (p(x).reshape(b, t, self.num_heads, -1).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
            y = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, -1) @ v
            return self.o_proj(y.transpose(1, 2).reshape(b, t, -1))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Linear(8, 32)
            self.attn = Attention()
            self.mlp = nn.Sequential(nn.Linear(32, 64), nn.GELU(), nn.Linear(64, 32))
            self.head = nn.Linear(32, 5)

        def forward(self, x):
            h = self.embed(x)
            h = h + self.attn(h)
            return self.head((h + self.mlp(h)).mean(1))

    torch.manual_seed(0)
    return Block().eval()


@pytest.mark.parametrize("layout", ["qkv", "q_proj"])
def test_head_pruning_understands_fused_and_separate_projections(layout):
    import torch

    from compressor.pruning.prune import prune
    from compressor.pruning.settings import PruningSettings

    x = torch.randn(2, 6, 8)
    pruned, report = prune(_attention_model(layout), (x,), PruningSettings(heads=0.5, keep_first_and_last=True), round_to=1)
    assert pruned.attn.num_heads == 2  # half of 4 heads gone, and the module's count follows
    assert report["layers_changed"]["attn"] == {"before": {"heads": 4}, "after": {"heads": 2}}
    width = pruned.attn.qkv.out_features // 3 if layout == "qkv" else pruned.attn.q_proj.out_features
    assert width == 16 and pruned(x).shape == (2, 5)  # whole heads of 8 features each; the block still runs


def test_head_pruning_says_when_it_finds_nothing_to_prune():
    import torch

    from compressor.core.errors import InputError
    from compressor.pruning.prune import prune
    from compressor.pruning.settings import PruningSettings
    from compressor.zoo.fashion_cnn import fashion_cnn

    with pytest.raises(InputError, match="--prune-heads found no attention module to prune.*fused qkv.*--prune-ratio"):
        prune(fashion_cnn().eval(), (torch.randn(1, 1, 28, 28),), PruningSettings(heads=0.5), round_to=8)
    warnings = []
    with pytest.raises(InputError, match="left whole: attn groups 4 query heads over 2 key/value heads \\(GQA\\)"):
        prune(_attention_model("q_proj", kv_heads=2), (torch.randn(2, 6, 8),), PruningSettings(heads=0.5), round_to=1, warn=warnings.append)
    assert warnings and "GQA" in warnings[0]


def test_every_module_and_name_the_readme_points_to_exists():
    import importlib
    import re
    import tomllib

    from tests.conftest import ROOT

    groups = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"])  # plugin groups, not modules
    refs = set(re.findall(r"\bcompressor(?:\.[a-z_0-9]+)+(?:\.[A-Z]\w*)?", (ROOT / "README.md").read_text())) - groups
    assert "compressor.core.errors.VerificationError" in refs
    for ref in sorted(refs):  # a module, or a name in one (compressor.analyze is the API's function)
        parts = ref.split(".")
        rest = []
        while True:
            try:
                obj = importlib.import_module(".".join(parts))
                break
            except ModuleNotFoundError:
                assert len(parts) > 1, ref
                rest.insert(0, parts.pop())
        for name in rest:
            assert hasattr(obj, name), ref
            obj = getattr(obj, name)


def test_bias_correction_is_refused_where_the_quantizer_makes_its_own_plan():
    from pydantic import ValidationError

    from compressor.quantization.quantizers import QUANTIZERS
    from compressor.quantization.settings import QuantizationSettings

    assert QuantizationSettings(bias_correction=True).capabilities.supports_bias_correction
    for name, q in QUANTIZERS.items():
        if not q.supports_bias_correction:
            with pytest.raises(ValidationError, match=f"--quantizer {name} chooses its own ranges.*--quantizer sdk"):
                QuantizationSettings(bias_correction=True, quantizer=name)


def test_random_bytes_are_always_a_corrupt_checkpoint(tmp_path):
    """torch's safe unpickler raises IndexError or KeyError on some random files (1 in 14 here): each is still one clear line."""
    import numpy as np

    from compressor.core.errors import CheckpointError
    from compressor.io.loading import _load_module_or_state

    rng = np.random.default_rng(0)
    path = tmp_path / "r.pth"
    for _ in range(400):
        path.write_bytes(rng.bytes(4096))
        with pytest.raises(CheckpointError, match="truncated or corrupt"):
            _load_module_or_state(path, "pickle", False)


def test_a_build_deadline_never_stops_an_import_half_way(tmp_path, monkeypatch):
    """--build-timeout stops a build, but not in the middle of a library's first import: a half-imported library (the ONNX
    exporter's onnxscript, once) made every later export of the process fall back and every later plan lose its layer names."""
    import sys
    import time

    from compressor.core.build import BuildTimeout, time_limit

    (tmp_path / "slow_to_import.py").write_text("import time\ntime.sleep(0.4)\nDONE = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(BuildTimeout, match="the test build did not finish in 0.1 s"):
        with time_limit(0.1, "the test build"):
            import slow_to_import  # noqa: F401 - imported for its side effect: it takes longer than the limit
            time.sleep(5)
    assert sys.modules["slow_to_import"].DONE
    monkeypatch.delitem(sys.modules, "slow_to_import")
