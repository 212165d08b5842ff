"""Curved interpolants: graph routes along the cells and the least-action speed of a growing cell."""

import math

import numpy as np
import pytest
import torch

from vgfm._core.matcher import VelocityGrowthMatcher, least_action_clock
from vgfm._core.ode import integrate
from vgfm._core.routes import GraphRoutes
from vgfm._core.train import TrainConfig, train


def _arc(n: int, radius: float = 1.0, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = np.linspace(0.0, np.pi, n)
    return radius * np.c_[np.cos(a), np.sin(a)] + noise * rng.standard_normal((n, 2))


def test_route_follows_a_half_circle_at_constant_speed():
    arc = _arc(400)
    r = GraphRoutes([arc[:200], arc[200:]], n_neighbors=5)
    s = torch.linspace(0.0, 1.0, 11)
    i, j = torch.zeros(11, dtype=torch.long), torch.full((11,), 199, dtype=torch.long)
    x, u = r.interpolate(0, i, 1, j, s, dt=2.0)
    # every point on the circle, at the angle proportional to s (constant speed along the arc)
    np.testing.assert_allclose(x.norm(dim=1).numpy(), 1.0, atol=5e-3)
    angle = np.arctan2(x[:, 1].numpy(), x[:, 0].numpy())
    np.testing.assert_allclose(angle, np.pi * s.numpy(), atol=0.02)
    # speed: arc length / dt; direction tangent to the circle
    np.testing.assert_allclose(u.norm(dim=1).numpy(), np.pi / 2.0, rtol=0.01)
    radial = (u * x).sum(1) / (u.norm(dim=1) * x.norm(dim=1))
    assert float(radial.abs().max()) < 0.05
    assert r.detour_share(0, i, 1, j) == 1.0


def test_route_keeps_the_chord_inside_a_blob_and_outside_the_leading_directions():
    rng = np.random.default_rng(1)
    blob = rng.standard_normal((300, 2))
    r = GraphRoutes([blob[:150], blob[150:]], n_neighbors=8, max_detour=1.2)
    i, j = torch.arange(50), torch.arange(50)
    s = torch.rand(50, generator=torch.Generator().manual_seed(0))
    x0, x1 = torch.as_tensor(blob[:50]), torch.as_tensor(blob[150:200])
    x, u = r.interpolate(0, i, 1, j, s, dt=1.0, x0=x0, x1=x1)
    chord = (1 - s[:, None]) * x0 + s[:, None] * x1
    kept = r.detour_share(0, i, 1, j)
    straight = torch.isclose(x, chord, atol=1e-9).all(1)
    # the pairs that keep their chord get exactly the straight interpolant and its velocity (a
    # route of one graph edge is its chord too); the others bend
    assert 0 < round((1 - kept) * 50) <= int(straight.sum()) < 50
    torch.testing.assert_close(u[straight], (x1 - x0)[straight])
    # in 30 dimensions with rank 2, only the 2 leading principal directions bend
    hi = np.concatenate([_arc(400) * 3.0, 0.1 * rng.standard_normal((400, 28))], 1)
    r = GraphRoutes([hi[:200], hi[200:]], n_neighbors=5, rank=2)
    i, j = torch.zeros(5, dtype=torch.long), torch.full((5,), 199, dtype=torch.long)
    s = torch.linspace(0.1, 0.9, 5)
    x0, x1 = torch.as_tensor(hi[[0] * 5]), torch.as_tensor(hi[[399] * 5])
    x, _ = r.interpolate(0, i, 1, j, s, dt=1.0, x0=x0, x1=x1)
    off = torch.as_tensor(np.eye(30) - r.P.T @ r.P)  # projector onto the other directions
    chord = (1 - s[:, None]) * x0 + s[:, None] * x1
    torch.testing.assert_close((x - chord) @ off, torch.zeros_like(x), atol=1e-7, rtol=0)
    np.testing.assert_allclose(x[:, :2].norm(dim=1).numpy(), 3.0, rtol=0.03)


def test_unconnected_landmarks_keep_the_chord():
    a, b = _arc(100), _arc(100) + 50.0  # two far apart arcs: no kNN edge between them
    r = GraphRoutes([a, b], n_neighbors=3)
    i, j = torch.arange(10), torch.arange(10)
    s = torch.full((10,), 0.3, dtype=torch.float64)
    x, u = r.interpolate(0, i, 1, j, s, dt=1.0)
    x0, x1 = torch.as_tensor(a[:10]), torch.as_tensor(b[:10])
    torch.testing.assert_close(x, 0.7 * x0 + 0.3 * x1)
    torch.testing.assert_close(u, x1 - x0)


@pytest.mark.parametrize("g", [-3.0, -0.5, 1e-9, 0.7, 2.5])
def test_least_action_clock_is_the_euler_lagrange_solution(g):
    s = torch.linspace(0.0, 1.0, 201, dtype=torch.float64)
    tau, rate = least_action_clock(s, torch.full_like(s, g))
    assert float(tau[0]) == pytest.approx(0.0, abs=1e-12)
    assert float(tau[-1]) == pytest.approx(1.0, abs=1e-12)
    # the rate is the derivative of the clock
    fd = torch.diff(tau) / torch.diff(s)
    mid = 0.5 * (rate[1:] + rate[:-1])
    torch.testing.assert_close(fd, mid, atol=2e-4 * (1 + abs(g) ** 2), rtol=1e-3)
    # momentum m(s) * dtau/ds is constant for a mass exp(g s)
    p = torch.exp(g * s) * rate
    assert float(p.max() - p.min()) < 1e-9 * float(p.abs().max()) + 1e-12
    # and it has the least action among clocks: compare with the constant speed
    act = lambda r: float(torch.trapezoid(torch.exp(g * s) * r**2, s))  # noqa: E731
    assert act(rate) <= act(torch.ones_like(s)) + 1e-12


def test_least_action_matcher_velocity_integrates_to_the_displacement():
    m = VelocityGrowthMatcher(sigma=0.0, speed="least_action")
    x0 = torch.tensor([[0.0, 0.0], [1.0, 2.0]], dtype=torch.float64)
    x1 = torch.tensor([[3.0, 1.0], [1.0, -2.0]], dtype=torch.float64)
    growth = torch.tensor([1.5, -0.75], dtype=torch.float64)  # per unit time; dt = 2
    s = torch.linspace(0, 1, 2001, dtype=torch.float64)
    xs, us = [], []
    for v in s:
        b = m.sample(x0, x1, growth, t0=0.0, dt=2.0, s=torch.full((2,), float(v), dtype=torch.float64))
        xs.append(b.x)
        us.append(b.u)
    xs, us = torch.stack(xs), torch.stack(us)
    disp = torch.trapezoid(us, s, dim=0) * 2.0  # ∫ u dt over the interval
    torch.testing.assert_close(disp, x1 - x0, atol=1e-5, rtol=0)
    # the growing cell is past half way at mid-time, the shrinking one behind
    half = xs[1000]
    frac = ((half - x0) * (x1 - x0)).sum(1) / ((x1 - x0) ** 2).sum(1)
    expected = [(1 - math.exp(-1.5)) / (1 - math.exp(-3.0)),
                (1 - math.exp(0.75)) / (1 - math.exp(1.5))]
    np.testing.assert_allclose(frac.numpy(), expected, rtol=1e-9)


def test_options_are_validated():
    with pytest.raises(ValueError, match="interpolant must be one of"):
        TrainConfig(interpolant="geodesic")
    with pytest.raises(ValueError, match="interpolant_speed must be one of"):
        TrainConfig(interpolant_speed="fast")
    assert TrainConfig(chord_gap=None).chord_gap is None
    for bad in (0.0, -1.0, math.inf):
        with pytest.raises(ValueError, match="chord_gap"):
            TrainConfig(chord_gap=bad)
    with pytest.raises(TypeError, match="chord_gap"):
        TrainConfig(chord_gap="2")


def test_routes_put_the_unseen_time_on_the_arc():
    """Cells travel along a half circle; the middle snapshot is held out. With routes the
    flow's population at the held-out time lies on the circle; the chords cut inside."""
    rng = np.random.default_rng(0)
    snaps = []
    for lo, hi in [(0.0, 0.3), (0.3 * np.pi, 0.5 * np.pi), (np.pi - 0.3, np.pi)]:
        a = rng.uniform(lo, hi, 200)
        snaps.append(np.c_[np.cos(a), np.sin(a)] + 0.02 * rng.standard_normal((200, 2)))
    # the cells of the held-out time are not in the graph: add cells all along the arc at the
    # end points' times (as in a snapshot that keeps some cells behind)
    trail = rng.uniform(0.0, np.pi, 60)
    snaps[2] = np.concatenate([snaps[2], np.c_[np.cos(trail), np.sin(trail)]])
    radius = {}
    for name in ("linear", "routes"):
        cfg = TrainConfig(method="otcfm", interpolant=name, stage1_steps=400, stage2_steps=0,
                          sigma=0.02, val_fraction=0.0)
        res = train(snaps, [0.0, 1.0, 2.0], config=cfg, seed=0, holdout=1)
        with torch.no_grad():
            x, _ = integrate(res.field, torch.as_tensor(snaps[0], dtype=torch.float32),
                             [0.0, 1.0])
        radius[name] = float(x[-1].norm(dim=1).median())
    assert radius["linear"] < 0.8, radius
    assert abs(radius["routes"] - 1.0) < 0.15, radius


def test_score_bridge_follows_the_routes():
    """The stochastic model's score at mid-interval describes the routed population: between
    two clusters at the ends of a half circle (with a trail of cells along it) the density at
    mid-time sits on the arc with routes, on the chord with straight paths."""
    from vgfm._core.sde import ScoreConfig, train_score

    rng = np.random.default_rng(0)
    ends = []
    for lo, hi in [(0.0, 0.3), (np.pi - 0.3, np.pi)]:
        a = rng.uniform(lo, hi, 150)
        ends.append(np.c_[np.cos(a), np.sin(a)] + 0.02 * rng.standard_normal((150, 2)))
    trail = rng.uniform(0.0, np.pi, 60)
    ends[1] = np.concatenate([ends[1], np.c_[np.cos(trail), np.sin(trail)]])
    probe = torch.tensor([[0.0, 0.5]])  # between the chord (y ~ 0.1) and the arc (y = 1)
    sy = {}
    for name in ("linear", "routes"):
        res = train_score(ends, [0.0, 1.0], solver="exact",
                          options={"reg": 0.01, "interpolant": name}, sigma=0.05, floor=0.05,
                          center=torch.zeros(2), scale=1.0, config=ScoreConfig(steps=600),
                          seed=0)
        with torch.no_grad():
            sy[name] = float(res.field(torch.tensor([0.5]), probe)[0, 1])
    assert sy["linear"] < 0 < sy["routes"], sy


def test_least_action_speed_moves_a_growing_population_early():
    """A cloud moves from 0 to 1 while its mass grows sevenfold (G = 2): at half time the
    least-action flow has covered tau(0.5) = (1 - e^-1) / (1 - e^-2) = 0.73 of the way, the
    constant-speed flow half of it."""
    rng = np.random.default_rng(0)
    snaps = [0.05 * rng.standard_normal((300, 2)), 0.05 * rng.standard_normal((300, 2))]
    snaps[1][:, 0] += 1.0
    expected = {"least_action": (1 - math.exp(-1.0)) / (1 - math.exp(-2.0)), "constant": 0.5}
    for speed, frac in expected.items():
        cfg = TrainConfig(interpolant_speed=speed, stage1_steps=400, stage2_steps=0, sigma=0.05,
                          val_fraction=0.0, reg_m=math.inf)
        res = train(snaps, [0.0, 1.0], population_size=[1.0, math.exp(2.0)], config=cfg, seed=0)
        with torch.no_grad():
            x, lm = integrate(res.field, torch.as_tensor(snaps[0], dtype=torch.float32),
                              [0.0, 0.5, 1.0])
        assert abs(float(x[1][:, 0].mean()) - frac) < 0.05, (speed, float(x[1][:, 0].mean()))
        assert abs(float(x[2][:, 0].mean()) - 1.0) < 0.05


def _explicit_route(r: GraphRoutes, graph_pred: np.ndarray, zi: np.ndarray, zj: np.ndarray,
                    a: int, b: int, s: float) -> tuple[np.ndarray, np.ndarray, bool]:
    """One route the slow way: its landmark path walked node by node, the cells replacing the
    end landmarks, the point at arc length ``s`` of the polyline and the unit tangent there."""
    nodes = [b]
    while nodes[-1] != a and graph_pred[a, nodes[-1]] >= 0:
        nodes.append(int(graph_pred[a, nodes[-1]]))
    if nodes[-1] != a or a == b:
        return zi + s * (zj - zi), zj - zi, False
    pts = np.array([zi, *r.zl[nodes[::-1][1:-1]], zj])
    seg = np.linalg.norm(np.diff(pts, axis=0), axis=1)
    chord = float(np.linalg.norm(zj - zi))
    total = float(seg.sum())
    if not (total > 0 and total <= r.max_detour * chord + 1e-12
            and seg.max() <= r.max_hop * chord):
        return zi + s * (zj - zi), zj - zi, False
    target, cum = s * total, np.concatenate([[0.0], np.cumsum(seg)])
    q = int(np.clip((cum[1:] < target).sum(), 0, len(seg) - 1))
    frac = (target - cum[q]) / seg[q] if seg[q] > 0 else 0.0
    tangent = (pts[q + 1] - pts[q]) / seg[q] if seg[q] > 0 else np.zeros_like(zi)
    return pts[q] + frac * (pts[q + 1] - pts[q]), total * tangent, True


def test_routes_agree_with_paths_walked_node_by_node():
    """The route lengths and points of the pointer-jumping tables equal those of the explicit
    polylines, on a noisy arc (most pairs follow a route) and a blob (most keep the chord)."""
    from scipy.sparse.csgraph import shortest_path

    rng = np.random.default_rng(3)
    for cells in (_arc(500, noise=0.03, seed=1), rng.standard_normal((400, 3))):
        half = len(cells) // 2
        r = GraphRoutes([cells[:half], cells[half:]], n_neighbors=6)
        # the graph's own predecessors, recomputed
        _, pred = shortest_path(r._graph, method="D", directed=False, return_predecessors=True)
        i = torch.as_tensor(rng.integers(0, half, 300))
        j = torch.as_tensor(rng.integers(0, len(cells) - half, 300))
        s = torch.as_tensor(rng.random(300))
        x, u = r.interpolate(0, i, 1, j, s, dt=1.0)
        followed = 0
        for n in range(300):
            zi, zj = r.z[0][int(i[n])], r.z[1][int(j[n])]
            a, b = int(r.nearest[0][int(i[n])]), int(r.nearest[1][int(j[n])])
            point, vel, follow = _explicit_route(r, pred, zi, zj, a, b, float(s[n]))
            followed += follow
            np.testing.assert_allclose((x[n].numpy() - r.mu) @ r.P.T, point, atol=1e-9)
            np.testing.assert_allclose(u[n].numpy() @ r.P.T, vel, atol=1e-9)
        assert r.detour_share(0, i, 1, j) == pytest.approx(followed / 300)
        assert 0 < followed < 300


def test_chord_gap_keeps_chords_inside_a_cloud_and_routes_across_a_bend():
    """With ``chord_gap`` a pair follows its route only where the chord leaves the cells: across
    the empty inside of a thin half circle every route is kept (the same points as without the
    rule); inside a broad Gaussian cloud the chords are kept."""
    arc = _arc(600, noise=0.02, seed=2)
    ends_i = torch.arange(0, 60)  # first snapshot: the start of the arc
    ends_j = torch.arange(240, 300)  # second snapshot: its end
    plain = GraphRoutes([arc[:300], arc[300:]], n_neighbors=6)
    gated = GraphRoutes([arc[:300], arc[300:]], n_neighbors=6, chord_gap=2.0)
    s = torch.rand(60, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert gated.detour_share(0, ends_i, 1, ends_j) == plain.detour_share(0, ends_i, 1, ends_j) == 1
    torch.testing.assert_close(gated.interpolate(0, ends_i, 1, ends_j, s, dt=1.0),
                               plain.interpolate(0, ends_i, 1, ends_j, s, dt=1.0))
    blob = np.random.default_rng(4).standard_normal((600, 2))
    i, j = torch.arange(200), torch.arange(200)
    plain = GraphRoutes([blob[:300], blob[300:]], n_neighbors=8)
    gated = GraphRoutes([blob[:300], blob[300:]], n_neighbors=8, chord_gap=2.0)
    assert plain.detour_share(0, i, 1, j) > 0.3
    assert gated.detour_share(0, i, 1, j) < 0.05
    x, u = gated.interpolate(0, i, 1, j, s.repeat(4)[:200], dt=1.0)
    kept = ~torch.as_tensor(gated._routes(0, i, 1, j)[-1])
    x0, x1 = torch.as_tensor(blob[:200]), torch.as_tensor(blob[300:500])
    torch.testing.assert_close(u[kept], (x1 - x0)[kept])
    with pytest.raises(ValueError, match="chord_gap must be positive"):
        GraphRoutes([blob[:300], blob[300:]], chord_gap=0.0)


@pytest.mark.parametrize(("kind", "gap"), [("arc", 1.5), ("blob", 1.5), ("blob", 1.0)])
def test_chord_gap_decisions_agree_with_brute_force(kind, gap):
    """The gap rule's pruned, bounded searches decide every landmark pair as the rule's
    definition does, computed here by sorting all distances: at 1/4, 1/2 or 3/4 of the way the
    distance to the n_neighbors-th nearest landmark exceeds chord_gap times the larger of the
    distances from the two ends to their n_neighbors-th other landmark."""
    rng = np.random.default_rng(7)
    pts = _arc(500, noise=0.03, seed=5) if kind == "arc" else rng.standard_normal((500, 3))
    k = 6
    r = GraphRoutes([pts[:250], pts[250:]], n_neighbors=k, chord_gap=gap)
    m = len(r.zl)
    a = rng.integers(0, m, 4000)
    b = rng.integers(0, m, 4000)
    got = r._chord_leaves(a, b)
    d_ll = np.sqrt(((r.zl[:, None, :] - r.zl[None, :, :]) ** 2).sum(-1))
    ends = np.maximum(np.sort(d_ll, 1)[:, k][a], np.sort(d_ll, 1)[:, k][b])
    want = np.zeros(len(a), dtype=bool)
    for f in (0.25, 0.5, 0.75):
        p = r.zl[a] + f * (r.zl[b] - r.zl[a])
        kth = np.sort(np.sqrt(((p[:, None, :] - r.zl[None, :, :]) ** 2).sum(-1)), 1)[:, k - 1]
        want |= kth > gap * ends
    # both decisions occur (inside a Gaussian cloud only with the lower gap: 1.5 leaves
    # almost no pair, which is the point of the rule)
    if kind == "arc" or gap < 1.5:
        assert 100 < want.sum() < len(a) - 100
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(r._chord_leaves(b, a), want)  # symmetric, from the cache
