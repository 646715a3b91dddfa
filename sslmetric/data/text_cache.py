"""Disk cache of the title-text channel's MiniLM-L6 embeddings.

:func:`cached_text_embeddings` runs :func:`sslmetric.data.text.encode_texts` (float32)
once per (model, exact list of texts) and keeps the result as a `.npy` file under
:func:`default_cache_dir`; the file name is :func:`cache_key`, a sha256 over the model's
id and files and the texts, so a changed title, order or model is a new entry. Files are
written to a temporary name and renamed, so a killed run never leaves half a file; an
unreadable or mis-shaped file is recomputed and replaced.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import tempfile
from typing import Sequence

import jax.numpy as jnp
import numpy as np

from sslmetric.data import text as text_lib

CACHE_ENV_VAR = "SSLMETRIC_CACHE_DIR"
# Bump when the encoder's numerics change, so old cache entries are not reused.
_CACHE_FORMAT = 1


def default_cache_dir() -> pathlib.Path:
  """`$SSLMETRIC_CACHE_DIR/text_embeddings`, else the user cache dir's."""
  root = os.environ.get(CACHE_ENV_VAR)
  if not root:
    import platformdirs  # pylint: disable=g-import-not-at-top
    root = platformdirs.user_cache_dir("sslmetric")
  return pathlib.Path(root) / "text_embeddings"


def cache_key(texts: Sequence[str], model_dir) -> str:
  """sha256 over (model id, cache format, weights size/mtime, config and tokenizer
  bytes, the exact list of texts)."""
  model_dir = pathlib.Path(model_dir)
  weights = (model_dir / "model.safetensors").stat()
  h = hashlib.sha256()
  h.update(json.dumps({"model": text_lib.MODEL_ID, "format": _CACHE_FORMAT,
                       "weights_size": weights.st_size,
                       "weights_mtime_ns": weights.st_mtime_ns}).encode())
  for name in ("config.json", "tokenizer.json", "sentence_bert_config.json",
               "1_Pooling/config.json"):
    path = model_dir / name
    h.update(name.encode() + b"\0")
    h.update(hashlib.sha256(path.read_bytes()).digest() if path.is_file() else b"-")
  h.update(json.dumps(list(texts), ensure_ascii=False).encode("utf-8"))
  return h.hexdigest()


def cached_text_embeddings(texts: Sequence[str], *, cache_dir=None,
                           model_dir=None) -> np.ndarray:
  """MiniLM-L6 embeddings through a disk cache of `.npy` files.

  On a miss they are computed by :func:`sslmetric.data.text.encode_texts` (float32),
  looked up through the module at call time.

  Args:
    texts: n strings.
    cache_dir: folder for the `.npy` files; default :func:`default_cache_dir`.
    model_dir: as in :func:`~sslmetric.data.text.encode_texts`.

  Returns:
    float32 [n, 384]; a second call with the same texts and model loads the file and
    does not run the model. A corrupt or mis-shaped file is recomputed and replaced.
  """
  texts = list(texts)
  model_dir = text_lib.resolve_model_dir(model_dir)
  cache_dir = pathlib.Path(cache_dir) if cache_dir is not None else default_cache_dir()
  path = cache_dir / f"minilm-l6-{cache_key(texts, model_dir)}.npy"
  if path.is_file():
    try:
      emb = np.load(path, allow_pickle=False)
      if emb.shape == (len(texts), text_lib.EMBEDDING_DIM) and emb.dtype == np.float32:
        return emb
    except (OSError, ValueError):
      pass  # unreadable: recompute below and overwrite
  emb = np.asarray(text_lib.encode_texts(texts, model_dir=model_dir, dtype=jnp.float32),
                   np.float32)
  cache_dir.mkdir(parents=True, exist_ok=True)
  # Write to a temporary file and rename, so a killed run never leaves half a file.
  fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".npy.tmp")
  try:
    with os.fdopen(fd, "wb") as f:
      np.save(f, emb, allow_pickle=False)
    os.replace(tmp, path)
  except BaseException:
    pathlib.Path(tmp).unlink(missing_ok=True)
    raise
  return emb
