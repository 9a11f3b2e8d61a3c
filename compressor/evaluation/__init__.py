"""One evaluation session (model, eval data, FP32 reference) that builds, validates and benchmarks candidates;
the gate and the fresh-process benchmark harness."""
