"""The search fingerprint: the whole run configuration (less the fields that cannot change a measurement), files by content."""

from __future__ import annotations

import numpy as np

from compressor.app.recipe import build_config
from compressor.app.search.fingerprint import NOT_MEASURED, differences, fingerprint


def _config(data, **overrides):
    base = {"model.checkpoint": str(data), "inputs": [{"shape": "1,1,28,28"}], "data.eval": str(data)}
    return build_config(None, {**base, **overrides})


SPACE = {"targets": ["ort-cpu-int8"], "prune": [0.0]}


def test_every_setting_counts_but_the_listed_ones(tmp_path):
    data = tmp_path / "eval.npz"
    np.savez(data, x=np.zeros((4, 1, 28, 28), np.float32))
    base = fingerprint(_config(data), SPACE)
    for key, value in [("qat.epochs", 3), ("pruning", {"macs": 0.25, "importance": "l1"}), ("model.task", "embedding"),
                       ("model.forward_kwargs", {"sr": 16000}), ("model.checkpoint_key", "model_state"), ("benchmark.threads", 1)]:
        other = fingerprint(_config(data, **{key: value}), SPACE)
        assert other["sha256"] != base["sha256"], key
        assert differences(base, other) and all(d.startswith(key) for d in differences(base, other)), key
    for key, value in [("search.trials", 50), ("search.executor", "ray"), ("output", {"path": str(tmp_path / "o")}), ("finetune.ddp", 2)]:
        assert fingerprint(_config(data, **{key: value}), SPACE)["sha256"] == base["sha256"], key
    assert {"output", "search.trials"} <= NOT_MEASURED
    assert fingerprint(_config(data), {**SPACE, "prune": [0.0, 0.5]})["sha256"] != base["sha256"]


def test_data_is_taken_by_content_not_by_path(tmp_path):
    data = tmp_path / "eval.npz"
    np.savez(data, x=np.zeros((4, 1, 28, 28), np.float32))
    before = fingerprint(_config(data), SPACE)
    np.savez(data, x=np.ones((4, 1, 28, 28), np.float32))  # edited in place: same path
    after = fingerprint(_config(data), SPACE)
    assert differences(before, after) == ["data.eval", "model.checkpoint"]
    folder = tmp_path / "images"
    (folder / "cat").mkdir(parents=True)
    (folder / "cat" / "a.bin").write_bytes(b"1")
    one = fingerprint(_config(data, **{"data.calib": str(folder)}), SPACE)
    (folder / "cat" / "a.bin").write_bytes(b"2")
    assert differences(one, fingerprint(_config(data, **{"data.calib": str(folder)}), SPACE)) == ["data.calib"]


def test_a_fingerprint_from_an_older_sdk_is_a_difference():
    assert differences({"model": {}, "settings": {}}, {"sha256": "x", "fields": {"a": 1}}) == ["the settings"]
