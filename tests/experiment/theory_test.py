"""Tests of the theory check: the PSD-shifted objective, the measurements, a seeded fit that
recovers D*, and the experiment end to end on the quick config."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from experiments.configs import theory as theory_config
from sslmetric.data import synthetic as syn
from sslmetric.experiment import theory
from sslmetric.model.distance import jitter_scale


def _indefinite_pair(n=8, seed=0):
  """K(t) = A + t·B, symmetric, A indefinite with a simple λ_min."""
  rng = np.random.default_rng(seed)
  a = rng.standard_normal((n, n))
  a = 0.5 * (a + a.T) / np.sqrt(n) + np.eye(n)
  b = rng.standard_normal((n, n))
  b = 0.5 * (b + b.T) / np.sqrt(n)
  assert np.linalg.eigvalsh(a)[0] < -0.05
  return a, b


def test_psd_shifted_nll_matches_scipy_on_an_indefinite_kernel():
  a, _ = _indefinite_pair()
  y = np.random.default_rng(1).standard_normal(8)
  s2 = 0.3
  delta = -np.linalg.eigvalsh(a)[0]
  jitter = jitter_scale(np.float64) * np.mean(np.diag(a) + delta)
  ref = -scipy.stats.multivariate_normal(np.zeros(8), a + (delta + s2 + jitter) * np.eye(8)
                                         ).logpdf(y)
  got = theory.psd_shifted_nll(k=jnp.asarray(a), y=jnp.asarray(y), noise_var=jnp.asarray(s2))
  np.testing.assert_allclose(float(got), ref, rtol=1e-9)
  np.testing.assert_allclose(float(theory.psd_shift(jnp.asarray(a))), delta, rtol=1e-10)
  # A PSD kernel is not shifted.
  assert float(theory.psd_shift(jnp.asarray(a + 2 * np.eye(8)))) == 0.0


def test_psd_shift_gradient_matches_finite_differences():
  """d/dt of the shifted NLL at K(t) = A + tB includes ∂δ/∂t = −v₀ᵀBv₀ (Hellmann–Feynman);
  a stopped-gradient shift would miss it, so this is checked against central differences."""
  a, b = _indefinite_pair(seed=2)
  y = jnp.asarray(np.random.default_rng(3).standard_normal(8))
  f = lambda t: theory.psd_shifted_nll(k=jnp.asarray(a) + t * jnp.asarray(b), y=y,  # noqa: E731
                                       noise_var=jnp.asarray(0.2))
  g = float(jax.grad(f)(0.0))
  eps = 1e-5
  fd = (float(f(eps)) - float(f(-eps))) / (2 * eps)
  np.testing.assert_allclose(g, fd, rtol=1e-5)
  d_shift = float(jax.grad(lambda t: theory.psd_shift(jnp.asarray(a) + t * jnp.asarray(b)))(0.0))
  v0 = np.linalg.eigh(a)[1][:, 0]
  np.testing.assert_allclose(d_shift, -(v0 @ b @ v0), rtol=1e-8)
  assert abs(d_shift) > 1e-3  # the term a stop_gradient would drop is not negligible


def test_recovery_errors_against_hand_computation():
  d_star = np.array([0.90, 0.95, 0.99, 0.92])
  d = np.array([0.80, 0.97, 0.99, 0.90])
  e = theory.recovery_errors(d, d_star)
  diff = d - d_star
  assert e["sup_abs"] == pytest.approx(0.10)
  assert e["mean_abs"] == pytest.approx((0.10 + 0.02 + 0.0 + 0.02) / 4)
  assert e["kernel_ratio"] == pytest.approx(max(abs(np.exp(-x / 2) - 1) for x in diff))
  assert e["shape_abs"] == pytest.approx(np.mean(np.abs(diff - np.median(diff))))
  # A constant shift has no shape error; a monotone map keeps Spearman at 1.
  e = theory.recovery_errors(d_star + 0.05, d_star)
  assert e["shape_abs"] == pytest.approx(0.0, abs=1e-15) and e["spearman"] == pytest.approx(1.0)
  ref = theory.constant_reference(d_star)
  assert ref["sup_abs"] == pytest.approx((0.99 - 0.90) / 2)
  assert ref["mean_abs"] == pytest.approx(np.mean(np.abs(d_star - np.median(d_star))))


def test_loglog_slope_recovers_a_power_law_and_its_uncertainty():
  ns = np.array([50, 100, 200, 400, 800])
  exact = theory.loglog_slope(ns, 3.0 * ns ** -0.5)
  assert exact["slope"] == pytest.approx(-0.5) and exact["se"] == pytest.approx(0, abs=1e-12)
  noisy = 3.0 * ns ** -0.5 * np.exp(np.random.default_rng(0).normal(0, 0.2, ns.size))
  fit = theory.loglog_slope(ns, noisy)
  slope, _, _, _, se = scipy.stats.linregress(np.log(ns), np.log(noisy))
  assert fit["slope"] == pytest.approx(slope) and fit["se"] == pytest.approx(se)


def test_small_fit_recovers_d_star_markedly_better_than_untrained():
  """Towers frozen at the truth, (w, σ²) fitted on one seeded draw of n = 300 ratings:
  mean and sup |D − D*| on held-out pairs at most half the untrained model's."""
  truth = syn.make_true_metric(0)
  data = syn.make_dataset(np.random.default_rng(11), truth, 300)
  held = syn.sample_items(np.random.default_rng(12), 40, truth)
  iu = np.triu_indices(40, k=1)
  d_star = syn.true_distance(truth, held)[iu]
  d_ch = jnp.asarray(syn.true_channel_distances(truth, data.inputs))
  params, info, init = theory.fit_w_only(d_ch, jnp.asarray(data.y), starts=[(1.0, 1.0)],
                                         noise_var0=0.1, max_iters=40, tol=1e-7)
  assert info["finite"] and info["grad_norm"] < 1e-3 * abs(info["value"])  # converged
  fitted = theory.recovery_errors(syn.true_distance(truth, held, w=params["w"])[iu], d_star)
  untrained = theory.recovery_errors(syn.true_distance(truth, held, w=init["w"])[iu], d_star)
  assert fitted["mean_abs"] < 0.5 * untrained["mean_abs"]
  assert fitted["sup_abs"] < 0.5 * untrained["sup_abs"]


