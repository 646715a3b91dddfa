"""A resumable optax training loop shared by SIAMESE, SPE and the SSL metric.

Determinism is what makes resume exact: the batch of step s is drawn from
`fold_in(key, s)`, never from a stream that a restart would rewind, so a run killed at
step s and resumed from its checkpoint follows the same trajectory as an unbroken one.

The loop does not print. It calls `progress(step, loss)` and `evaluate(step, params)`
(which may write metrics) and checks every step's loss for NaN/Inf, raising with the step.
"""

from __future__ import annotations

import functools
import pathlib
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax

from sslmetric.experiment import checkpoint
from sslmetric.model.guards import check_finite


class TrainState(NamedTuple):
  step: jax.Array  # [] int, number of updates done
  params: Any
  opt_state: Any


def _history_path(ckpt_path: pathlib.Path) -> pathlib.Path:
  return pathlib.Path(ckpt_path).with_suffix(".history.json")


@functools.lru_cache(maxsize=None)
def make_step(loss_fn: Callable, optimizer: optax.GradientTransformation) -> Callable:
  """jit(step): (state, key, data) -> (state', loss); `loss_fn(params, key, data) -> []`.

  Cached on (loss_fn, optimizer), so equal objects share one compiled step (seeds
  differ only in `data`, which is an argument, not a closure).
  """

  @jax.jit
  def step(state: TrainState, key: jax.Array, data: Any):
    loss, grads = jax.value_and_grad(loss_fn)(state.params, key, data)
    updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    return TrainState(state.step + 1, params, opt_state), loss

  return step


def train(*, name: str, loss_fn: Callable, params: Any,
          optimizer: optax.GradientTransformation, num_steps: int, key: jax.Array,
          ckpt_path: Optional[pathlib.Path] = None, ckpt_every: int = 100,
          evaluate: Optional[Callable[[int, Any], dict]] = None, eval_every: int = 0,
          progress: Optional[Callable[[int, float], None]] = None,
          history: Optional[list] = None, data: Any = None) -> tuple:
  """Runs `num_steps` updates of `loss_fn`, resuming from `ckpt_path` if present.

  Args:
    name: what is trained (for error messages).
    loss_fn: (params, key, data) -> scalar loss, or (params, key) when `data` is None;
      `key` is `fold_in(key, step)`.
    params: initial parameters (also the template a checkpoint is restored into).
    optimizer: an optax transformation.
    num_steps: total updates.
    key: the run's PRNG key for this stage.
    ckpt_path: where the (state, history) checkpoint lives; None: no checkpoints.
    ckpt_every: steps between checkpoints (and always at the end).
    evaluate: optional (step, params) -> dict of metrics, called at step 0, every
      `eval_every` steps and at the end; the records are appended to `history`.
    eval_every: 0 = only at the start and the end.
    progress: optional (step, loss) callback after every step.
    history: list the evaluation records go into (restored on resume).
    data: the arrays `loss_fn` reads (passed to the compiled step, not closed over).

  Returns:
    (params, history, losses) with `losses` the per-step losses of this process.
  """
  history = [] if history is None else history
  state = TrainState(jnp.asarray(0), params, optimizer.init(params))
  if ckpt_path is not None:
    restored = checkpoint.restore(ckpt_path, state)
    if restored is not None:
      state = restored
      history[:] = checkpoint.read_json(_history_path(ckpt_path), default=[])
  if data is None:
    closure = loss_fn
    loss_fn = lambda params, key, _: closure(params, key)  # noqa: E731
  step_fn = make_step(loss_fn, optimizer)
  start = int(state.step)

  def record(step: int):
    if evaluate is None or any(h.get("step") == step for h in history):
      return
    history.append({"step": step, **evaluate(step, state.params)})

  def save():
    if ckpt_path is not None:
      checkpoint.write_json(_history_path(ckpt_path), history)
      checkpoint.save(ckpt_path, state)

  if start == 0:
    record(0)
  losses = []
  for s in range(start, num_steps):
    state, loss = step_fn(state, jax.random.fold_in(key, s), data)
    loss = float(loss)
    if not np.isfinite(loss):
      check_finite(state.params, name=f"{name} parameters", step=s + 1)
      raise FloatingPointError(f"{name}: loss is {loss} at step {s + 1}; lower the "
                               "learning rate or check the inputs for NaN")
    losses.append(loss)
    if progress is not None:
      progress(s + 1, loss)
    if eval_every and (s + 1) % eval_every == 0 and s + 1 < num_steps:
      record(s + 1)
    if ckpt_every and (s + 1) % ckpt_every == 0:
      save()
  record(num_steps)
  save()
  return state.params, history, losses
