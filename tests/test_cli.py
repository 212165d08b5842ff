"""The ``vgfm`` command line, run as a subprocess on a tiny synthetic time course."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import vgfm
from vgfm.cli import _option, main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LABELS = ["day 0", "day 1", "day 2", "day 3"]
CELLS_PER_TIME = 30
SIZES = {"day 0": 100.0, "day 1": 150.0, "day 2": 230.0, "day 3": 300.0}
FAST = ["--option", "stage1_steps=30", "--option", "stage2_steps=2", "--option", "hidden=16"]


def run_cli(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python -m vgfm.cli ARGS`` with one torch thread and return the finished process."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    return subprocess.run(
        [sys.executable, "-m", "vgfm.cli", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, env=env,
    )


def run_in_process(capsys: pytest.CaptureFixture[str], *args: str | Path
                   ) -> subprocess.CompletedProcess:
    """Run :func:`vgfm.cli.main` in this process (faster), returning a process-like result."""
    capsys.readouterr()
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), code, captured.out, captured.err)


def assert_user_error(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """Exit status 2, no traceback, exactly one ``vgfm: error:`` line naming ``fragments``."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("vgfm: error: ")]
    assert len(lines) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def tiny_time_course(seed: int = 0) -> ad.AnnData:
    """4 time points x 30 cells drifting along a line in 3 dimensions, with a fake UMAP."""
    rng = np.random.default_rng(seed)
    blocks, labels = [], []
    for k, label in enumerate(LABELS):
        centre = np.array([1.0 * k, 0.5 * k, 0.0])
        blocks.append(centre + 0.3 * rng.standard_normal((CELLS_PER_TIME, 3)))
        labels += [label] * CELLS_PER_TIME
    x = np.concatenate(blocks).astype(np.float32)
    adata = ad.AnnData(
        X=np.abs(x @ rng.uniform(0.2, 1.0, size=(3, 5))).astype(np.float32),
        obs=pd.DataFrame(
            {"day": pd.Categorical(labels, categories=LABELS, ordered=True)},
            index=[f"cell_{i}" for i in range(len(labels))],
        ),
        var=pd.DataFrame(index=[f"g{j}" for j in range(5)]),
    )
    adata.obsm["X_pca"] = x
    adata.obsm["X_umap"] = x[:, :2] * 2.0
    return adata


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Input file, and the outputs of one ``vgfm fit`` and one ``vgfm simulate`` run."""
    root = tmp_path_factory.mktemp("cli")
    paths = {
        "input": root / "in.h5ad",
        "sizes": root / "sizes.csv",
        "fitted": root / "fitted.h5ad",
        "model": root / "model.pt",
        "simulated": root / "simulated.h5ad",
    }
    tiny_time_course().write_h5ad(paths["input"])
    pd.DataFrame({"time": list(SIZES), "size": list(SIZES.values())}).to_csv(
        paths["sizes"], index=False
    )
    proc = run_cli(
        "fit", paths["input"], "--time-key", "day", "--use-rep", "X_pca",
        "-o", paths["fitted"], "--holdout-time", "day 2",
        "--population-size-file", paths["sizes"], "--save-model", paths["model"],
        "--seed", "3", "--quiet", *FAST,
    )
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("simulate", paths["fitted"], "-o", paths["simulated"], "--n-cells", "12",
                   "--seed", "1", "--n-per-interval", "4")
    assert proc.returncode == 0, proc.stderr
    return paths


# ------------------------------------------------------------------------------------ fit
def test_fit_writes_fields(files: dict[str, Path]) -> None:
    before = ad.read_h5ad(files["input"])
    adata = ad.read_h5ad(files["fitted"])
    n = len(LABELS) * CELLS_PER_TIME
    assert adata.obsm["vgfm_velocity"].shape == (n, 3)
    assert np.isfinite(adata.obsm["vgfm_velocity"]).all()
    assert adata.obs["vgfm_growth"].shape == (n,)
    assert np.isfinite(adata.obs["vgfm_growth"]).all()
    info = adata.uns["vgfm"]
    params = info["params"]
    assert params["time_key"] == "day" and params["use_rep"] == "X_pca"
    assert params["seed"] == 3 and params["holdout_time"] == "day 2"
    assert (params["stage1_steps"], params["stage2_steps"], params["hidden"]) == (30, 2, 16)
    np.testing.assert_allclose(info["population_size"], list(SIZES.values()))
    np.testing.assert_allclose(info["relative_size"], np.array(list(SIZES.values())) / 100.0)
    np.testing.assert_array_equal(info["held_out"], [False, False, True, False])
    np.testing.assert_allclose(info["times"], [0.0, 1.0, 2.0, 3.0])
    # nothing else changed: the input fields are all still there, X_umap untouched
    np.testing.assert_array_equal(adata.obsm["X_umap"], before.obsm["X_umap"])
    np.testing.assert_array_equal(adata.obsm["X_pca"], before.obsm["X_pca"])
    assert "vgfm" not in before.uns


def test_fit_saved_model_matches_file(files: dict[str, Path]) -> None:
    adata = ad.read_h5ad(files["fitted"])
    model = vgfm.VGFM.load(files["model"], adata)
    from_uns = vgfm.VGFM.from_adata(adata)
    x = np.asarray(adata.obsm["X_pca"])
    v1, g1 = model.predict(x, 1.0)
    v2, g2 = from_uns.predict(x, 1.0)
    np.testing.assert_allclose(v1, v2, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(g1, g2, rtol=1e-6, atol=1e-6)


def test_population_size_on_command_line(tmp_path: Path, files: dict[str, Path],
                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.h5ad"
    proc = run_in_process(capsys, "fit", files["input"], "--time-key", "day", "-o", out,
                          "--quiet", "--population-size", "10", "20", "40", "80",
                          "--method", "otcfm", *FAST)
    assert proc.returncode == 0, proc.stderr
    info = ad.read_h5ad(out).uns["vgfm"]
    np.testing.assert_allclose(info["relative_size"], [1.0, 2.0, 4.0, 8.0])
    assert info["params"]["method"] == "otcfm"


# ------------------------------------------------------------------------------- simulate
def test_simulate_writes_trajectories(files: dict[str, Path]) -> None:
    adata = ad.read_h5ad(files["simulated"])
    traj = adata.uns["vgfm_trajectories"]
    # observed times 0..3 with 4 points per interval -> 3 * 4 + 1 output times
    np.testing.assert_allclose(traj["t"], np.linspace(0.0, 3.0, 13))
    assert traj["x"].shape == (13, 12, 3)
    assert traj["log_mass"].shape == (13, 12)
    np.testing.assert_array_equal(traj["log_mass"][0], 0.0)
    start = adata[list(traj["start_obs"])]
    assert (start.obs["day"] == "day 0").all()
    np.testing.assert_allclose(traj["x"][0], start.obsm["X_pca"], atol=1e-6)
    assert "vgfm" in adata.uns and "vgfm_velocity" in adata.obsm  # the fit is kept


# ------------------------------------------------------------------------------- evaluate
def test_evaluate_json(files: dict[str, Path]) -> None:
    proc = run_cli("evaluate", files["fitted"], "--json")
    assert proc.returncode == 0, proc.stderr
    records = json.loads(proc.stdout)
    assert len(records) == len(LABELS) - 1
    assert [r["label"] for r in records] == LABELS[1:]
    assert [r["held_out"] for r in records] == [False, True, False]
    for r in records:
        assert r["w1"] >= 0 and np.isfinite(r["w1"])
        assert r["rme"] >= 0 and np.isfinite(r["rme"])
    # the printed numbers are those of the library function on the same file
    expected = vgfm.tl.evaluate(ad.read_h5ad(files["fitted"]))
    np.testing.assert_allclose([r["w1"] for r in records], expected["w1"], rtol=1e-6)
    np.testing.assert_allclose([r["rme"] for r in records], expected["rme"], rtol=1e-6)


def test_evaluate_table(files: dict[str, Path]) -> None:
    proc = run_cli("evaluate", files["fitted"])
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 2 + len(LABELS) - 1  # header, separator, one row per time point
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert {"time", "w1", "rme", "held_out"} <= set(header)
    assert len({len(line) for line in lines}) == 1  # aligned columns


# ----------------------------------------------------------------------------------- plot
def test_plot_writes_pngs(tmp_path: Path, files: dict[str, Path]) -> None:
    figdir = tmp_path / "figs"
    proc = run_cli("plot", files["simulated"], "-o", figdir)
    assert proc.returncode == 0, proc.stderr
    expected = {"growth_umap.png", "velocity_umap.png", "trajectories_umap.png", "mass.png",
                "history.png"}
    assert {p.name for p in figdir.iterdir()} == expected
    for name in expected:
        assert (figdir / name).read_bytes()[:8] == PNG_MAGIC


def test_plot_without_embedding_or_trajectories(
    tmp_path: Path, files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    adata = ad.read_h5ad(files["fitted"])
    del adata.obsm["X_umap"]
    path = tmp_path / "no_umap.h5ad"
    adata.write_h5ad(path)
    proc = run_in_process(capsys, "plot", path, "-o", tmp_path / "figs")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["history.png", "mass.png"]
    assert "X_umap" in proc.stderr  # the skipped plots are reported
    proc = run_in_process(capsys, "plot", path, "-o", tmp_path / "f2", "--basis", "tsne")
    assert_user_error(proc, "X_tsne")


# --------------------------------------------------------------------------------- errors
# Two error cases run as real subprocesses; the others in-process (same code path, faster).
def test_missing_input_file(tmp_path: Path) -> None:
    out = tmp_path / "out.h5ad"
    proc = run_cli("fit", tmp_path / "nope.h5ad", "-o", out)
    assert_user_error(proc, "nope.h5ad", "does not exist")
    assert not out.exists()


def test_each_warning_is_printed_once(tmp_path: Path, files: dict[str, Path]) -> None:
    """The command line's log handler and the library's fallback handler (for sessions that
    configured no logging) used to print every WARNING twice."""
    out = tmp_path / "out.h5ad"
    proc = run_cli("fit", files["input"], "--time-key", "day", "-o", out, "--quiet", *FAST)
    assert proc.returncode == 0, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if "population sizes are the cell counts" in ln]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("WARNING [vgfm] ")


def test_unknown_option_subprocess(tmp_path: Path, files: dict[str, Path]) -> None:
    out = tmp_path / "out.h5ad"
    proc = run_cli("fit", files["input"], "--time-key", "day", "-o", out, "--option", "nope=1")
    assert_user_error(proc, "nope", "valid options")
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "fragments"),
    [
        (["--time-key", "hour"], ["'hour'"]),
        (["--time-key", "day", "--option", "nope=1"], ["nope"]),
        (["--time-key", "day", "--use-rep", "X_scvi"], ["X_scvi"]),
        (["--time-key", "day", "--holdout-time", "day 0"], ["day 0"]),
        (["--time-key", "day", "--population-size", "1", "2"], ["population_size"]),
        (["--time-key", "day", "--population-size-file", "missing.csv"], ["missing.csv"]),
        (["--time-key", "day", "--mod", "rna"], ["h5mu"]),
    ],
    ids=["missing-time-key", "unknown-option", "bad-use-rep", "bad-holdout", "bad-sizes",
         "missing-sizes-file", "mod-on-h5ad"],
)
def test_fit_bad_input(tmp_path: Path, files: dict[str, Path], extra: list[str],
                       fragments: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.h5ad"
    assert_user_error(run_in_process(capsys, "fit", files["input"], "-o", out, *extra),
                      *fragments)
    assert not out.exists()


def test_fit_wrong_output_suffix(tmp_path: Path, files: dict[str, Path],
                                 capsys: pytest.CaptureFixture[str]) -> None:
    proc = run_in_process(capsys, "simulate", files["fitted"], "-o", tmp_path / "out.csv")
    assert_user_error(proc, "out.csv", ".h5ad")
    assert not (tmp_path / "out.csv").exists()


def test_commands_on_unfitted_file(tmp_path: Path, files: dict[str, Path],
                                   capsys: pytest.CaptureFixture[str]) -> None:
    for cmd in (["evaluate"], ["simulate", "-o", tmp_path / "x.h5ad"],
                ["plot", "-o", tmp_path / "figs"]):
        assert_user_error(run_in_process(capsys, cmd[0], files["input"], *cmd[1:]), "vgfm")
    assert not (tmp_path / "x.h5ad").exists()


def test_argparse_errors_exit_2(files: dict[str, Path], capsys: pytest.CaptureFixture[str]
                                ) -> None:
    proc = run_in_process(capsys, "fit", files["input"])  # no -o
    assert proc.returncode == 2 and "--output" in proc.stderr
    proc = run_in_process(capsys, "fit", files["input"], "-o", "x.h5ad", "--option", "reg")
    assert proc.returncode == 2 and "NAME=VALUE" in proc.stderr
    proc = run_in_process(capsys, "frobnicate")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


# ----------------------------------------------------------------------------------- help
def test_help_subprocess() -> None:
    proc = run_cli("--help")
    assert proc.returncode == 0
    assert "Examples" in proc.stdout and "simulate" in proc.stdout


@pytest.mark.parametrize("command", ["fit", "simulate", "evaluate", "plot", "demo"])
def test_help_each_command(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "Examples:" in out and f"vgfm {command}" in out


def test_option_parsing() -> None:
    assert _option("reg=0.05") == ("reg", 0.05)
    assert _option("stage1_steps=500") == ("stage1_steps", 500)
    assert _option("flag=True") == ("flag", True)
    assert _option(" name = abc ") == ("name", "abc")
    assert _option("x=none") == ("x", None)


def test_main_returns_2_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    handlers = list(logging.getLogger("vgfm").handlers)
    assert main(["evaluate", str(tmp_path / "missing.h5ad")]) == 2
    err = capsys.readouterr().err
    assert err.strip().startswith("vgfm: error: input file") and "Traceback" not in err
    assert logging.getLogger("vgfm").handlers == handlers  # main cleans up its log handler


# ----------------------------------------------------------------------------------- demo
def test_demo_fast(tmp_path: Path) -> None:
    from vgfm._demo import run_demo

    result = run_demo(tmp_path / "demo", seed=0, progress=False, fast=True)
    adata = ad.read_h5ad(result["h5ad"])
    assert adata.n_vars == 30 and list(adata.var_names[:2]) == ["gene_1", "gene_2"]
    # the lifted genes are the stored map applied to the two true genes (+ noise, clipped)
    gmap = adata.uns["gene_map"]
    lifted = gmap["baseline"] + np.asarray(adata.X[:, :2], dtype=float) @ gmap["weights"]
    resid = np.asarray(adata.X[:, 2:], dtype=float) - np.clip(lifted, 0, None)
    assert abs(resid.std() - gmap["noise_sd"]) < 0.2 * gmap["noise_sd"]
    for key in ("vgfm_velocity", "vgfm_velocity_umap", "X_pca", "X_umap"):
        assert key in adata.obsm
    for key in ("vgfm", "vgfm_trajectories", "vgfm_growth_genes"):
        assert key in adata.uns
    n_start = int((adata.obs["day"] == "day 0").sum())
    assert adata.uns["vgfm_trajectories"]["x"].shape[1] == n_start
    n_times = adata.obs["day"].nunique()
    table = pd.read_csv(result["evaluation_csv"])
    assert len(table) == n_times - 1 and {"w1", "rme"} <= set(table.columns)
    pd.testing.assert_frame_equal(table, result["evaluation"], check_dtype=False)
    md = result["evaluation_md"].read_text()
    assert "w1" in md and "day 0.5" in md and "Spearman" in md
    assert len(result["figures"]) == 6
    for path in result["figures"].values():
        assert Path(path).read_bytes()[:8] == PNG_MAGIC


# ------------------------------------------------------------------------ data safety (#12)
def _fresh_copy(src: Path, dst: Path) -> bytes:
    data = src.read_bytes()
    dst.write_bytes(data)
    return data


def test_interrupted_write_keeps_the_original(tmp_path: Path, files: dict[str, Path],
                                              capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """`simulate f -o f` whose writer dies half-way: f is still the complete old file."""
    path = tmp_path / "fitted.h5ad"
    before = _fresh_copy(files["fitted"], path)

    def dies_half_way(self, filename, *args, **kwargs):
        Path(filename).write_bytes(before[: len(before) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(ad.AnnData, "write_h5ad", dies_half_way)
    proc = run_in_process(capsys, "simulate", path, "-o", path, "--n-cells", "3")
    assert proc.returncode == 130
    assert "Traceback" not in proc.stderr
    assert [ln for ln in proc.stderr.splitlines() if ln.startswith("vgfm: ")] == [
        "vgfm: interrupted; files that were being written are left as they were"]
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["fitted.h5ad"]  # no temporary file left
    monkeypatch.undo()
    assert "vgfm" in ad.read_h5ad(path).uns


_KILL_DURING_WRITE = """
import sys, time
from pathlib import Path
import anndata as ad
from vgfm.cli import main

