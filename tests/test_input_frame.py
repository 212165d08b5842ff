"""``input_frame="global+time"``: the networks also see the cells relative to the population at
``t``, and the stage-1 noise follows the population's spread."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vgfm._core.matcher import VelocityGrowthMatcher
from vgfm._core.networks import VelocityGrowthField
from vgfm._core.ode import integrate
from vgfm._core.train import TrainConfig, snapshot_frames, train
from vgfm._model import VGFM

FAST = dict(stage1_steps=300, stage2_steps=0, val_every=1, stage2_particles=64,
            stage2_targets=64, val_particles=256, batch_size=128)


def _field(dim=2):
    return VelocityGrowthField(dim, center=torch.zeros(dim), scale=1.0, t_start=0.0, t_span=3.0,
                               input_frame="global+time")


def test_frame_interpolates_centres_and_scales_linearly():
    f = _field()
    knots = [0.0, 1.0, 3.0]
    centres = torch.tensor([[0.0, 0.0], [2.0, -1.0], [2.0, 5.0]])
    scales = [0.1, 1.0, 4.0]
    f.set_input_frame(knots, centres, scales)
    t = torch.tensor([-1.0, 0.0, 0.25, 1.0, 2.0, 3.0, 7.0])
    x = torch.randn(len(t), 2, generator=torch.Generator().manual_seed(0))
    z = f._inputs(t, x)[1]
    # independent computation with numpy (held constant outside the knots)
    for n, tn in enumerate(t.tolist()):
        tc = min(max(tn, 0.0), 3.0)
        c = [np.interp(tc, knots, centres[:, d].numpy()) for d in range(2)]
        s = np.interp(tc, knots, scales)
        want = (x[n].numpy() - np.array(c)) / s
        np.testing.assert_allclose(z[n, 2:4].numpy(), want, rtol=1e-5, atol=1e-6)
        assert float(z[n, 4]) == pytest.approx(tn / 3.0)
    assert torch.equal(z[:, :2], x)  # the global coordinates beside them (centre 0, scale 1)
    f.set_input_frame(None)  # no frame: the global coordinates twice
    assert torch.equal(f._inputs(t, x)[1][:, 2:4], x)


def test_side_by_side_inputs_are_the_global_and_the_population_frame():
    f = VelocityGrowthField(2, center=torch.tensor([1.0, -1.0]), scale=2.0, t_start=0.0,
                            t_span=3.0, input_frame="global+time", growth_form="x")
    # a time-free growth sees the global coordinates only
    assert f.velocity_net[0].in_features == 5 and f.growth_net[0].in_features == 2
    x = torch.tensor([[3.0, 1.0]])
    # no frame yet: the population's frame is the global one
    torch.testing.assert_close(f._inputs(torch.tensor(1.5), x)[1],
                               torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.5]]))
    f.set_input_frame([0.0, 3.0], torch.tensor([[0.0, 0.0], [3.0, 3.0]]), [1.0, 4.0])
    # t = 1.5: centre (1.5, 1.5), scale 2.5
    torch.testing.assert_close(f._inputs(torch.tensor(1.5), x)[1],
                               torch.tensor([[1.0, 1.0, 0.6, -0.2, 0.5]]))
    with torch.no_grad():  # ... and stays time-free although the frame moves
        g = f.growth_rate(torch.tensor([0.0, 1.5, 3.0]), x.expand(3, 2))
    torch.testing.assert_close(g, g[:1].expand(3, 1), rtol=1e-6, atol=1e-7)
    with pytest.raises(ValueError, match="input_frame must be one of"):
        VelocityGrowthField(2, center=torch.zeros(2), scale=1.0, t_start=0.0, t_span=1.0,
                            input_frame="local")
    with pytest.raises(ValueError, match="input_frame must be one of"):
        TrainConfig(input_frame="local")
    glob = VelocityGrowthField(2, center=torch.zeros(2), scale=1.0, t_start=0.0, t_span=1.0)
    with pytest.raises(ValueError, match=r"needs a field built with input_frame='global\+time'"):
        glob.set_input_frame([0.0, 1.0], torch.zeros(2, 2), [1.0, 1.0])


def test_frame_validation():
    f = _field()
    with pytest.raises(ValueError, match="increasing knots and positive scales"):
        f.set_input_frame([0.0, 1.0], torch.zeros(2, 2), [1.0, 0.0])
    with pytest.raises(ValueError, match=r"\(K, 2\) centres"):
        f.set_input_frame([0.0, 1.0], torch.zeros(2, 3), [1.0, 1.0])


def test_snapshot_frames_are_means_and_root_mean_variances_with_a_floor():
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(500, 3, generator=gen) * torch.tensor([1.0, 2.0, 3.0]) + 4.0
    b = torch.ones(7, 3)  # no spread: the floor
    c, s = snapshot_frames([a, b], scale=2.0)
    torch.testing.assert_close(c[0], a.mean(0))
    torch.testing.assert_close(c[1], b.mean(0))
    assert float(s[0]) == pytest.approx(float(((a - a.mean(0)) ** 2).mean().sqrt()), rel=1e-6)
    assert float(s[1]) == pytest.approx(0.05 * 2.0)


def test_noise_follows_the_spread_linearly():
    m = VelocityGrowthMatcher(sigma=0.3)
    n = 200_000
    zeros = torch.zeros(n, 1)
    for s_val, want in ((0.0, 0.1), (0.5, 0.5), (1.0, 0.9)):
        b = m.sample(zeros, zeros, torch.zeros(n), t0=0.0, dt=1.0, s=torch.full((n,), s_val),
                     generator=torch.Generator().manual_seed(2), noise_ends=(0.1, 0.9))
        assert float(b.x.std()) == pytest.approx(want, rel=0.01)
    # equal ends: the constant-noise interpolant, draw for draw
    x0, x1 = torch.randn(50, 2), torch.randn(50, 2)
    b1 = m.sample(x0, x1, torch.zeros(50), t0=0.0, dt=1.0,
                  generator=torch.Generator().manual_seed(3))
    b2 = m.sample(x0, x1, torch.zeros(50), t0=0.0, dt=1.0,
                  generator=torch.Generator().manual_seed(3), noise_ends=(0.3, 0.3))
    torch.testing.assert_close(b1.x, b2.x)


@pytest.mark.parametrize("form", ["x", "x+t"])
def test_time_free_growth_with_the_frame_survives_save_and_load(form):
    snaps, times = _spreading(seed=1)
    cfg = TrainConfig(**{**FAST, "stage1_steps": 20}, input_frame="global+time", growth_form=form)
    res = train(snaps, times, config=cfg, seed=0)
    back = VGFM.from_dict(VGFM(res.field, config=cfg, info={"dim": 2, "times": times}).to_dict())
    assert (back.field.input_frame, back.field.growth_form) == ("global+time", form)
    x = torch.randn(10, 2, generator=torch.Generator().manual_seed(5))
    t = torch.linspace(0.0, 2.0, 10)
    with torch.no_grad():
        torch.testing.assert_close(back.field(t, x)[1], res.field(t, x)[1])


def _spreading(seed=0):
    """A tight cluster (sd 0.05) that spreads to sd 1 in one time unit, then to sd 1.5."""
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(300, 2, generator=gen) * sd for sd in (0.05, 1.0, 1.5)], [0.0, 1.0, 2.0]


def test_training_sets_the_frame_and_it_survives_save_and_load():
    frame = "global+time"
    snaps, times = _spreading()
    res = train(snaps, times, config=TrainConfig(**FAST, input_frame=frame), seed=0)
    f = res.field
    torch.testing.assert_close(f.frame_knots, torch.tensor(times))
    # the frame is that of the training cells of each snapshot (validation cells held back);
    # the first snapshot (spread 0.05) is below the floor of 0.05 global scales (about 0.052)
    scales = f.frame_log_scale.exp()
    assert float(scales[0]) == pytest.approx(0.05 * float(f.scale), rel=1e-5)
    for k in (1, 2):
        full = float(((snaps[k] - snaps[k].mean(0)) ** 2).mean().sqrt())
        assert float(scales[k]) == pytest.approx(full, rel=0.05)
        assert float(scales[k]) > 0.05 * float(f.scale)
    # a held-out time point is not a knot: the frame interpolates across it
    held = train(snaps, times, holdout=1,
                 config=TrainConfig(**{**FAST, "stage1_steps": 20}, input_frame=frame), seed=0)
    torch.testing.assert_close(held.field.frame_knots, torch.tensor([0.0, 2.0]))
    default = train(snaps, times, config=TrainConfig(**FAST), seed=0)
    assert default.field.frame_knots is None
    model = VGFM(f, config=TrainConfig(**FAST, input_frame=frame),
                 info={"dim": 2, "times": times})
    back = VGFM.from_dict(model.to_dict())
    assert back.field.input_frame == frame
    x = torch.randn(20, 2)
    t = torch.linspace(-0.5, 2.5, 20)
    with torch.no_grad():
        v1, g1 = f(t, x)
        v2, g2 = back.field(t, x)
    torch.testing.assert_close(v1, v2)
    torch.testing.assert_close(g1, g2)


def test_a_tight_cluster_is_spread_out():
    """The global frame sees the day-0 cluster within one noise width and rolls out too narrow
    a population at day 1; the population's own frame keeps its spread."""
    snaps, times = _spreading(seed=4)
    ratios = {}
    for frame in ("global", "global+time"):
        res = train(snaps, times, config=TrainConfig(**{**FAST, "stage1_steps": 600},
                                                     input_frame=frame, method="otcfm"), seed=0)
        with torch.no_grad():
            xs, _ = integrate(res.field, snaps[0], times, n_steps=4)
        ratios[frame] = float(xs[1].var(0).sum() / snaps[1].var(0).sum())
    assert 0.85 < ratios["global+time"] < 1.15, ratios
    assert ratios["global+time"] > ratios["global"] + 0.3, ratios
