"""``growth_form="auto"``: g(x, t) and g(x) trained side by side in stage 1, the one whose
rollout fits the snapshots better kept."""

from __future__ import annotations

import numpy as np
import torch

from vgfm._core.train import TrainConfig, train

FAST = dict(stage1_steps=300, stage2_steps=0, val_every=1, stage2_particles=64,
            stage2_targets=64, val_particles=256, batch_size=128, growth_form="auto")


def _two_clusters(sizes_right, seed=0):
    """A still cluster of 150 cells on the left and a still cluster on the right whose cell
    count follows ``sizes_right`` (counts are the population sizes)."""
    gen = torch.Generator().manual_seed(seed)
    snaps = []
    for n_right in sizes_right:
        left = torch.randn(150, 2, generator=gen) * 0.3 + torch.tensor([-2.0, 0.0])
        right = torch.randn(n_right, 2, generator=gen) * 0.3 + torch.tensor([2.0, 0.0])
        snaps.append(torch.cat([left, right]))
    return snaps


def test_growth_that_reverses_in_time_keeps_the_time_dependent_form():
    """The right cluster grows 8/3-fold, then shrinks back, in place: no rate of the state
    alone gives that, so g(x) rolls out the wrong sizes and g(x, t) is kept."""
    snaps, times = _two_clusters([150, 400, 150]), [0.0, 1.0, 2.0]
    res = train(snaps, times, config=TrainConfig(**FAST), seed=0)
    rec = res.extra["growth_vs_motion"]
    score_xt, score_x = rec["growth_form_score"]
    assert rec["growth_form"] == "xt" and res.field.growth_form == "xt"
    assert score_x > score_xt + 0.05
    # and the kept field grows the right cluster, then shrinks it
    with torch.no_grad():
        right = torch.tensor([[2.0, 0.0]])
        g0 = float(res.field(torch.tensor(0.3), right)[1])
        g1 = float(res.field(torch.tensor(1.5), right)[1])
    assert g0 > 0.4 and g1 < -0.4


def test_selection_is_the_lower_rollout_score_and_recorded():
    """The record's two scores are the checkpoint scores of the stage-1 fields, the kept form
    has the lower one, and it is the score of the returned field (no stage 2 here)."""
    snaps, times = _two_clusters([150, 300, 600], seed=1), [0.0, 1.0, 2.0]
    res = train(snaps, times, config=TrainConfig(**FAST), seed=3)
    rec = res.extra["growth_vs_motion"]
    scores = dict(zip(("xt", "x"), rec["growth_form_score"]))
    assert rec["growth_form"] == min(scores, key=scores.get) == res.field.growth_form
    assert np.isclose(res.history["val_score"][0], scores[rec["growth_form"]], rtol=1e-6)
    # growing in place at one rate: the time-free form fits nearly as well as the other
    # (the reversing growth of the first test separates them by more than 0.05)
    assert abs(scores["x"] - scores["xt"]) < 0.01


def test_auto_is_bit_identical_to_the_time_dependent_form_when_that_is_kept():
    snaps, times = _two_clusters([150, 400, 150], seed=2), [0.0, 1.0, 2.0]
    cfg = TrainConfig(**{**FAST, "stage2_steps": 3})
    auto = train(snaps, times, config=cfg, seed=5)
    assert auto.field.growth_form == "xt"
    fixed = train(snaps, times, config=TrainConfig(**{**cfg.to_dict(), "growth_form": "xt"}),
                  seed=5)
    np.testing.assert_array_equal(auto.history["stage1_loss"], fixed.history["stage1_loss"])
    np.testing.assert_array_equal(auto.history["stage2_loss"], fixed.history["stage2_loss"])
    for k, v in fixed.field.state_dict().items():
        torch.testing.assert_close(auto.field.state_dict()[k], v, rtol=0, atol=0)


def test_fit_records_the_choice_and_the_saved_model_keeps_it(tmp_path):
    import anndata as ad

    import vgfm

    snaps = _two_clusters([150, 400, 150], seed=4)
    x = torch.cat(snaps).numpy()
    t = np.repeat([0.0, 1.0, 2.0], [len(s) for s in snaps])
    adata = ad.AnnData(x)
    adata.obs["time"] = t
    model = vgfm.tl.fit(adata, "time", use_rep="X", progress=False, **FAST)
    entry = adata.uns["vgfm"]["growth_vs_motion"]
    assert str(entry["growth_form"]) == model.field.growth_form == "xt"
    assert entry["growth_form_score"].shape == (2,)
    assert adata.uns["vgfm"]["params"]["growth_form"] == "auto"
    path = tmp_path / "fit.h5ad"
    adata.write_h5ad(path)
    back = vgfm.get_model(ad.read_h5ad(path))
    assert back.field.growth_form == "xt"
    _, g_back = back.predict(x[:20], 1.5)
    _, g = model.predict(x[:20], 1.5)
    np.testing.assert_allclose(g_back, g, rtol=1e-6, atol=1e-7)
