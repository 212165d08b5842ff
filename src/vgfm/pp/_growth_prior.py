"""Per-cell growth priors from proliferation and apoptosis gene scores.

In the spirit of moscot's ``score_genes_for_marginals``: two gene-set scores computed with
:func:`scanpy.tl.score_genes` (never re-implemented here) are turned into a relative,
per-cell growth prior that :func:`vgfm.tl.fit` can use as the prior on the source masses of
its couplings (``growth_prior=`` key).

Built-in gene sets
------------------
Proliferation
    The cell-cycle genes of Tirosh et al. (2016, *Science* 352:189, S-phase and G2/M
    programmes), the list used by Scanpy's cell-cycle tutorial (Kowalczyk et al. 2015,
    *Genome Res.* 25:1860 and the Regev lab list), with the current HGNC symbols added next
    to retired ones (``MLF1IP``/``CENPU``, ``FAM64A``/``PIMREG``, ``HN1``/``JPT1``).
Apoptosis
    Core genes of the MSigDB Hallmark *apoptosis* set (Liberzon et al. 2015, *Cell Syst.*
    1:417): caspases, BCL-2 family members, death receptors and ligands, and stress/damage
    response genes. Genes that are also cell-cycle genes (``TOP2A``, ``HMGB2`` in the
    Hallmark set) are left out so the two scores measure different programmes.

Mouse lists are the same genes with the mouse symbol convention (first letter upper case,
``Mki67``); these genes have one-to-one mouse orthologues under the same symbol.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp

from vgfm._data._containers import Data, resolve_container
from vgfm._data._population import growth_prior_per_snapshot

if TYPE_CHECKING:
    from anndata import AnnData

logger = logging.getLogger("vgfm")

__all__ = ["GENE_SETS", "gene_sets", "growth_prior", "growth_prior_per_snapshot"]

Organism = Literal["human", "mouse"]

_S_PHASE = (
    "MCM5 PCNA TYMS FEN1 MCM2 MCM4 RRM1 UNG GINS2 MCM6 CDCA7 DTL PRIM1 UHRF1 MLF1IP CENPU "
    "HELLS RFC2 RPA2 NASP RAD51AP1 GMNN WDR76 SLBP CCNE2 UBR7 POLD3 MSH2 ATAD2 RAD51 RRM2 "
    "CDC45 CDC6 EXO1 TIPIN DSCC1 BLM CASP8AP2 USP1 CLSPN POLA1 CHAF1B BRIP1 E2F8"
).split()
_G2M_PHASE = (
    "HMGB2 CDK1 NUSAP1 UBE2C BIRC5 TPX2 TOP2A NDC80 CKS2 NUF2 CKS1B MKI67 TMPO CENPF TACC3 "
    "FAM64A PIMREG SMC4 CCNB2 CKAP2L CKAP2 AURKB BUB1 KIF11 ANP32E TUBB4B GTSE1 KIF20B HJURP "
    "CDCA3 HN1 JPT1 CDC20 TTK CDC25C KIF2C RANGAP1 NCAPD2 DLGAP5 CDCA2 CDCA8 ECT2 KIF23 HMMR "
    "AURKA PSRC1 ANLN LBR CKAP5 CENPE CTCF NEK2 G2E3 GAS2L3 CBX5 CENPA"
).split()
_APOPTOSIS = (
    "CASP1 CASP2 CASP3 CASP4 CASP6 CASP7 CASP8 CASP9 BAX BID BIK BMF BCL2L1 BCL2L2 BCL2L10 "
    "BCL2L11 BCL10 BNIP3L BIRC3 XIAP DIABLO MCL1 CFLAR FAS FASLG TNF TNFSF10 TNFRSF12A PMAIP1 "
    "DDIT3 GADD45A GADD45B CDKN1A CDKN1B BTG2 BTG3 IER3 ATF3 JUN TXNIP SQSTM1 SAT1 PDCD4 DFFA "
    "DAP DAP3 SOD1 SOD2 GPX1 GPX3 GPX4 HMOX1 HSPB1 CLU LMNA SPTAN1 ROCK1 PEA15 CD44 ANXA1 APP "
    "PSEN1 PSEN2 TIMP1 TIMP2 TIMP3 IRF1 IL1A IL1B IL6 IL18 RELA CTNNB1 CYLD EMP1 ERBB3 F2R GSN "
    "IGFBP6 KRT18 LGALS3 MADD MGMT PPP3R1 RHOB RNASEL SMAD7 TAP1 TGFB2 TSPO VDAC2 WEE1"
).split()


def _mouse(symbols: Sequence[str]) -> tuple[str, ...]:
    return tuple(s[0] + s[1:].lower() for s in symbols)


#: Built-in gene sets: ``GENE_SETS[organism][kind]`` with kind ``"proliferation"`` or
#: ``"apoptosis"`` (sources in the module docstring).
GENE_SETS: dict[str, dict[str, tuple[str, ...]]] = {
    "human": {
        "proliferation": tuple(_S_PHASE + _G2M_PHASE),
        "apoptosis": tuple(_APOPTOSIS),
    },
    "mouse": {
        "proliferation": _mouse(_S_PHASE + _G2M_PHASE),
        "apoptosis": _mouse(_APOPTOSIS),
    },
}


def gene_sets(organism: Organism = "human") -> dict[str, list[str]]:
    """The built-in proliferation and apoptosis gene sets of ``organism``.

    Parameters
    ----------
    organism
        ``"human"`` (HGNC symbols, ``MKI67``) or ``"mouse"`` (MGI symbols, ``Mki67``).

    Returns
    -------
    ``{"proliferation": [...], "apoptosis": [...]}``; sources are given in
    :func:`vgfm.pp.growth_prior`.

    Examples
    --------
    >>> from vgfm.pp._growth_prior import gene_sets
    >>> sets = gene_sets("mouse")
    >>> "Mki67" in sets["proliferation"], "Casp3" in sets["apoptosis"]
    (True, True)
    """
    if organism not in GENE_SETS:
        raise ValueError(f"organism must be one of {sorted(GENE_SETS)}, got {organism!r}")
    return {kind: list(genes) for kind, genes in GENE_SETS[organism].items()}


def _expression(adata: AnnData, layer: str | None, use_raw: bool | None) -> tuple[Any, pd.Index]:
    """Matrix to score and its gene names, with Scanpy's choice of ``.raw`` (no copy)."""
    if layer is not None and use_raw:
        raise ValueError("pass either layer= or use_raw=True, not both")
    if layer is not None:
        if layer not in adata.layers:
            raise KeyError(
                f"layer={layer!r} is not in adata.layers (available: {list(adata.layers)}); "
                "pass an existing layer or layer=None for adata.X."
            )
        return adata.layers[layer], adata.var_names
    if use_raw is None:
        use_raw = adata.raw is not None
    if use_raw:
        if adata.raw is None:
            raise ValueError("use_raw=True but adata.raw is None; pass use_raw=False.")
        return adata.raw.X, adata.raw.var_names
    return adata.X, adata.var_names