def test_quick_experiment_end_to_end_and_resume(tmp_path):
  config = theory_config.get_config("quick")
  config.fits = ("w_only", "full")  # w_only_plain is fit_adam on the w_only loss
  config.ns = (300,)  # the shapes of the test above: its compiled L-BFGS step is reused
  config.w_only.max_iters = 40
  config.personal.ns = (10,)
  out = theory.run(config, tmp_path)
  for name in ("theory.json", "theory.csv", "theory.png", "personal_recovery.csv",
               "personal_recovery.png", "config.json"):
    assert (tmp_path / name).stat().st_size > 0, name
  doc = json.loads((tmp_path / "theory.json").read_text())
  assert len(doc["runs"]) == 2
  assert {r["fit"] for r in doc["summary"]} == {"w_only", "full"}
  for r in doc["runs"]:
    assert r["status"] in ("ok", "failed")
    assert set(r["untrained"]) >= {"sup_abs", "mean_abs", "kernel_ratio", "spearman"}
  assert "pooled" in doc["slopes"]["w_only"]["mean_abs"]
  w_only = next(r for r in doc["runs"] if r["fit"] == "w_only")
  assert w_only["mean_abs"] < 0.5 * w_only["untrained"]["mean_abs"]  # as the test above
  rows = (tmp_path / "theory.csv").read_text().strip().splitlines()
  assert rows[0].startswith("fit,n,seed,status,sup_abs") and len(rows) == 1 + 2
  personal = (tmp_path / "personal_recovery.csv").read_text().strip().splitlines()
  assert len(personal) == 1 + config.personal.num_users * len(config.personal.ns)
  # Resume: finished runs are read back, not refitted.
  stamp = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "runs").iterdir()}
  again = theory.run(config, tmp_path)
  assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "runs").iterdir()} == stamp
  assert again["summary"] == out["summary"]
  config.ns = (300, 30)
  with pytest.raises(ValueError, match="another config"):
    theory.run(config, tmp_path)