def slow_writer(self, filename, *args, **kwargs):
    data = Path(sys.argv[1]).read_bytes()
    with open(filename, "wb") as f:
        f.write(data[: len(data) // 2])
        f.flush()
    Path(sys.argv[2]).write_text("half written")
    time.sleep(120)

ad.AnnData.write_h5ad = slow_writer
sys.exit(main(["simulate", sys.argv[1], "-o", sys.argv[1], "--n-cells", "3"]))
"""


@pytest.mark.parametrize("sig", ["SIGKILL", "SIGTERM"])
def test_killed_during_write_keeps_the_original(tmp_path: Path, files: dict[str, Path],
                                                sig: str) -> None:
    import signal
    import time

    path = tmp_path / "fitted.h5ad"
    before = _fresh_copy(files["fitted"], path)
    marker = tmp_path / "marker"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.Popen([sys.executable, "-c", _KILL_DURING_WRITE, str(path), str(marker)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the writer never started"
            time.sleep(0.1)
        proc.send_signal(getattr(signal, sig))
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert path.read_bytes() == before
    assert "vgfm" in ad.read_h5ad(path).uns
    if sig == "SIGTERM":  # handled: one line, temporary file removed
        assert proc.returncode == 143, err
        assert "Traceback" not in err and "vgfm: terminated" in err
        assert sorted(p.name for p in tmp_path.iterdir()) == ["fitted.h5ad", "marker"]


def test_ctrl_c_during_fit(tmp_path: Path, files: dict[str, Path]) -> None:
    import signal
    import time

    out = tmp_path / "out.h5ad"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "vgfm.cli", "fit", str(files["input"]), "--time-key", "day",
         "-o", str(out), "--save-model", str(tmp_path / "m.pt"),
         "--option", "stage1_steps=1000000"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        # a suite started in the background of a non-interactive shell ignores SIGINT, and an
        # ignored signal stays ignored across exec: give the child the default disposition,
        # as an interactive user's terminal does
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        lines = []
        deadline = time.monotonic() + 240
        for line in proc.stderr:  # wait until training runs
            lines.append(line)
            if "couplings ready" in line or time.monotonic() > deadline:
                break
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = "".join(lines) + rest
    # 130 is what `vgfm` returns; a shell reports the same $? = 130 for a process that ends by
    # SIGINT, which one CI machine's interpreter did at exit after the handler below had run
    assert proc.returncode in (130, -signal.SIGINT), err
    assert "Traceback" not in err
    assert [ln for ln in err.splitlines() if ln.startswith("vgfm: ")] == [
        "vgfm: interrupted; files that were being written are left as they were"]
    assert not out.exists() and not (tmp_path / "m.pt").exists()


def test_user_errors_are_one_line(tmp_path: Path, files: dict[str, Path],
                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.h5ad"
    notes = tmp_path / "notes.h5ad"
    notes.write_text("not hdf5")
    truncated = tmp_path / "truncated.h5ad"
    truncated.write_bytes(files["input"].read_bytes()[:3000])
    folder = tmp_path / "folder.h5ad"
    folder.mkdir()
    afile = tmp_path / "afile"
    afile.write_text("x")
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    header_only = tmp_path / "header.csv"
    header_only.write_text("time,size\n")
    day = ["--time-key", "day"]
    cases = [
        (["fit", notes, "-o", out, *day], ["notes.h5ad", "not an HDF5 file"]),
        (["fit", truncated, "-o", out, *day], ["truncated.h5ad", "truncated"]),
        (["fit", folder, "-o", out, *day], ["folder.h5ad", "is a directory"]),
        (["evaluate", folder], ["folder.h5ad", "is a directory"]),
        (["fit", files["input"], "-o", afile / "o.h5ad", *day], ["afile", "is a file"]),
        (["fit", files["input"], "-o", folder, *day], ["folder.h5ad", "is a directory"]),
        (["simulate", files["fitted"], "-o", folder], ["folder.h5ad", "is a directory"]),
        (["fit", files["input"], "-o", out, *day, "--save-model", afile / "m.pt"],
         ["--save-model", "afile", "is a file"]),
        (["fit", files["input"], "-o", out, *day, "--save-model", tmp_path],
         ["--save-model", "is a directory"]),
        (["fit", files["input"], "-o", out, *day, "--save-model", out],
         ["--save-model", "its own file"]),
        (["fit", files["input"], "-o", out, *day, "--population-size-file", empty],
         ["empty.csv", "empty"]),
        (["fit", files["input"], "-o", out, *day, "--population-size-file", header_only],
         ["header.csv", "no rows"]),
        (["fit", files["input"], "-o", out, *day, "--device", "nonsense"], ["nonsense"]),
        (["fit", files["input"], "-o", out, *day, "--time-values", "0", "1"],
         ["--time-order"]),
    ]
    import torch

    if not torch.cuda.is_available():
        cases.append((["fit", files["input"], "-o", out, *day, "--device", "cuda"],
                      ["cuda", "CUDA is not available"]))
    for args, fragments in cases:
        assert_user_error(run_in_process(capsys, *args), *fragments)
        assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["notes.h5ad", "truncated.h5ad", "folder.h5ad", "afile", "empty.csv", "header.csv"])


def test_save_model_bad_path_checked_before_training(tmp_path: Path, files: dict[str, Path],
                                                     capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    monkeypatch.setattr(vgfm.tl, "fit", lambda *a, **k: calls.append(1))
    (tmp_path / "afile").write_text("x")
    proc = run_in_process(capsys, "fit", files["input"], "--time-key", "day", "-o",
                          tmp_path / "o.h5ad", "--save-model", tmp_path / "afile" / "m.pt")
    assert_user_error(proc, "afile")
    assert calls == []


def test_version_does_not_import_torch_or_scanpy() -> None:
    code = ("import sys; from vgfm.cli import main; rc = main(['--version']); "
            "print(rc, sorted(m for m in ('torch', 'scanpy', 'anndata') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "0 []"
    assert proc.stdout.startswith(f"vgfm {vgfm.__version__}")


def test_time_order_and_values_pass_through(tmp_path: Path, files: dict[str, Path],
                                            capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict] = []
    real_fit = vgfm.tl.fit

    def spy(*args, **kwargs):
        seen.append(kwargs)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(vgfm.tl, "fit", spy)
    out = tmp_path / "o.h5ad"
    proc = run_in_process(capsys, "fit", files["input"], "--time-key", "day", "-o", out,
                          "--quiet", "--time-order", *LABELS, "--time-values", "0", "1", "2",
                          "4", *FAST)
    assert proc.returncode == 0, proc.stderr
    assert seen[-1]["time_order"] == LABELS and seen[-1]["time_values"] == [0.0, 1.0, 2.0, 4.0]
    np.testing.assert_allclose(ad.read_h5ad(out).uns["vgfm"]["times"], [0.0, 1.0, 2.0, 4.0])
    proc = run_in_process(capsys, "fit", files["input"], "--time-key", "day", "-o", out,
                          "--quiet", *FAST)
    assert proc.returncode == 0, proc.stderr
    assert "time_order" not in seen[-1] and "time_values" not in seen[-1]


def test_evaluate_output(tmp_path: Path, files: dict[str, Path],
                         capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "fitted.h5ad"
    before = _fresh_copy(files["fitted"], path)
    proc = run_in_process(capsys, "evaluate", path)
    assert proc.returncode == 0, proc.stderr
    assert path.read_bytes() == before  # nothing written, and nothing claimed
    assert "added" not in proc.stderr and "no file written" in proc.stderr
    out = tmp_path / "evaluated.h5ad"
    proc = run_in_process(capsys, "evaluate", path, "-o", out, "--json")
    assert proc.returncode == 0, proc.stderr
    stored = ad.read_h5ad(out).uns["vgfm"]["evaluation"]
    records = json.loads(proc.stdout)
    np.testing.assert_allclose(stored["w1"], [r["w1"] for r in records], rtol=1e-9)
    assert list(stored["label"]) == LABELS[1:]


def test_growth_vs_truth_one_colour_scale() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vgfm._demo import growth_vs_truth

    rng = np.random.default_rng(0)
    n = 90
    adata = ad.AnnData(
        X=np.zeros((n, 2), np.float32),
        obs=pd.DataFrame({
            "day": pd.Categorical(np.repeat(["day 0", "day 1", "day 2"], 30)),
            "true_growth": rng.uniform(-0.2, 0.8, n),
            "vgfm_growth": rng.normal(0.3, 1.5, n),  # wider range than the truth
        }, index=[f"c{i}" for i in range(n)]),
    )
    adata.obsm["X_umap"] = rng.normal(size=(n, 2))
    fig = growth_vs_truth(adata)
    try:
        true_map, learned_map, scatter = fig.axes[:3]
        norms = [ax.collections[0].norm for ax in (true_map, learned_map)]
        assert norms[0] is norms[1]  # one colour scale for both maps
        lim = np.abs(adata.obs["true_growth"]).max()
        assert (norms[0].vmin, norms[0].vmax) == pytest.approx((-lim, lim))
        np.testing.assert_allclose(np.sort(learned_map.collections[0].get_array()),
                                   np.sort(adata.obs["vgfm_growth"]))
        assert len(fig.axes) == 4  # three panels and a single colour bar
    finally:
        plt.close(fig)