def _looks_like_counts(x: Any, n_rows: int = 200) -> bool:
    sub = x[: min(n_rows, x.shape[0])]
    vals = sub.data if sp.issparse(sub) else np.asarray(sub).ravel()
    vals = np.asarray(vals, dtype=np.float64)
    return vals.size > 0 and bool(np.all(vals == np.round(vals))) and float(vals.max()) > 30


def _matched(
    genes: Sequence[str], names: pd.Index, kind: str, min_genes: int, organism: str,
    builtin: bool,
) -> list[str]:
    genes = list(dict.fromkeys(str(g) for g in genes))
    present = set(names)
    found = [g for g in genes if g in present]
    if len(found) >= min_genes:
        return found
    lower = {str(n).lower() for n in names}
    case_hits = sum(g.lower() in lower for g in genes)
    if builtin and case_hits >= min_genes:
        other = "mouse" if organism == "human" else "human"
        fix = (
            f"{case_hits} match when case is ignored: the data look like {other} symbols; "
            f"pass organism={other!r}"
        )
    elif builtin:
        fix = (
            "var_names may hold Ensembl IDs or another naming: set var_names to gene symbols "
            f"or pass your own {kind}_genes=[...]"
        )
    elif len(genes) < min_genes:
        fix = f"pass at least {min_genes} genes in {kind}_genes, or lower min_genes"
    else:
        fix = f"check the symbols of {kind}_genes against adata.var_names"
    source = f"the built-in {organism} {kind} set" if builtin else f"{kind}_genes"
    raise ValueError(
        f"only {len(found)} of the {len(genes)} genes of {source} are in adata.var_names "
        f"(found: {found[:10]}); growth_prior needs at least min_genes={min_genes} per list. "
        f"Fix: {fix}."
    )


