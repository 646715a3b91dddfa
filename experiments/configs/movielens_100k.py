"""MovieLens-100K: SIAMESE, SPE, the SSL GP metric and trivial rankers (paper's Q1, Fig. 1).

Full run (what `./launch.sh` does; 3 seeds):
  python -m experiments.main --config=experiments/configs/movielens_100k.py \
      --workdir=runs/ml100k
Quick variant (CI smoke test; 1 seed, few steps):
  python -m experiments.main --config=experiments/configs/movielens_100k.py:quick \
      --workdir=/tmp/ml100k_quick
Personal protocol (paper's Q2) on the same workdir, reusing seed 0's SSL model:
  python -m experiments.personal --config=experiments/configs/movielens_100k.py \
      --workdir=runs/ml100k
Override any field on the command line, e.g. `--config.ssl.num_steps=500`.
"""

import ml_collections


def get_config(arg: str = "") -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.dataset = "ml-100k"
  c.data_dir = ""  # '' = fetch/cache (SSLMETRIC_DATA_DIR); or a directory with the files
  c.seeds = (0, 1, 2)
  c.dtype = "float32"

  # Protocol (METHOD.md §3). Changing these changes the benchmark: results name them.
  c.protocol = ml_collections.ConfigDict()
  c.protocol.test_fraction = 0.05  # f: T = (1 - f) quantile of items' first times
  c.protocol.window = 10  # ground-truth window (positions)
  c.protocol.horizon_seconds = 0  # 0 = off; else the time-horizon variant
  c.protocol.k = 10
  c.protocol.test_avg_rating_uses_future = False
  # 'test' evaluates on the cold-start test items; 'validation' carves validation
  # items from the training period (use it to choose settings, never the test items).
  c.protocol.eval_on = "test"

  c.channels = ("genres", "year", "avg_rating", "title", "item_id")
  c.model = ml_collections.ConfigDict()
  c.model.hidden = 50
  c.model.id_width = 30
  # Start w with h_i = 1/(p·median D_i), b = -1 so the sigmoid is not saturated at
  # step 0 (False: the plain h = 1, b = 0 start). See pipeline.scaled_init_weights.
  c.model.scale_init = True

  # Noisy co-interaction pairs (App. A.1).
  c.pairs = ml_collections.ConfigDict()
  c.pairs.kappa = 10
  c.pairs.num_pos = 5
  c.pairs.num_neg = 5

  c.siamese = ml_collections.ConfigDict()
  c.siamese.num_steps = 2000
  c.siamese.batch_size = 512
  c.siamese.learning_rate = 1e-3
  c.siamese.margin = 0.5
  c.siamese.eval_every = 0  # 0: evaluate at the start and the end only

  c.spe = ml_collections.ConfigDict()
  c.spe.num_steps = 2000
  c.spe.batch_size = 512
  c.spe.learning_rate = 1e-3
  c.spe.embed_dim = 50

  c.ssl = ml_collections.ConfigDict()
  c.ssl.num_steps = 300
  c.ssl.learning_rate = 1e-3
  c.ssl.sparse = True
  c.ssl.num_inducing = 256
  c.ssl.titsias = False
  c.ssl.noise_var0 = 0.5  # initial σ² as a fraction of the targets' variance
  c.ssl.eval_every = 25

  # Personal protocol (experiments/personal.py; METHOD.md §3, paper §3.2).
  c.personal = ml_collections.ConfigDict()
  c.personal.seed = 0  # which seed's SSL model is the base metric
  c.personal.user_seed = 0
  c.personal.n_users = 20
  c.personal.min_interactions = 20
  c.personal.max_interactions = 200
  c.personal.noise_fraction = 0.5  # σ²_u ≥ this × variance of user-centred ratings
  c.personal.psd_margin = 1.5  # σ²_u ≥ this × max_u(-λ_min(K_u)) at the SSL w
  c.personal.probe_users = 200  # meta-training users probed for λ_min
  c.personal.step_size = 1e-4  # ω (chosen on meta-training users' ℓ_u, see docs)
  c.personal.inner_steps = 5  # t in κ_u
  c.personal.meta_steps = 40
  c.personal.meta_batch = 16
  c.personal.meta_learning_rate = 1e-2
  c.personal.meta_mode = "exact"  # or "lemma1", "first_order"
  c.personal.iterations = 2000
  c.personal.curve_iterations = (0, 10, 50, 100, 250, 500, 1000, 2000)

  c.checkpoint_every = 100
  c.log_every_seconds = 10.0

  if arg == "quick":
    c.seeds = (0,)
    c.siamese.num_steps = 60
    c.spe.num_steps = 60
    c.ssl.num_steps = 20
    c.ssl.num_inducing = 64
    c.ssl.eval_every = 10
    c.checkpoint_every = 20
    c.channels = ("genres", "year", "avg_rating", "item_id")
    c.personal.n_users = 4
    c.personal.meta_steps = 3
    c.personal.meta_batch = 4
    c.personal.iterations = 20
    c.personal.curve_iterations = (0, 10, 20)
  elif arg:
    raise ValueError(f"unknown config variant {arg!r}; use '' or 'quick'")
  return c
