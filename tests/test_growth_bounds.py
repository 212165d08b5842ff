"""Growth bounds: after stage 1 the growth rate stays within the range of each interval's
growth targets (``TrainConfig.bound_growth``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vgfm import VGFM
from vgfm._core.networks import VelocityGrowthField
from vgfm._core.ode import integrate
from vgfm._core.train import TrainConfig, train

KNOTS = [0.0, 1.0, 3.0]
LOW = [-0.5, 0.1]
HIGH = [0.4, 0.2]


def _field(bounded: bool = True) -> VelocityGrowthField:
    torch.manual_seed(0)
    f = VelocityGrowthField(2, center=torch.zeros(2), scale=1.0, t_start=0.0, t_span=3.0)
    with torch.no_grad():  # a rate of +5 or -5 (after /t_span) wherever the field is asked
        last = f.growth_net[-1]
        last.weight.zero_()
        last.bias.fill_(15.0)
    if bounded:
        f.set_growth_bounds(KNOTS, LOW, HIGH)
    return f


def test_bounds_clamp_per_interval_with_the_outgoing_interval_at_knots():
    f = _field()
    t = torch.tensor([-1.0, 0.0, 0.5, 1.0, 2.9, 3.0, 7.0])
    g = f(t, torch.zeros(len(t), 2))[1].detach().reshape(-1)
    # above every bound: the high of the interval [t_k, t_{k+1}) that holds t (ends extended)
    np.testing.assert_array_equal(g.numpy(), np.float32([0.4, 0.4, 0.4, 0.2, 0.2, 0.2, 0.2]))
    with torch.no_grad():
        f.growth_net[-1].bias.fill_(-15.0)
    g = f(torch.tensor(0.5), torch.zeros(3, 2))[1].detach().reshape(-1)
    np.testing.assert_array_equal(g.numpy(), np.float32([-0.5] * 3))
    # inside the range the network's value passes unchanged
    with torch.no_grad():
        f.growth_net[-1].bias.fill_(0.45)  # 0.15 per unit time: inside [0.1, 0.2] on (1, 3)
    g = f(torch.tensor(2.0), torch.zeros(2, 2))[1].detach().reshape(-1)
    np.testing.assert_allclose(g.numpy(), 0.15, rtol=1e-6)


def test_bounded_mass_matches_the_runge_kutta_sum_of_the_bounds():
    """With the raw rate above every bound the log-mass is the Runge-Kutta quadrature of the
    piecewise-constant high bound, computed here independently (torchdiffeq's fixed-grid
    ``"rk4"`` is the 3/8 rule: stages at 0, 1/3, 2/3, 1 of a step, weights 1, 3, 3, 1 / 8)."""
    f = _field()
    n_steps = 3
    with torch.no_grad():
        _, lm = integrate(f, torch.zeros(4, 2), KNOTS, n_steps=n_steps)

    def high(t: float) -> float:
        k = min(max(int(np.searchsorted(KNOTS, t, side="right")) - 1, 0), len(HIGH) - 1)
        return HIGH[k]

    expected, total = [0.0], 0.0
    for a, b in zip(KNOTS[:-1], KNOTS[1:]):
        h = (b - a) / n_steps
        for s in range(n_steps):
            t0 = a + s * h
            total += h / 8 * (high(t0) + 3 * high(t0 + h / 3) + 3 * high(t0 + 2 * h / 3)
                              + high(t0 + h))
        expected.append(total)
    np.testing.assert_allclose(lm[:, 0].numpy(), expected, rtol=1e-5)
    # unbounded the same network multiplies the mass by e^15
    with torch.no_grad():
        _, lm_free = integrate(_field(bounded=False), torch.zeros(4, 2), KNOTS, n_steps=n_steps)
    np.testing.assert_allclose(float(lm_free[-1, 0]), 15.0, rtol=1e-5)


def test_bounds_are_validated_and_removable():
    f = _field(bounded=False)
    with pytest.raises(ValueError, match="K knots"):
        f.set_growth_bounds(KNOTS, [0.0], [1.0])
    with pytest.raises(ValueError, match="low <= high"):
        f.set_growth_bounds(KNOTS, [0.0, 2.0], [1.0, 1.0])
    f.set_growth_bounds(KNOTS, LOW, HIGH)
    assert {"growth_knots", "growth_low", "growth_high"} <= set(f.state_dict())
    f.set_growth_bounds(None, None, None)
    assert "growth_low" not in f.state_dict()
    assert float(f(torch.tensor(0.5), torch.zeros(1, 2))[1].detach()) == pytest.approx(5.0, rel=1e-6)


def _snapshots() -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    # a cloud whose right half doubles per unit time while the whole moves right
    snaps = []
    for k in range(3):
        n_left, n_right = 120, int(120 * 2 ** k)
        x = torch.cat([torch.randn(n_left, 2, generator=gen) * 0.3 + torch.tensor([-1.0, 0]),
                       torch.randn(n_right, 2, generator=gen) * 0.3 + torch.tensor([1.0, 0])])
        snaps.append(x + torch.tensor([0.3 * k, 0.0]))
    return snaps


def test_training_bounds_growth_by_the_coupling_targets_and_round_trips(tmp_path):
    snaps, times = _snapshots(), [0.0, 1.0, 2.0]
    cfg = TrainConfig(stage1_steps=150, stage2_steps=3, val_every=1, stage2_particles=64,
                      stage2_targets=64, val_particles=64)
    res = train(snaps, times, config=cfg, seed=0)
    f = res.field
    lows = [float(torch.cat(c.growth).min()) for c in res.couplings]
    highs = [float(torch.cat(c.growth).max()) for c in res.couplings]
    np.testing.assert_allclose(f.growth_knots.numpy(), times)
    np.testing.assert_allclose(f.growth_low.numpy(), lows, rtol=1e-6)
    np.testing.assert_allclose(f.growth_high.numpy(), highs, rtol=1e-6)
    assert highs[0] > 0.3 and lows[0] < highs[0]  # the right half grows, the left does not
    far = torch.tensor([[50.0, 50.0], [-50.0, 30.0], [0.0, -80.0]])
    with torch.no_grad():
        for t, k in ((0.0, 0), (0.7, 0), (1.0, 1), (1.9, 1), (2.0, 1)):
            g = f(torch.tensor(t), far)[1].detach().reshape(-1).numpy()
            assert np.all(g >= lows[k] - 1e-6) and np.all(g <= highs[k] + 1e-6)
    # the option off: no bounds are stored (the field as before the option existed)
    free = train(snaps, times, config=TrainConfig(**{**cfg.to_dict(), "bound_growth": False}),
                 seed=0)
    assert free.field.growth_low is None
    # stage 1 is identical either way (bounds are set after it)
    np.testing.assert_array_equal(free.history["stage1_loss"], res.history["stage1_loss"])
    # a saved model keeps its bounds; a record without them (older files) loads unbounded
    model = VGFM(f, config=cfg, info={"dim": 2, "times": times, "use_rep": "X",
                                      "time_key": "time"})
    path = tmp_path / "m.pt"
    model.save(path)
    back = VGFM.load(path)
    torch.testing.assert_close(back.field.growth_high, f.growth_high, rtol=0, atol=0)
    d = model.to_dict()
    d["state"] = {k: v for k, v in d["state"].items() if not k.startswith("growth_")
                  or k.startswith("growth_net")}
    old = VGFM.from_dict(d)
    assert old.field.growth_low is None


def test_time_free_growth_gets_one_range_over_all_intervals():
    """With ``growth_form="x"`` the bound is the range of every interval's growth targets
    together, the same at all times, so differences between states stay time-free."""
    snaps, times = _snapshots(), [0.0, 1.0, 2.0]
    cfg = TrainConfig(stage1_steps=150, stage2_steps=3, val_every=1, stage2_particles=64,
                      stage2_targets=64, val_particles=64, growth_form="x")
    res = train(snaps, times, config=cfg, seed=0)
    f = res.field
    every = torch.cat([torch.cat(c.growth) for c in res.couplings])
    np.testing.assert_allclose(f.growth_knots.numpy(), [times[0], times[-1]])
    np.testing.assert_allclose(f.growth_low.numpy(), [float(every.min())], rtol=1e-6)
    np.testing.assert_allclose(f.growth_high.numpy(), [float(every.max())], rtol=1e-6)
    far = torch.tensor([[50.0, 50.0], [-50.0, 30.0], [0.0, -80.0]])
    with torch.no_grad():
        g = [f(torch.tensor(t), far)[1].detach().reshape(-1) for t in (0.0, 0.9, 2.0)]
    for gt in g:  # within the range, and the same whatever the time
        assert bool((gt >= every.min() - 1e-6).all() and (gt <= every.max() + 1e-6).all())
        torch.testing.assert_close(gt, g[0], rtol=0, atol=0)


def test_bound_growth_option_is_checked():
    with pytest.raises(TypeError, match="bound_growth"):
        TrainConfig(bound_growth="yes")


def test_fit_records_the_bounds_per_interval():
    import vgfm

    adata = vgfm.datasets.two_gene_grn(n_cells_0=60, seed=0)
    model = vgfm.tl.fit(adata, "time", use_rep="X", stage1_steps=20, stage2_steps=0,
                        progress=False)
    entry = adata.uns["vgfm"]["growth_vs_motion"]
    np.testing.assert_allclose(entry["growth_low"], model.field.growth_low.numpy(), rtol=1e-6)
    np.testing.assert_allclose(entry["growth_high"], model.field.growth_high.numpy(), rtol=1e-6)
    assert len(entry["growth_high"]) == len(entry["start"]) == 4
    assert np.all(entry["growth_low"] <= entry["growth_high"])
    # every cell's reported growth lies within its interval's range (outgoing one; the last
    # time point takes the last interval's)
    t = adata.obs["time"].to_numpy(float)
    k = np.clip(np.searchsorted([0.0, 0.5, 1.0, 1.5, 2.0], t, side="right") - 1, 0, 3)
    g = adata.obs["vgfm_growth"].to_numpy()
    assert np.all(g >= entry["growth_low"][k] - 1e-5) and np.all(g <= entry["growth_high"][k] + 1e-5)
    # time-free growth: one range, recorded for every interval
    model = vgfm.tl.fit(adata, "time", use_rep="X", stage1_steps=20, stage2_steps=0,
                        progress=False, growth_form="x")
    entry = adata.uns["vgfm"]["growth_vs_motion"]
    assert model.field.growth_low.numel() == 1
    np.testing.assert_allclose(entry["growth_low"], [float(model.field.growth_low)] * 4,
                               rtol=1e-6)
    np.testing.assert_allclose(entry["growth_high"], [float(model.field.growth_high)] * 4,
                               rtol=1e-6)
    g = adata.obs["vgfm_growth"].to_numpy()
    assert g.min() >= entry["growth_low"][0] - 1e-5 and g.max() <= entry["growth_high"][0] + 1e-5
