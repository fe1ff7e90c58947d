#!/usr/bin/env python3
"""Independent golden-case generator for clusterlab.

Writes one JSON file per case into the directory containing this script.
Everything is deterministic (fixed numpy seeds) and computed in float64.

Case format:
  {"name": ..., "method": ..., "term": ..., "params": {...},
   "inputs": {...}, "expected": <number or nested list>, "tolerance": ...}

Regenerate with:  python3 tests/golden/generate.py
"""

import json
import os
import sys

import numpy as np
import scipy
import sklearn
from scipy.optimize import linear_sum_assignment
from scipy.special import logsumexp
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.metrics.cluster import contingency_matrix

OUT_DIR = os.path.dirname(os.path.abspath(__file__))

METRIC_TOL = 1e-9
CC_TOL = 1e-4


# ----------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------

def hungarian_acc(y_true, y_pred):
    """Hungarian accuracy.

    Contingency table over the union of label values: rows = predicted
    cluster ids, cols = true class ids (square by construction), then
    linear_sum_assignment maximising matches; ACC = matched / n.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    assert y_true.shape == y_pred.shape and y_true.ndim == 1
    labels = np.union1d(y_true, y_pred)
    idx = {int(v): i for i, v in enumerate(labels)}
    m = len(labels)
    w = np.zeros((m, m), dtype=np.int64)
    for t, p in zip(y_true, y_pred):
        w[idx[int(p)], idx[int(t)]] += 1
    rows, cols = linear_sum_assignment(w, maximize=True)
    matched = int(w[rows, cols].sum())
    return matched / len(y_true)


def hungarian_acc_rect(y_true, y_pred):
    """Hungarian accuracy on scikit-learn's rectangular contingency table
    (classes x clusters, no padding): SciPy's linear_sum_assignment handles
    K != classes, matching min(classes, K) pairs."""
    c = contingency_matrix(y_true, y_pred)
    rows, cols = linear_sum_assignment(c, maximize=True)
    return int(c[rows, cols].sum()) / len(y_true)


def majority_acc(y_true, y_pred):
    """Majority-vote accuracy: each cluster (column of scikit-learn's
    contingency table) labelled with its most frequent class."""
    c = contingency_matrix(y_true, y_pred)
    return int(c.max(axis=0).sum()) / len(y_true)


def majority_acc_plain(y_true, y_pred):
    """The same by a loop over clusters (cross-check)."""
    hits = 0
    for k in set(y_pred):
        members = [t for t, p in zip(y_true, y_pred) if p == k]
        hits += max(members.count(t) for t in set(members))
    return hits / len(y_true)


def _contingency(y_true, y_pred):
    _, ti = np.unique(y_true, return_inverse=True)
    _, pi = np.unique(y_pred, return_inverse=True)
    c = np.zeros((ti.max() + 1, pi.max() + 1), dtype=np.float64)
    np.add.at(c, (ti, pi), 1.0)
    return c


def _entropy_counts(counts):
    n = counts.sum()
    p = counts[counts > 0] / n
    return float(-(p * np.log(p)).sum())


def nmi_plain(y_true, y_pred):
    """Plain-numpy NMI with arithmetic-mean normalisation (cross-check)."""
    c = _contingency(y_true, y_pred)
    if c.shape[0] == 1 and c.shape[1] == 1:
        return 1.0
    n = c.sum()
    pij = c / n
    pi = pij.sum(axis=1, keepdims=True)
    pj = pij.sum(axis=0, keepdims=True)
    nz = pij > 0
    mi = float((pij[nz] * np.log(pij[nz] / (pi @ pj)[nz])).sum())
    h_t = _entropy_counts(c.sum(axis=1))
    h_p = _entropy_counts(c.sum(axis=0))
    denom = 0.5 * (h_t + h_p)
    if denom <= 0:
        return 0.0
    return max(mi, 0.0) / denom


def ari_plain(y_true, y_pred):
    """Plain-numpy ARI (cross-check)."""
    c = _contingency(y_true, y_pred)
    n = c.sum()
    comb2 = lambda x: x * (x - 1) / 2.0
    sum_ij = comb2(c).sum()
    sum_a = comb2(c.sum(axis=1)).sum()
    sum_b = comb2(c.sum(axis=0)).sum()
    expected = sum_a * sum_b / comb2(n)
    max_idx = 0.5 * (sum_a + sum_b)
    if max_idx == expected:
        return 1.0
    return (sum_ij - expected) / (max_idx - expected)


def metric_scenarios():
    """Return list of (scenario_name, y_true, y_pred)."""
    sc = []

    # (a) perfect match, permuted ids
    rng = np.random.RandomState(1001)
    y_true = rng.randint(0, 5, size=60)
    perm = np.array([3, 0, 4, 1, 2])
    y_pred = perm[y_true]
    sc.append(("perm", y_true, y_pred))

    # (b) random 300 samples, 10 classes vs 10 clusters
    rng = np.random.RandomState(1002)
    y_true = rng.randint(0, 10, size=300)
    y_pred = rng.randint(0, 10, size=300)
    sc.append(("random", y_true, y_pred))

    # (c) cluster 0 empty: 30 samples, classes 0,1,2 x10 each; predicted ids
    # 1,2,3 only; 7 of 10 correct per class (class k -> cluster k+1), the
    # 3 errors spread 2/1 over the other two clusters so the best matching is
    # the diagonal: ACC = 21/30 = 0.7.
    y_true = np.repeat([0, 1, 2], 10)
    y_pred = np.array(
        [1] * 7 + [2] * 2 + [3] * 1     # class 0
        + [2] * 7 + [3] * 2 + [1] * 1   # class 1
        + [3] * 7 + [1] * 2 + [2] * 1   # class 2
    )
    sc.append(("no-cluster0", y_true, y_pred))

    # (d) more predicted clusters than classes: 5 classes, 8 clusters, n=100
    rng = np.random.RandomState(1004)
    y_true = rng.randint(0, 5, size=100)
    # mostly aligned with truth, split some classes, some noise
    y_pred = y_true.copy()
    split = rng.rand(100) < 0.35
    y_pred[split] = y_true[split] + 5  # ids 5..9 ... keep only 5,6,7
    y_pred = np.where(y_pred > 7, y_pred - 3, y_pred)
    noise = rng.rand(100) < 0.15
    y_pred[noise] = rng.randint(0, 8, size=noise.sum())
    assert len(np.unique(y_pred)) == 8 and len(np.unique(y_true)) == 5
    sc.append(("more-clusters", y_true, y_pred))

    # (e) fewer clusters than classes: 4 classes, 2 clusters
    rng = np.random.RandomState(1005)
    y_true = rng.randint(0, 4, size=80)
    y_pred = (y_true >= 2).astype(np.int64)
    noise = rng.rand(80) < 0.1
    y_pred[noise] = 1 - y_pred[noise]
    assert len(np.unique(y_pred)) == 2 and len(np.unique(y_true)) == 4
    sc.append(("fewer-clusters", y_true, y_pred))

    # (f) all samples in one cluster, 3 classes
    rng = np.random.RandomState(1006)
    y_true = rng.randint(0, 3, size=45)
    y_pred = np.zeros(45, dtype=np.int64)
    sc.append(("one-cluster", y_true, y_pred))

    # (g) non-contiguous predicted ids 3, 7, 42
    rng = np.random.RandomState(1007)
    y_true = rng.randint(0, 3, size=50)
    ids = np.array([7, 42, 3])
    y_pred = ids[y_true]
    noise = rng.rand(50) < 0.2
    y_pred[noise] = ids[rng.randint(0, 3, size=noise.sum())]
    assert set(np.unique(y_pred).tolist()) == {3, 7, 42}
    sc.append(("noncontig", y_true, y_pred))

    # (h) over-clustering: 10 classes, 50 clusters (each class mostly split over
    # its own 5 clusters), n=500, 10% noise: Hungarian matches 10 clusters only.
    rng = np.random.RandomState(1008)
    y_true = rng.randint(0, 10, size=500)
    y_pred = y_true * 5 + rng.randint(0, 5, size=500)
    noise = rng.rand(500) < 0.1
    y_pred[noise] = rng.randint(0, 50, size=noise.sum())
    assert len(np.unique(y_pred)) == 50
    sc.append(("over-k50", y_true, y_pred))

    # (i) over-clustering 3x: 4 classes, 12 clusters, clusters shared by two
    # classes (majority vote has to pick), n=120.
    rng = np.random.RandomState(1009)
    y_true = rng.randint(0, 4, size=120)
    y_pred = (y_true * 3 + rng.randint(0, 4, size=120)) % 12
    assert len(np.unique(y_pred)) == 12
    sc.append(("over-k12-shared", y_true, y_pred))

    return sc


def metric_cases():
    cases = []
    for scen, y_true, y_pred in metric_scenarios():
        y_true = [int(v) for v in y_true]
        y_pred = [int(v) for v in y_pred]
        nmi = float(normalized_mutual_info_score(y_true, y_pred))
        ari = float(adjusted_rand_score(y_true, y_pred))
        acc = float(hungarian_acc(y_true, y_pred))
        acc_majority = float(majority_acc(y_true, y_pred))
        assert abs(acc - hungarian_acc_rect(y_true, y_pred)) < 1e-12, (scen, acc)
        assert abs(acc_majority - majority_acc_plain(y_true, y_pred)) < 1e-12
        assert acc_majority >= acc - 1e-12, (scen, acc, acc_majority)
        # independent cross-checks
        assert abs(nmi - nmi_plain(y_true, y_pred)) < 1e-12, (scen, nmi)
        assert abs(ari - ari_plain(y_true, y_pred)) < 1e-12, (scen, ari)
        if scen == "perm":
            assert abs(nmi - 1) < 1e-12 and acc == 1.0 and abs(ari - 1) < 1e-12
        if scen == "no-cluster0":
            assert 0 not in y_pred
            assert acc == 0.7, acc
        if scen == "one-cluster":
            assert nmi == 0.0 and ari == 0.0
        for term, val in (("nmi", nmi), ("acc", acc), ("ari", ari),
                          ("acc_majority", acc_majority)):
            cases.append({
                "name": f"metric-{term}-{scen}",
                "method": "metric",
                "term": term,
                "params": {},
                "inputs": {"y_true": y_true, "y_pred": y_pred},
                "expected": val,
                "tolerance": METRIC_TOL,
            })
    return cases


# ----------------------------------------------------------------------------
# Contrastive Clustering (Li et al., AAAI 2021) losses
# ----------------------------------------------------------------------------

def nt_xent_rows(w, n):
    """NT-Xent on 2n rows of precomputed similarity-scaled matrix S (=w).

    l_r = -S[r, partner] + log sum_{c != r} exp S[r, c]; returns mean.
    Plain numpy, max-shifted log-sum-exp.
    """
    s = w
    two_n = 2 * n
    assert s.shape == (two_n, two_n)
    total = 0.0
    for r in range(two_n):
        partner = r + n if r < n else r - n
        row = np.delete(s[r], r)
        m = row.max()
        lse = m + np.log(np.exp(row - m).sum())
        total += -s[r, partner] + lse
    return total / two_n


def nt_xent_cc_style(s, n):
    """Cross-check mimicking CC's code: logits [pos | 2N-2 negatives],
    label 0, CrossEntropyLoss(reduction='sum') / 2N."""
    two_n = 2 * n
    mask = np.ones((two_n, two_n), dtype=bool)
    np.fill_diagonal(mask, False)
    for i in range(n):
        mask[i, n + i] = False
        mask[n + i, i] = False
    sim_i_j = np.diag(s, n)
    sim_j_i = np.diag(s, -n)
    pos = np.concatenate([sim_i_j, sim_j_i]).reshape(two_n, 1)
    neg = s[mask].reshape(two_n, -1)
    assert neg.shape[1] == two_n - 2
    logits = np.concatenate([pos, neg], axis=1)
    ce = -logits[:, 0] + logsumexp(logits, axis=1)
    return ce.sum() / two_n


def instance_loss(z_a, z_b, tau):
    n = z_a.shape[0]
    w = np.concatenate([z_a, z_b], axis=0)
    s = (w @ w.T) / tau
    a = nt_xent_rows(s, n)
    b = nt_xent_cc_style(s, n)
    assert abs(a - b) < 1e-12, (a, b)
    return float(a)


def cosine_matrix(x):
    """Pairwise cosine similarity x·y / max(|x||y|, 1e-8) between rows."""
    norms = np.sqrt((x * x).sum(axis=1))
    dots = x @ x.T
    denom = np.maximum(np.outer(norms, norms), 1e-8)
    return dots / denom


def cluster_contrastive_loss(y_a, y_b, tau):
    k = y_a.shape[1]
    w = np.concatenate([y_a.T, y_b.T], axis=0)  # 2K x N
    s = cosine_matrix(w) / tau
    a = nt_xent_rows(s, k)
    b = nt_xent_cc_style(s, k)
    assert abs(a - b) < 1e-12, (a, b)
    return float(a)


def entropy_term(y_a, y_b):
    total = 0.0
    for y in (y_a, y_b):
        k = y.shape[1]
        p = y.sum(axis=0)
        p = p / p.sum()
        total += np.log(k) + float((p * np.log(p)).sum())
    return float(total)


def softmax_rows(x):
    x = x - x.max(axis=1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=1, keepdims=True)


def l2norm_rows(x):
    return x / np.sqrt((x * x).sum(axis=1, keepdims=True))


def to_f32_grid(x):
    """Round to float32-representable values (kept as float64), so the
    Rust side, which parses into f32, sees exactly the same inputs."""
    return x.astype(np.float32).astype(np.float64)


def cc_data(n, d, k, seed):
    rng = np.random.RandomState(seed)
    z_a = to_f32_grid(l2norm_rows(rng.randn(n, d)))
    z_b = to_f32_grid(l2norm_rows(rng.randn(n, d)))
    y_a = to_f32_grid(softmax_rows(rng.randn(n, k) * 2.0))
    y_b = to_f32_grid(softmax_rows(rng.randn(n, k) * 2.0))
    return z_a, z_b, y_a, y_b


def mat(x):
    return [[float(v) for v in row] for row in x]


def cc_cases():
    cases = []
    sizes = {
        "small": (8, 16, 4, 2001),
        "medium": (32, 32, 10, 2002),
    }

    def case(name, term, params, inputs, expected):
        return {
            "name": name,
            "method": "cc",
            "term": term,
            "params": params,
            "inputs": {k: mat(v) for k, v in inputs.items()},
            "expected": float(expected),
            "tolerance": CC_TOL,
        }

    for size, (n, d, k, seed) in sizes.items():
        z_a, z_b, y_a, y_b = cc_data(n, d, k, seed)
        inst = instance_loss(z_a, z_b, 0.5)
        clu = cluster_contrastive_loss(y_a, y_b, 1.0)
        ent = entropy_term(y_a, y_b)
        total = inst + clu + ent

        cases.append(case(f"cc-instance-{size}", "instance", {"tau": 0.5},
                          {"z_a": z_a, "z_b": z_b}, inst))
        cases.append(case(f"cc-cluster_contrastive-{size}",
                          "cluster_contrastive", {"tau": 1.0},
                          {"y_a": y_a, "y_b": y_b}, clu))
        cases.append(case(f"cc-entropy-{size}", "entropy", {},
                          {"y_a": y_a, "y_b": y_b}, ent))
        cases.append(case(f"cc-total-{size}", "total",
                          {"tau_instance": 0.5, "tau_cluster": 1.0},
                          {"z_a": z_a, "z_b": z_b, "y_a": y_a, "y_b": y_b},
                          total))

        if size == "small":
            cases.append(case("cc-instance-small-tau0p2", "instance",
                              {"tau": 0.2}, {"z_a": z_a, "z_b": z_b},
                              instance_loss(z_a, z_b, 0.2)))
            cases.append(case("cc-cluster_contrastive-small-tau0p5",
                              "cluster_contrastive", {"tau": 0.5},
                              {"y_a": y_a, "y_b": y_b},
                              cluster_contrastive_loss(y_a, y_b, 0.5)))
    return cases


# ----------------------------------------------------------------------------
# Anchor-loss method (Sundareswaran et al. 2021): NumPy transcription of the
# published PyTorch code (modules/network_sic.py get_cluster_prob,
# utils/cluster_utils.py target_distribution, torch.nn.KLDivLoss(sum),
# modules/contrastive_loss_sic.py KLDiv/KCL with eps = 1e-8).
# ----------------------------------------------------------------------------

ANCHOR_EPS = 1e-8


def student_t(h, mu, alpha):
    # norm_squared = sum((h.unsqueeze(1) - mu) ** 2, 2)
    d2 = ((h[:, None, :] - mu[None, :, :]) ** 2).sum(axis=2)
    num = (1.0 / (1.0 + d2 / alpha)) ** ((alpha + 1.0) / 2.0)
    return num / num.sum(axis=1, keepdims=True)


def target_distribution(q):
    weight = q ** 2 / (q.sum(axis=0) + 1e-9)
    return (weight.T / weight.sum(axis=1)).T


def kl_div_sum(log_input, target):
    """torch.nn.KLDivLoss(reduction='sum'): sum target*(log target - input), 0 where target=0."""
    t = target
    out = np.where(t > 0, t * (np.log(np.where(t > 0, t, 1.0)) - log_input), 0.0)
    return float(out.sum())


def kcl(prob, target):
    """KCL(prob, target) = mean_i sum_j t (log(t+eps) - log(p+eps))."""
    kld = (target * (np.log(target + ANCHOR_EPS) - np.log(prob + ANCHOR_EPS))).sum(axis=1)
    return float(kld.mean())


def anchor_cluster(h_clean, mu, alpha):
    c = student_t(h_clean, mu, alpha)
    target = target_distribution(c)
    return kl_div_sum(np.log(c + 1e-8), target) / c.shape[0]


def anchor_anchor(h_clean, h_a, h_b, mu, alpha):
    c = student_t(h_clean, mu, alpha)
    return kcl(student_t(h_a, mu, alpha), c) + kcl(student_t(h_b, mu, alpha), c)


def anchor_cases():
    cases = []

    def case(name, term, params, inputs, expected, matrix=False):
        return {
            "name": name, "method": "anchor", "term": term, "params": params,
            "inputs": {k: mat(v) for k, v in inputs.items()},
            "expected": mat(expected) if matrix else float(expected),
            "tolerance": CC_TOL,
        }

    for size, (n, d, k, seed, alpha) in {
        "small": (8, 6, 3, 3001, 1.0),
        "medium": (32, 16, 10, 3002, 1.0),
        "alpha2": (16, 8, 4, 3003, 2.0),
    }.items():
        rng = np.random.RandomState(seed)
        mu = to_f32_grid(rng.randn(k, d))
        h_c = to_f32_grid(mu[rng.randint(0, k, size=n)] + 0.7 * rng.randn(n, d))
        h_a = to_f32_grid(h_c + 0.3 * rng.randn(n, d))
        h_b = to_f32_grid(h_c + 0.3 * rng.randn(n, d))
        z_a = to_f32_grid(l2norm_rows(rng.randn(n, 5)))
        z_b = to_f32_grid(l2norm_rows(z_a + 0.5 * rng.randn(n, 5)))
        q = student_t(h_c, mu, alpha)
        assert np.allclose(q.sum(axis=1), 1.0)
        clu = anchor_cluster(h_c, mu, alpha)
        anc = anchor_anchor(h_c, h_a, h_b, mu, alpha)
        inst = instance_loss(z_a, z_b, 0.5)
        cases.append(case(f"anchor-student_t-{size}", "student_t", {"alpha": alpha},
                          {"h": h_c, "centers": mu}, q, matrix=True))
        cases.append(case(f"anchor-cluster-{size}", "cluster", {"alpha": alpha},
                          {"h_clean": h_c, "centers": mu}, clu))
        cases.append(case(f"anchor-anchor-{size}", "anchor", {"alpha": alpha},
                          {"h_clean": h_c, "h_a": h_a, "h_b": h_b, "centers": mu}, anc))
        cases.append(case(f"anchor-total-{size}", "total",
                          {"tau_instance": 0.5, "alpha": alpha},
                          {"z_a": z_a, "z_b": z_b, "h_clean": h_c, "h_a": h_a,
                           "h_b": h_b, "centers": mu}, inst + clu + anc))
    return cases


# ----------------------------------------------------------------------------
# DRC (no official code): the candidate forms of methods.md section 2.2.
# ----------------------------------------------------------------------------

def similarity(a, b, kind):
    if kind == "dot":
        return a @ b.T
    na = np.sqrt((a * a).sum(axis=1))
    nb = np.sqrt((b * b).sum(axis=1))
    return (a @ b.T) / np.maximum(np.outer(na, nb), 1e-8)


def cross_view_info_nce(a, b, tau, kind):
    """-(1/M) sum_i log softmax_j(sim(a_i, b_j)/tau)[i], an explicit loop."""
    s = similarity(a, b, kind) / tau
    total = 0.0
    for i in range(s.shape[0]):
        total += -s[i, i] + logsumexp(s[i])
    return total / s.shape[0]


def regularizer(p, form):
    n, k = p.shape
    col = p.sum(axis=0)
    if form == "squared":
        # third-party loop form: sum over clusters of (sum over samples)^2, / N
        return float(sum(col[j] ** 2 for j in range(k)) / n)
    q = col / col.sum()
    return float(np.log(k) + (q * np.log(q)).sum())


def drc_cases():
    cases = []

    def case(name, term, params, inputs, expected):
        return {"name": name, "method": "drc", "term": term, "params": params,
                "inputs": {k: mat(v) for k, v in inputs.items()},
                "expected": float(expected), "tolerance": CC_TOL}

    for size, (n, k, seed) in {"small": (8, 4, 4001), "medium": (32, 10, 4002)}.items():
        rng = np.random.RandomState(seed)
        f_a = to_f32_grid(rng.randn(n, k) * 2.0)
        f_b = to_f32_grid(f_a + rng.randn(n, k))
        p_a = to_f32_grid(softmax_rows(f_a))
        p_b = to_f32_grid(softmax_rows(f_b))
        for sim, tau in (("dot", 0.5), ("cosine", 1.0)):
            cases.append(case(f"drc-assignment_feature-{size}-{sim}", "assignment_feature",
                              {"tau": tau, "similarity": sim}, {"f_a": f_a, "f_b": f_b},
                              cross_view_info_nce(f_a, f_b, tau, sim)))
            cases.append(case(f"drc-assignment_probability-{size}-{sim}",
                              "assignment_probability", {"tau": tau, "similarity": sim},
                              {"p_a": p_a, "p_b": p_b},
                              cross_view_info_nce(p_a.T, p_b.T, tau, sim)))
        for form in ("squared", "entropy"):
            cases.append(case(f"drc-regularizer-{size}-{form}", "regularizer", {"form": form},
                              {"p_a": p_a}, regularizer(p_a, form)))
            cases.append(case(f"drc-regularizer-{size}-{form}-two-views", "regularizer",
                              {"form": form}, {"p_a": p_a, "p_b": p_b},
                              regularizer(p_a, form) + regularizer(p_b, form)))
        # totals on logits (softmax recomputed from the same f32 logits)
        sa, sb = softmax_rows(f_a), softmax_rows(f_b)
        for sim, tau, form, lam in (("cosine", 1.0, "entropy", 2.0), ("dot", 0.5, "squared", 0.1)):
            tot = (cross_view_info_nce(f_a, f_b, tau, sim)
                   + cross_view_info_nce(sa.T, sb.T, tau, sim)
                   + lam * (regularizer(sa, form) + regularizer(sb, form)))
            cases.append(case(f"drc-total-{size}-{form}", "total",
                              {"tau": tau, "similarity": sim, "form": form, "lambda": lam},
                              {"f_a": f_a, "f_b": f_b}, tot))
        # GCC's AGCLoss (losses/losses.py): the balance regulariser on the first view only
        # (method.drc.regularizer_views: first, the default).
        tot = (cross_view_info_nce(f_a, f_b, 1.0, "cosine")
               + cross_view_info_nce(sa.T, sb.T, 1.0, "cosine")
               + 2.0 * regularizer(sa, "entropy"))
        cases.append(case(f"drc-total-{size}-entropy-first-view", "total",
                          {"tau": 1.0, "similarity": "cosine", "form": "entropy", "lambda": 2.0,
                           "views": "first"},
                          {"f_a": f_a, "f_b": f_b}, tot))
    return cases


# ----------------------------------------------------------------------------
# CDC (no code exists): Sinkhorn-Knopp as in SwAV's distributed_sinkhorn
# (single process), weighted-negative InfoNCE, and our CDC reading.
# ----------------------------------------------------------------------------

def sinkhorn_swav(scores, eps, iters):
    q = np.exp(scores / eps).T  # K x B
    b, k = q.shape[1], q.shape[0]
    q = q / q.sum()
    for _ in range(iters):
        q = q / q.sum(axis=1, keepdims=True)
        q = q / k
        q = q / q.sum(axis=0, keepdims=True)
        q = q / b
    q = q * b
    return q.T


def weighted_negative_infonce(s_pos, s_neg, w_neg, tau):
    num = np.exp(s_pos[:, 0] / tau)
    den = num + (w_neg * np.exp(s_neg / tau)).sum(axis=1)
    return float(np.mean(-np.log(num / den)))


def cdc_contrastive(c_a, c_b, g_a, g_b, tau):
    """NT-Xent over r = [c ; g], plus a cross-check through the weighted form."""
    n = c_a.shape[0]
    c = np.concatenate([c_a, c_b]); g = np.concatenate([g_a, g_b])
    s = (c @ c.T + g @ g.T) / tau
    direct = nt_xent_rows(s, n)
    # weighted-negative form: s_g positives/negatives, w = exp((c_i.c_j - c_i.c_i+)/tau)
    sc, sg = c @ c.T, g @ g.T
    pos, neg, w = [], [], []
    for r in range(2 * n):
        p = (r + n) % (2 * n)
        others = [j for j in range(2 * n) if j != r and j != p]
        pos.append([sg[r, p]])
        neg.append(sg[r, others])
        w.append(np.exp((sc[r, others] - sc[r, p]) / tau))
    weighted = weighted_negative_infonce(np.array(pos), np.array(neg), np.array(w), tau)
    assert abs(direct - weighted) < 1e-10, (direct, weighted)
    return direct


def log_softmax_rows(x):
    return x - logsumexp(x, axis=1, keepdims=True)


def swapped_prediction(l_a, l_b, tau_c, eps, iters):
    q_a = sinkhorn_swav(l_a, eps, iters)
    q_b = sinkhorn_swav(l_b, eps, iters)
    ce_ab = -np.mean((q_b * log_softmax_rows(l_a / tau_c)).sum(axis=1))
    ce_ba = -np.mean((q_a * log_softmax_rows(l_b / tau_c)).sum(axis=1))
    return 0.5 * (ce_ab + ce_ba)


def cdc_cases():
    cases = []

    def case(name, term, params, inputs, expected, matrix=False):
        return {"name": name, "method": "cdc", "term": term, "params": params,
                "inputs": {k: mat(v) for k, v in inputs.items()},
                "expected": mat(expected) if matrix else float(expected),
                "tolerance": CC_TOL}

    for size, (n, k, d, seed) in {"small": (8, 3, 5, 5001), "medium": (32, 10, 16, 5002)}.items():
        rng = np.random.RandomState(seed)
        scores = to_f32_grid(np.clip(rng.randn(n, k) * 0.5, -1, 1))
        for eps, iters in ((0.05, 3), (0.5, 10)):
            q = sinkhorn_swav(scores, eps, iters)
            tag = f"eps{str(eps).replace('.', 'p')}-it{iters}"
            cases.append(case(f"cdc-sinkhorn-{size}-{tag}", "sinkhorn",
                              {"epsilon": eps, "iterations": iters}, {"scores": scores},
                              q, matrix=True))
        s_pos = to_f32_grid(rng.uniform(-1, 1, size=(n, 1)))
        s_neg = to_f32_grid(rng.uniform(-1, 1, size=(n, 2 * n - 2)))
        w_neg = to_f32_grid(rng.uniform(0, 2, size=(n, 2 * n - 2)))
        cases.append(case(f"cdc-weighted_negative_infonce-{size}", "weighted_negative_infonce",
                          {"tau": 0.5}, {"s_pos": s_pos, "s_neg": s_neg, "w_neg": w_neg},
                          weighted_negative_infonce(s_pos, s_neg, w_neg, 0.5)))
        # unit weights = plain InfoNCE (cross-check)
        ones = np.ones_like(w_neg)
        plain = float(np.mean(logsumexp(np.concatenate([s_pos, s_neg], 1) / 0.5, axis=1)
                              - s_pos[:, 0] / 0.5))
        assert abs(weighted_negative_infonce(s_pos, s_neg, ones, 0.5) - plain) < 1e-12
        l_a = to_f32_grid(rng.randn(n, k) * 1.5)
        l_b = to_f32_grid(l_a + 0.5 * rng.randn(n, k))
        g_a = to_f32_grid(l2norm_rows(rng.randn(n, d)))
        g_b = to_f32_grid(l2norm_rows(g_a + 0.5 * rng.randn(n, d)))
        c_a = to_f32_grid(softmax_rows(l_a))
        c_b = to_f32_grid(softmax_rows(l_b))
        cases.append(case(f"cdc-contrastive-{size}", "contrastive", {"tau": 0.5},
                          {"c_a": c_a, "c_b": c_b, "g_a": g_a, "g_b": g_b},
                          cdc_contrastive(c_a, c_b, g_a, g_b, 0.5)))
        eq = swapped_prediction(l_a, l_b, 1.0, 0.5, 3)
        cases.append(case(f"cdc-equipartition-{size}", "equipartition",
                          {"tau_c": 1.0, "epsilon": 0.5, "iterations": 3},
                          {"l_a": l_a, "l_b": l_b}, eq))
        tot = cdc_contrastive(softmax_rows(l_a), softmax_rows(l_b), g_a, g_b, 0.5) + eq
        cases.append(case(f"cdc-total-{size}", "total",
                          {"tau": 0.5, "tau_c": 1.0, "epsilon": 0.5, "iterations": 3},
                          {"l_a": l_a, "l_b": l_b, "g_a": g_a, "g_b": g_b}, tot))
    return cases


# ----------------------------------------------------------------------------

def main():
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, "
          f"scikit-learn {sklearn.__version__}, scipy {scipy.__version__}")
    cases = metric_cases() + cc_cases() + anchor_cases() + drc_cases() + cdc_cases()
    names = [c["name"] for c in cases]
    assert len(names) == len(set(names)), "duplicate case names"
    for c in cases:
        path = os.path.join(OUT_DIR, c["name"] + ".json")
        with open(path, "w") as f:
            json.dump(c, f, indent=1)
            f.write("\n")
        # round-trip check
        with open(path) as f:
            assert json.load(f) == c
    print(f"wrote {len(cases)} cases to {OUT_DIR}")
    w = max(len(n) for n in names)
    for c in cases:
        print(f"  {c['name']:<{w}}  {c['method']:<6} {c['term']:<19} "
              f"expected={c['expected']!r}  tol={c['tolerance']:g}")


if __name__ == "__main__":
    main()
