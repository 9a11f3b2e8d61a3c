"""The one accuracy objective: what each budget measures, its loss, which way is better, and what it refuses."""

from __future__ import annotations

import numpy as np
import pytest

from compressor.core.errors import GateError
from compressor.core.fidelity import compare
from compressor.core.objective import ACCURACY, AGREEMENT, COSINE
from compressor.evaluation.gate import GateSettings

RNG = np.random.default_rng(0)
LOGITS = RNG.standard_normal((50, 10)).astype(np.float32)
LABELS = LOGITS.argmax(1)
NOISY = LOGITS + 0.8 * RNG.standard_normal(LOGITS.shape).astype(np.float32)


def _fid(labels=LABELS, task="auto", out=NOISY, ref=LOGITS):
    return compare([ref], [out], labels, False, task)


def test_each_budget_is_one_objective_with_its_loss_and_direction():
    f = _fid()
    g = GateSettings(max_accuracy_drop=1.0, min_agreement=0.9, min_cosine=0.99)
    acc, agr, cos = g.objectives
    assert (acc.kind, agr.kind, cos.kind) == (ACCURACY, AGREEMENT, COSINE) and g.objective() == acc  # the primary one first
    assert acc.loss(f) == pytest.approx(f.accuracy_drop_pp) and acc.loss_limit == 1.0 and not acc.higher_is_better
    assert agr.loss(f) == pytest.approx(1 - f.top1_agreement) and agr.loss_limit == pytest.approx(0.1) and agr.higher_is_better
    assert cos.loss(f.to_dict()) == pytest.approx(1 - f.cosine_mean)  # the search's JSON records read the same
    assert g.failures(f) == [x for x in (acc.failure(f), agr.failure(f), cos.failure(f)) if x]
    assert f.accuracy_drop_pp > 1 and "accuracy dropped" in g.failures(f)[0]


def test_without_a_budget_the_first_figure_the_output_measures():
    g = GateSettings()
    assert not g.active and g.objective(_fid()).kind is ACCURACY
    assert g.objective(_fid(labels=None)).kind is AGREEMENT
    assert g.objective(_fid(task="embedding")).kind is COSINE and g.objective(None).kind is COSINE
    assert g.objective(_fid()).failure(_fid()) is None  # measured, not limited


def test_a_budget_the_output_cannot_measure_is_refused_naming_the_one_that_can():
    embedding = compare([LOGITS], [LOGITS], LABELS, False, "embedding")
    with pytest.raises(GateError, match="--max-accuracy-drop needs class scores.*shape \\(50, 10\\).*--min-cosine"):
        GateSettings(max_accuracy_drop=1).check_measurable(embedding, (50, 10))
    with pytest.raises(GateError, match="--min-agreement needs class scores.*--min-cosine"):
        GateSettings(min_agreement=0.9).check_measurable(embedding, (50, 10))
    unlabelled = compare([LOGITS], [LOGITS], None, False)
    with pytest.raises(GateError, match="needs labelled eval data.*--min-agreement"):
        GateSettings(max_accuracy_drop=1).check_measurable(unlabelled, (50, 10))
    GateSettings(min_cosine=0.99, min_agreement=0.9).check_measurable(unlabelled, (50, 10))  # both measurable: no error
    # a budget that was not measured is a failure, never a silent pass
    assert GateSettings(max_accuracy_drop=1).failures(embedding) == ["--max-accuracy-drop needs class scores (N, classes) and labelled "
                                                                      "eval data: it was not measured here"]


def test_inc_autotune_reads_the_same_objective():
    f = _fid()
    ref = compare([LOGITS], [LOGITS], LABELS, False)
    assert GateSettings(max_accuracy_drop=2).objective(f).inc_tolerance(ref) == ("accuracy", pytest.approx(0.02))
    assert GateSettings(min_cosine=0.99).objective(f).inc_tolerance(ref) == ("cosine_mean", pytest.approx(0.01))