def growth_prior(
    adata: Data,
    *,
    proliferation_genes: Sequence[str] | None = None,
    apoptosis_genes: Sequence[str] | None = None,
    organism: Organism = "human",
    beta: float = 0.5,
    clip: float = 3.0,
    min_genes: int = 5,
    layer: str | None = None,
    use_raw: bool | None = None,
    ctrl_size: int = 50,
    n_bins: int = 25,
    seed: int = 0,
    key_added: str = "growth_prior",
    mod: str | None = None,
    copy: bool = False,
) -> Data | None:
    r"""Score proliferation and apoptosis genes and turn them into a per-cell growth prior.

    Both scores come from :func:`scanpy.tl.score_genes` (mean expression of the set minus
    that of random control genes of similar expression). With ``s = proliferation -
    apoptosis`` and ``z = (s - mean(s)) / sd(s)`` over all cells, the prior is::

        prior_i = exp(beta * clip(z_i, -clip, clip)),   then divided by its mean over cells

    so it has mean 1 and ``log prior`` is a relative growth rate: a cell one standard
    deviation more proliferative than average is expected to grow ``exp(beta)`` times as
    much (``e^0.5 ≈ 1.65`` by default) over a unit of time. :func:`vgfm.tl.fit` with
    ``growth_prior=key_added`` renormalises the prior within each time point (see
    :func:`growth_prior_per_snapshot`) and uses it as the prior on the source masses of
    the couplings: only the shares of the cells *within* a time point change, the population
    sizes are left as they were.

    Built-in gene sets (used when a list is ``None``): proliferation — the S-phase and G2/M
    genes of Tirosh et al. 2016 as used by Scanpy's cell-cycle tutorial (Kowalczyk et al.
    2015); apoptosis — core genes of the MSigDB Hallmark apoptosis set (Liberzon et al. 2015)
    without its cell-cycle genes. Mouse lists use the mouse symbol case (``Mki67``). See
    :data:`vgfm.pp._growth_prior.GENE_SETS`.

    Parameters
    ----------
    adata
        :class:`~anndata.AnnData` (or :class:`~mudata.MuData` with ``mod=``) with
        log-normalised expression (``sc.pp.normalize_total`` then ``sc.pp.log1p``).
    proliferation_genes, apoptosis_genes
        Gene symbols; ``None`` uses the built-in set of ``organism``.
    organism
        ``"human"`` or ``"mouse"``: which built-in sets to use.
    beta
        Strength of the prior (``log prior`` per standard deviation of ``s``); 0 gives a
        uniform prior.
    clip
        Standardised scores are clipped to ``[-clip, clip]`` so that a few extreme cells
        cannot take all the mass.
    min_genes
        Least number of genes of each list that must be in the data.
    layer, use_raw
        Expression to score: a layer, ``.raw`` (Scanpy's default when present), or ``.X``.
    ctrl_size, n_bins, seed
        Passed to :func:`scanpy.tl.score_genes` (``random_state=seed``).
    key_added
        ``.obs`` column of the prior; the scores go to ``f"{key_added}_proliferation"`` and
        ``f"{key_added}_apoptosis"``.
    mod
        For a MuData: the modality holding expression (``"rna"``); the fields are written
        into that modality.
    copy
        Return a modified copy instead of writing into ``adata``.

    Returns
    -------
    ``None``, or the modified copy when ``copy=True``. Writes

    - ``obs[key_added]``: the prior (positive, mean 1);
    - ``obs[f"{key_added}_proliferation"]``, ``obs[f"{key_added}_apoptosis"]``: the scores;
    - ``uns[key_added]``: ``{"params": {...}, "proliferation_genes": [...],
      "apoptosis_genes": [...]}`` with the genes actually scored.

    Raises
    ------
    ValueError
        When fewer than ``min_genes`` genes of a list are in the data (the message says how
        many of which list matched and how to fix it); nothing is written then.

    Examples
    --------
    >>> import numpy as np, anndata as ad, vgfm
    >>> from vgfm.pp._growth_prior import gene_sets
    >>> genes = gene_sets("human")
    >>> names = genes["proliferation"][:20] + genes["apoptosis"][:20] + [f"g{i}" for i in range(60)]
    >>> rng = np.random.default_rng(0)
    >>> adata = ad.AnnData(rng.gamma(2.0, 0.5, size=(100, 100)).astype("float32"))
    >>> adata.var_names = names
    >>> adata.X[:50, :20] += 2.0  # the first 50 cells express cell-cycle genes
    >>> vgfm.pp.growth_prior(adata)
    >>> bool(adata.obs["growth_prior"][:50].mean() > adata.obs["growth_prior"][50:].mean())
    True
    """
    if organism not in GENE_SETS:
        raise ValueError(f"organism must be 'human' or 'mouse', got {organism!r}")
    if not (np.isfinite(beta) and beta >= 0):
        raise ValueError(f"beta must be finite and >= 0, got {beta}")
    if not clip > 0:
        raise ValueError(f"clip must be > 0, got {clip}")
    if min_genes < 1:
        raise ValueError(f"min_genes must be >= 1, got {min_genes}")
    if n_bins < 2 or ctrl_size < 1:
        raise ValueError(f"n_bins must be >= 2 and ctrl_size >= 1, got {n_bins} and {ctrl_size}")
    target = resolve_container(adata, mod)
    x, names = _expression(target, layer, use_raw)
    sets = GENE_SETS[organism]
    prolif = _matched(sets["proliferation"] if proliferation_genes is None else
                      proliferation_genes, names, "proliferation", min_genes, organism,
                      proliferation_genes is None)
    apopt = _matched(sets["apoptosis"] if apoptosis_genes is None else apoptosis_genes, names,
                     "apoptosis", min_genes, organism, apoptosis_genes is None)
    shared = sorted(set(prolif) & set(apopt))
    if shared:
        logger.warning("genes in both lists are scored in both, cancelling out: %s", shared)
    if _looks_like_counts(x):
        logger.warning(
            "the scored expression holds integer counts; score_genes expects log-normalised "
            "data (sc.pp.normalize_total then sc.pp.log1p, or pass layer=)"
        )
    # a light AnnData sharing the matrix: score_genes writes its columns there, not into adata
    light = ad.AnnData(X=x, obs=pd.DataFrame(index=target.obs_names.copy()),
                       var=pd.DataFrame(index=pd.Index(names, dtype=str)))
    scores = {}
    for kind, genes in (("proliferation", prolif), ("apoptosis", apopt)):
        try:
            sc.tl.score_genes(light, genes, ctrl_size=ctrl_size, n_bins=n_bins,
                              random_state=seed, score_name=kind, use_raw=False)
        except RuntimeError as err:  # scanpy: "No control genes found in any cut"
            raise ValueError(
                f"sc.tl.score_genes found no control genes for the {kind} genes ({err}); the "
                f"data have {len(names)} genes: pass fewer expression bins (n_bins, now "
                f"{n_bins}) or a smaller ctrl_size (now {ctrl_size})."
            ) from err
        scores[kind] = light.obs[kind].to_numpy(dtype=np.float64)
    s = scores["proliferation"] - scores["apoptosis"]
    sd = float(s.std())
    z = (s - s.mean()) / sd if sd > 0 else np.zeros_like(s)
    prior = np.exp(beta * np.clip(z, -clip, clip))
    prior /= prior.mean()

    out = adata.copy() if copy else adata
    target = resolve_container(out, mod)
    target.obs[key_added] = prior
    target.obs[f"{key_added}_proliferation"] = scores["proliferation"]
    target.obs[f"{key_added}_apoptosis"] = scores["apoptosis"]
    target.uns[key_added] = {
        "params": {"organism": organism, "beta": float(beta), "clip": float(clip),
                   "layer": layer or "", "ctrl_size": int(ctrl_size), "n_bins": int(n_bins),
                   "seed": int(seed),
                   "builtin_proliferation": proliferation_genes is None,
                   "builtin_apoptosis": apoptosis_genes is None},
        "proliferation_genes": np.asarray(prolif, dtype=str),
        "apoptosis_genes": np.asarray(apopt, dtype=str),
    }
    logger.info(
        "added obs[%r] (growth prior, mean 1, range %.3g-%.3g), obs[%r], obs[%r] and uns[%r] "
        "(%d proliferation, %d apoptosis genes scored)",
        key_added, prior.min(), prior.max(), f"{key_added}_proliferation",
        f"{key_added}_apoptosis", key_added, len(prolif), len(apopt),
    )
    return out if copy else None
