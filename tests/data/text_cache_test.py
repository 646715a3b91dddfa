"""Tests for sslmetric.data.text_cache: the `.npy` disk cache of MiniLM-L6 embeddings.

The cache tests replace `sslmetric.data.text.encode_texts` with a counting fake (the
cache looks the encoder up through that module at call time), on a fake model folder;
one test runs the real model when it is installed.
"""

import json
import pathlib

import jax.numpy as jnp
import numpy as np
import pytest

from sslmetric.data import text, text_cache

FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "minilm_reference.npz"
ATOL = 1e-5  # max abs difference per coordinate (float32), as in text_test.py

_AVAILABLE, _WHY = text.text_channel_available()
needs_model = pytest.mark.skipif(not _AVAILABLE, reason=_WHY)


def _fake_model_dir(tmp_path) -> pathlib.Path:
  d = tmp_path / "model"
  d.mkdir()
  (d / "config.json").write_text(json.dumps({"hidden_size": 384}))
  (d / "tokenizer.json").write_text("{}")
  (d / "model.safetensors").write_bytes(b"\0" * 16)
  return d


class _CountingEncoder:

  def __init__(self):
    self.calls = []

  def __call__(self, texts, *, model_dir=None, dtype=jnp.float32, **unused):
    self.calls.append(list(texts))
    rng = np.random.default_rng(len(self.calls))
    return rng.normal(size=(len(texts), text.EMBEDDING_DIM)).astype(np.float32)


def test_cache_second_call_does_not_run_the_model(tmp_path, monkeypatch):
  model_dir = _fake_model_dir(tmp_path)
  enc = _CountingEncoder()
  monkeypatch.setattr(text, "encode_texts", enc)
  cache = tmp_path / "cache"
  texts = ["Toy Story (1995)", "Café", ""]
  first = text_cache.cached_text_embeddings(texts, cache_dir=cache, model_dir=model_dir)
  second = text_cache.cached_text_embeddings(texts, cache_dir=cache, model_dir=model_dir)
  assert enc.calls == [texts]
  np.testing.assert_array_equal(first, second)
  assert second.dtype == np.float32 and len(list(cache.glob("*.npy"))) == 1

  # Any change of the exact list (order, one character) is a new key.
  text_cache.cached_text_embeddings(texts[::-1], cache_dir=cache, model_dir=model_dir)
  text_cache.cached_text_embeddings(["Toy Story (1995) ", "Café", ""], cache_dir=cache,
                                    model_dir=model_dir)
  assert len(enc.calls) == 3
  # So is a change of the model's config.
  (model_dir / "config.json").write_text(json.dumps({"hidden_size": 385}))
  text_cache.cached_text_embeddings(texts, cache_dir=cache, model_dir=model_dir)
  assert len(enc.calls) == 4


def test_cache_env_var_and_corrupt_file(tmp_path, monkeypatch):
  model_dir = _fake_model_dir(tmp_path)
  enc = _CountingEncoder()
  monkeypatch.setattr(text, "encode_texts", enc)
  monkeypatch.setenv(text_cache.CACHE_ENV_VAR, str(tmp_path / "root"))
  assert text_cache.default_cache_dir() == tmp_path / "root" / "text_embeddings"
  first = text_cache.cached_text_embeddings(["a", "b"], model_dir=model_dir)
  (path,) = (tmp_path / "root" / "text_embeddings").glob("*.npy")
  path.write_bytes(b"not a numpy file")
  second = text_cache.cached_text_embeddings(["a", "b"], model_dir=model_dir)
  assert len(enc.calls) == 2  # recomputed, not crashed
  assert not np.array_equal(first, second)
  np.testing.assert_array_equal(np.load(path), second)  # and the file was replaced


@needs_model
def test_cache_with_the_real_model(tmp_path):
  texts = [str(t) for t in np.load(FIXTURE, allow_pickle=False)["texts"][:3]]
  # `text.cached_text_embeddings` is the re-export the pipeline calls.
  assert text.cached_text_embeddings is text_cache.cached_text_embeddings
  got = text.cached_text_embeddings(texts, cache_dir=tmp_path)
  np.testing.assert_allclose(got, text.encode_texts(texts, batch_size=8), atol=ATOL,
                             rtol=0)
  again = text.cached_text_embeddings(texts, cache_dir=tmp_path)
  np.testing.assert_array_equal(again, got)
