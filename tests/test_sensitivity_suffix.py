"""Per-layer sensitivity in simulation runs only what each plan changes (quantization/suffix.py): it must give the
same outputs as realising and running the whole graph, on a residual net (skip connections cross every cut)."""

from __future__ import annotations

import numpy as np

from compressor.quantization.qdq import realize_static
from compressor.quantization.sensitivity import single_layer_plan
from compressor.quantization.suffix import changed_part


def test_changed_parts_give_the_whole_graphs_outputs(tmp_path, resnet18_ckpt):
    from compressor.app.options import overrides
    from compressor.app.recipe import build_config
    from compressor.app.session import open_session
    from compressor.core.progress import Progress
    from compressor.core.registry import get_target
    from compressor.evaluation.session import Candidate

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "x.npz", x=rng.standard_normal((12, 3, 64, 64)).astype(np.float32))
    config = build_config(None, overrides({"checkpoint": resnet18_ckpt, "arch": "torchvision:resnet18", "input_shape": "1,3,64,64",
                                           "target": "ort-cpu-int8", "calib": tmp_path / "x.npz", "eval": tmp_path / "x.npz",
                                           "sensitivity_samples": 4}))
    with open_session(config, Progress(quiet=True), calibrate=True) as session:
        spec = get_target("ort-cpu-int8").with_run(session.model.inputs, session.threads)
        session.prepare([Candidate("ort-cpu-int8")])
        stage = session.variants.stage(session.variants.get(None, spec), "as loaded")
        plan = stage.plan_for(spec)
        plans = [single_layer_plan(plan, l.name) for l in plan.int8_layers] + [plan]
        fast = list(stage.simulation.simulate(plans))
        feeds = stage.simulation.feeds()
        fmodel = stage.float_for(plan)
        sizes = []
        for p, got in zip(plans, fast):
            whole = realize_static(fmodel, p)
            ref = np.concatenate([r["__outputs__"][0] for r in stage.run(whole, feeds, [])])
            np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5, err_msg=p.int8_layers[0].name)
            part = changed_part(whole, fmodel)
            assert part is not None
            sizes.append(len(part.nodes) / len(whole.graph.node))
    assert len(plans) == 22 and got.shape == (4, 1000)  # 20 convolutions and the fc alone, then the full plan
    assert min(sizes) < 0.1 and np.mean(sizes[:-1]) < 0.7  # the last layers' parts are small; the full plan changes nearly all
