r"""NAO's encoder–predictor–decoder controller, its training and gradient-ascent generation.

Neural Architecture Optimization (Luo, Tian, Qin, Chen, Liu, NeurIPS 2018) and NAO-V2 ("Balanced
One-shot Neural Architecture Optimization", Luo, Qin, Chen, arXiv 1909.10815); reference code
``renqianluo/NAO_pytorch`` (``NAO_V2/encoder.py``, ``decoder.py``, ``controller.py``,
``train_search.py``). An architecture is a token sequence :math:`x \in \{1..V-1\}^L` (token 0 is
SOS/EOS). With :math:`k` = ``tokens_per_step`` and :math:`T = L/k`:

* **encoder** :math:`E`: :math:`e_t = [\mathrm{emb}(x_{k t}); \dots; \mathrm{emb}(x_{k t + k-1})]`,
  :math:`h_t = \mathrm{LSTM}(e_{1..t})`, :math:`o_t = h_t / \lVert h_t\rVert_2` (encoder outputs),
  :math:`z = \bar o / \lVert\bar o\rVert_2` with :math:`\bar o = \frac1T\sum_t o_t` (arch
  embedding);
* **predictor** :math:`f`: :math:`f(z) = \sigma(w^\top \mathrm{MLP}(z) + b)`;
* **decoder** :math:`D`: an LSTM started at :math:`(h_0, c_0) = (z, z)` reads
  :math:`\mathrm{SOS}, x_1, \dots, x_{L-1}` (teacher forcing); at step :math:`j` its output
  :math:`s_j` attends over :math:`o`: :math:`a = \mathrm{softmax}_t(o_t^\top W_a s_j)`,
  :math:`\tilde s_j = \tanh(W_c[\sum_t a_t o_t; s_j])`,
  :math:`\log p(x_j \mid x_{<j}) = \mathrm{log\,softmax}(W_v \tilde s_j + b_v)`;
* **loss** :math:`\lambda\,\mathrm{MSE}(f(z), y) + (1-\lambda)\,\mathrm{NLL}(x)` with
  :math:`\lambda` = ``trade_off`` (0.8) and :math:`y` min-max normalized scores;
* **generation**: :math:`o' = \mathrm{normalize}(o + \eta\,\nabla_o f)` per step, :math:`z' =
  \mathrm{normalize}(\mathrm{mean}_t\,o')`, then constrained greedy decoding from
  :math:`(o', z')`, for :math:`\eta = 1, 2, \dots` until enough new sequences appear.

The controller is space-agnostic: it needs ``seq_len``, ``vocab_size`` and the positional mask
``allowed_tokens()`` of a ``jaxnas.nao.token_space.TokenSpace``.

Deviations from the reference (each also noted where it happens):

* Parameter initialisation follows PyTorch's defaults (embeddings N(0, 1); LSTM weights and biases
  and linear layers uniform in :math:`\pm 1/\sqrt{\text{fan}}`), except that Flax's LSTM cell has
  one bias per gate where PyTorch sums two. The LSTM input width is inferred, so ``emb_size ·
  tokens_per_step`` need not equal ``hidden_size`` (the reference requires it).
* Only one encoder and one decoder LSTM layer (the reference's ``*_layers`` are 1 in NAO-V2).
* Constrained decoding takes an arbitrary positional mask instead of the reference's hard-coded
  NAO-cell rule (``allowed_tokens()`` of ``NAOSpace`` reproduces it).
* ``generate_new_archs`` tries step sizes :math:`1..` ``max_step_size``; the reference's loop checks
  ``step > 50`` after generating, so it also tries step 51.
* ``normalize_scores`` maps a constant score vector to 0.5 (the reference divides by zero).
"""
from __future__ import annotations

import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxnas import optim

SOS_ID = 0
PyTree = Any


def l2_normalize(x: jax.Array, axis: int = -1, eps: float = 1e-12) -> jax.Array:
  r""":math:`x / \max(\lVert x\rVert_2, \epsilon)` along ``axis`` (as ``F.normalize``)."""
  norm = jnp.sqrt(jnp.sum(jnp.square(x), axis=axis, keepdims=True))
  return x / jnp.maximum(norm, eps)


def embed_outputs(encoder_outputs: jax.Array) -> jax.Array:
  r"""Arch embedding of encoder outputs ``o [B, T, H]``: :math:`\mathrm{normalize}(\bar o)`."""
  return l2_normalize(jnp.mean(encoder_outputs, axis=1))


# --------------------------------------------------------------------------- PyTorch's init


def _symmetric_uniform(bound: float):
  """``U(-bound, bound)`` for any shape (PyTorch's LSTM and bias initialisation)."""
  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)
  return init


_TORCH_EMBED = nn.initializers.normal(stddev=1.0)   # nn.Embedding: N(0, 1)


def _torch_dense(features: int, fan_in: int, use_bias: bool = True) -> nn.Dense:
  """``nn.Linear(fan_in, features)``: kernel and bias ``U(±1/sqrt(fan_in))``."""
  return nn.Dense(features, use_bias=use_bias,
                  kernel_init=nn.initializers.variance_scaling(1 / 3, "fan_in", "uniform"),
                  bias_init=_symmetric_uniform(fan_in ** -0.5))


def _torch_lstm_cell(features: int) -> nn.OptimizedLSTMCell:
  """``nn.LSTM(·, features)``: every weight and bias ``U(±1/sqrt(features))``.

  Flax's cell has one bias per gate where PyTorch has two (``b_ih + b_hh``); the single bias is
  drawn from the same uniform, so its spread is ``1/√2`` of PyTorch's summed biases.
  """
  init = _symmetric_uniform(features ** -0.5)
  return nn.OptimizedLSTMCell(features, kernel_init=init, recurrent_kernel_init=init,
                              bias_init=init)


# --------------------------------------------------------------------------- the module


class Controller(nn.Module):
  """NAO's encoder–predictor–decoder (see the module docstring for the equations).

  Attributes:
    vocab_size: tokens including 0 (SOS/EOS); the encoder and decoder share it.
    seq_len: tokens per architecture (the reference's source/decoder length, 40).
    tokens_per_step: consecutive tokens concatenated into one encoder step (source_length /
      encoder_length, 2 in NAO-V2); must divide ``seq_len``.
    emb_size: encoder token embedding width (32).
    hidden_size: encoder and decoder LSTM width; also the arch embedding width (64).
    mlp_layers: hidden ReLU layers of the predictor (0 in NAO-V2, 3 in NAO-V1).
    mlp_hidden_size: width of those layers (200).
    encoder_dropout: dropout on the encoder token embeddings (0).
    mlp_dropout: dropout after each hidden predictor layer (0.1; unused when ``mlp_layers=0``, as
      in the reference).
    decoder_dropout: dropout on the decoder token embeddings (0).
  """
  vocab_size: int
  seq_len: int
  tokens_per_step: int = 2
  emb_size: int = 32
  hidden_size: int = 64
  mlp_layers: int = 0
  mlp_hidden_size: int = 200
  encoder_dropout: float = 0.0
  mlp_dropout: float = 0.1
  decoder_dropout: float = 0.0

  def __post_init__(self):
    if self.tokens_per_step < 1 or self.seq_len % self.tokens_per_step:
      raise ValueError(f"tokens_per_step={self.tokens_per_step} must be positive and divide "
                       f"seq_len={self.seq_len} (the encoder reads seq_len / tokens_per_step "
                       "steps).")
    super().__post_init__()

  def setup(self):
    h = self.hidden_size
    self.encoder_embed = nn.Embed(self.vocab_size, self.emb_size, embedding_init=_TORCH_EMBED)
    self.encoder_drop = nn.Dropout(self.encoder_dropout)
    self.mlp_drop = nn.Dropout(self.mlp_dropout)
    self.decoder_drop = nn.Dropout(self.decoder_dropout)
    self.encoder_cell = _torch_lstm_cell(h)
    self.mlp = [_torch_dense(self.mlp_hidden_size, h if i == 0 else self.mlp_hidden_size)
                for i in range(self.mlp_layers)]
    self.regressor = _torch_dense(1, self.mlp_hidden_size if self.mlp_layers else h)
    self.decoder_embed = nn.Embed(self.vocab_size, h, embedding_init=_TORCH_EMBED)
    self.decoder_cell = _torch_lstm_cell(h)
    self.attention_in = _torch_dense(h, h, use_bias=False)         # W_a
    self.attention_out = _torch_dense(h, 2 * h, use_bias=False)    # W_c
    self.vocab_out = _torch_dense(self.vocab_size, h)              # W_v, b_v

  # ------------------------------------------------------------------------- encoder / predictor

  def encode(self, tokens: jax.Array, *, train: bool = False) -> tuple[jax.Array, jax.Array]:
    """``int32[B, L]`` -> (encoder outputs ``[B, T, H]``, unit rows; arch embedding ``[B, H]``)."""
    batch = tokens.shape[0]
    x = self.encoder_embed(tokens)
    x = self.encoder_drop(x, deterministic=not train)
    steps = self.seq_len // self.tokens_per_step
    x = x.reshape(batch, steps, self.tokens_per_step * self.emb_size)
    zeros = jnp.zeros((batch, self.hidden_size), x.dtype)
    _, h = _scan_time(lambda mdl, carry, xt: mdl.encoder_cell(carry, xt))(self, (zeros, zeros), x)
    outputs = l2_normalize(h)
    return outputs, embed_outputs(outputs)

  def predict(self, arch_emb: jax.Array, *, train: bool = False) -> jax.Array:
    r"""Arch embedding ``[B, H]`` -> score ``[B]``, :math:`\sigma(w^\top\mathrm{MLP}(z)+b)`."""
    x = arch_emb
    for dense in self.mlp:
      x = self.mlp_drop(nn.relu(dense(x)), deterministic=not train)
    return nn.sigmoid(self.regressor(x))[:, 0]

  # ------------------------------------------------------------------------- decoder

  def _attend(self, s: jax.Array, encoder_outputs: jax.Array) -> jax.Array:
    r"""Attention output :math:`\tanh(W_c[\mathrm{mix}; s])`; ``s``: ``[B, H]`` or ``[B, J, H]``."""
    squeeze = s.ndim == 2
    s3 = s[:, None, :] if squeeze else s
    scores = jnp.einsum("bjh,bth->bjt", self.attention_in(s3), encoder_outputs)
    mix = jnp.einsum("bjt,bth->bjh", jax.nn.softmax(scores, axis=-1), encoder_outputs)
    out = jnp.tanh(self.attention_out(jnp.concatenate([mix, s3], axis=-1)))
    return out[:, 0] if squeeze else out

  def _log_probs(self, s: jax.Array, encoder_outputs: jax.Array) -> jax.Array:
    return jax.nn.log_softmax(self.vocab_out(self._attend(s, encoder_outputs)), axis=-1)

  def _decoder_input(self, tokens: jax.Array, train: bool) -> jax.Array:
    x = self.decoder_embed(tokens)
    return self.decoder_drop(x, deterministic=not train)

  def decode(self, encoder_outputs: jax.Array, arch_emb: jax.Array, targets: jax.Array, *,
             train: bool = False) -> jax.Array:
    """Teacher forcing: log-probs ``[B, L, V]`` of ``targets`` given ``SOS + targets[:, :-1]``.

    The decoder has no input feeding (the attention output is not fed back), so the LSTM runs over
    the shifted targets first and the attention is applied to all steps at once.
    """
    inputs = jnp.concatenate(
        [jnp.full((targets.shape[0], 1), SOS_ID, targets.dtype), targets[:, :-1]], axis=1)
    x = self._decoder_input(inputs, train)
    _, s = _scan_time(lambda mdl, carry, xt: mdl.decoder_cell(carry, xt))(
        self, (arch_emb, arch_emb), x)
    return self._log_probs(s, encoder_outputs)

  def greedy_decode(self, encoder_outputs: jax.Array, arch_emb: jax.Array,
                    allowed: jax.Array) -> jax.Array:
    """Constrained greedy decoding: ``int32[B, L]``, token ``j`` = argmax over ``allowed[j]``.

    Starts from SOS with (h, c) = (arch_emb, arch_emb) and feeds each chosen token back (no
    dropout). Every row of ``allowed`` (bool ``[L, V]``) needs at least one True entry.
    """
    batch = encoder_outputs.shape[0]

    def step(mdl, carry, allowed_j):
      lstm_carry, prev = carry
      lstm_carry, s = mdl.decoder_cell(lstm_carry, mdl._decoder_input(prev, False))
      logp = mdl._log_probs(s, encoder_outputs)
      masked = jnp.where(allowed_j[None, :], logp, -jnp.inf)
      token = jnp.argmax(masked, axis=-1).astype(jnp.int32)
      return (lstm_carry, token), token

    start = jnp.full((batch,), SOS_ID, jnp.int32)
    _, tokens = _scan_time(step, time_axis=0)(self, ((arch_emb, arch_emb), start), allowed)
    return tokens.T

  def __call__(self, tokens: jax.Array, targets: jax.Array | None = None, *,
               train: bool = False) -> tuple[jax.Array, jax.Array]:
    """(predictions ``[B]``, teacher-forced log-probs ``[B, L, V]`` of ``targets``).

    ``targets`` defaults to ``tokens`` (reconstruction, as in training).
    """
    outputs, arch_emb = self.encode(tokens, train=train)
    targets = tokens if targets is None else targets
    return self.predict(arch_emb, train=train), self.decode(outputs, arch_emb, targets, train=train)


def _scan_time(fn: Callable, time_axis: int = 1):
  """``nn.scan`` of ``fn(module, carry, x_t)`` over ``time_axis`` with the params broadcast."""
  return nn.scan(fn, variable_broadcast="params", split_rngs={"params": False},
                 in_axes=time_axis, out_axes=time_axis)


# --------------------------------------------------------------------------- loss and training


@functools.partial(jax.jit, static_argnames="model")
def init_controller(model: Controller, key: jax.Array) -> PyTree:
  """The controller's variables ``{'params': ...}``, usable as ``model.apply(params, ...)``."""
  tokens = jnp.ones((1, model.seq_len), jnp.int32)
  return model.init(key, tokens, train=False)


def _weighted_loss(model, params, tokens, targets, weights, key, trade_off):
  """Loss of a batch whose rows carry weights in {0, 1}; means are over the weighted rows only."""
  preds, log_probs = model.apply(params, tokens, train=True, rngs={"dropout": key})
  count = jnp.maximum(jnp.sum(weights), 1.0)
  mse = jnp.sum(weights * jnp.square(preds - targets)) / count
  token_nll = -jnp.take_along_axis(log_probs, tokens[..., None], axis=-1)[..., 0]
  nll = jnp.sum(weights * jnp.mean(token_nll, axis=1)) / count
  return trade_off * mse + (1.0 - trade_off) * nll, {"mse": mse, "nll": nll}


def controller_loss(model: Controller, params: PyTree, tokens: jax.Array, targets: jax.Array,
                    key: jax.Array, trade_off: float = 0.8) -> tuple[jax.Array, dict]:
  r""":math:`\lambda\,\mathrm{MSE}(f(E(x)), y) + (1-\lambda)\,\mathrm{NLL}(D(x \mid E(x)))`.

  The NLL is the mean over the ``B·L`` tokens, the MSE the mean over the ``B`` rows (the
  reference's ``F.mse_loss`` / ``F.nll_loss``); train mode, dropout keyed by ``key``.

  Returns:
    ``(loss, {'mse': ..., 'nll': ...})``.
  """
  weights = jnp.ones(tokens.shape[:1], jnp.float32)
  return _weighted_loss(model, params, tokens, targets.astype(jnp.float32), weights, key,
                        trade_off)


def _make_optimizer(learning_rate, grad_bound, l2_reg):
  """``torch.optim.Adam(lr, weight_decay=l2)`` after ``clip_grad_norm_(grad_bound)``.

  PyTorch's Adam ``weight_decay`` is *coupled* L2: ``g <- g + l2·w`` before the moments (not
  AdamW), applied after the clipping in the reference, so the chain is clip -> decay -> adam
  (``jaxnas.optim.adam_l2`` with PyTorch's default betas, which also works under strict dtype
  promotion).
  """
  return optax.chain(optax.clip_by_global_norm(grad_bound),
                     optim.adam_l2(learning_rate, b1=0.9, b2=0.999, eps=1e-8,
                                   weight_decay=l2_reg))


@functools.partial(jax.jit, static_argnames=("model", "batch_size", "learning_rate", "grad_bound",
                                             "l2_reg", "trade_off"))
def _train_epoch(model, params, opt_state, tokens, targets, key, *, batch_size, learning_rate,
                 grad_bound, l2_reg, trade_off):
  """One epoch: a shuffle, then ``lax.scan`` over ``ceil(N / batch_size)`` Adam steps.

  The last batch is padded with weight-0 rows, which makes it exactly the reference's smaller final
  batch (``DataLoader(drop_last=False)``): its losses are means over its real rows only.
  """
  tx = _make_optimizer(learning_rate, grad_bound, l2_reg)
  n = tokens.shape[0]
  num_batches = -(-n // batch_size)
  perm_key, drop_key = jax.random.split(key)
  order = jnp.concatenate([jax.random.permutation(perm_key, n),
                           jnp.zeros((num_batches * batch_size - n,), jnp.int32)])
  weights = (jnp.arange(num_batches * batch_size) < n).astype(jnp.float32)
  batches = (tokens[order].reshape(num_batches, batch_size, -1),
             targets[order].reshape(num_batches, batch_size),
             weights.reshape(num_batches, batch_size),
             jax.random.split(drop_key, num_batches))

  def step(carry, batch):
    params, opt_state = carry
    tok, tgt, w, k = batch
    (loss, aux), grads = jax.value_and_grad(_weighted_loss, argnums=1, has_aux=True)(
        model, params, tok, tgt, w, k, trade_off)
    updates, opt_state = tx.update(grads, opt_state, params)
    stats = jnp.stack([loss, aux["mse"], aux["nll"]]) * jnp.sum(w)
    return (optax.apply_updates(params, updates), opt_state), stats

  (params, opt_state), stats = jax.lax.scan(step, (params, opt_state), batches)
  return params, opt_state, jnp.sum(stats, axis=0) / n


def train_controller(model: Controller, params: PyTree, tokens, targets, key: jax.Array, *,
                     epochs: int, batch_size: int = 100, learning_rate: float = 1e-3,
                     grad_bound: float = 5.0, l2_reg: float = 0.0, trade_off: float = 0.8
                     ) -> tuple[PyTree, dict[str, float]]:
  """Trains the controller ``epochs`` epochs from ``params`` with a fresh Adam (as the reference).

  Each epoch shuffles the ``N`` rows (key ``fold_in(key, epoch)``) and takes ``ceil(N /
  batch_size)`` steps of clip-by-global-norm(``grad_bound``) -> coupled L2 (``l2_reg``, PyTorch
  Adam's ``weight_decay``) -> Adam(``learning_rate``) on ``controller_loss``; the last partial batch
  is kept (padded and masked, see ``_train_epoch``). One compiled program serves every epoch.

  Args:
    tokens: ``int[N, L]`` training sequences.
    targets: ``float[N]`` normalized scores (``normalize_scores``).

  Returns:
    ``(params, {'loss', 'mse', 'nll'})``: the last epoch's means over its samples (floats; NaN if
    ``epochs == 0``). Only the final values leave the device: the epochs are dispatched
    asynchronously.
  """
  tokens = jnp.asarray(tokens, jnp.int32)
  targets = jnp.asarray(targets, jnp.float32)
  opt_state = _make_optimizer(learning_rate, grad_bound, l2_reg).init(params)
  stats = jnp.full((3,), jnp.nan, jnp.float32)
  for epoch in range(epochs):
    params, opt_state, stats = _train_epoch(
        model, params, opt_state, tokens, targets, jax.random.fold_in(key, epoch),
        batch_size=min(batch_size, tokens.shape[0]), learning_rate=learning_rate,
        grad_bound=grad_bound, l2_reg=l2_reg, trade_off=trade_off)
  loss, mse, nll = (float(v) for v in np.asarray(stats))
  return params, {"loss": loss, "mse": mse, "nll": nll}


# --------------------------------------------------------------------------- data preparation


def normalize_scores(scores) -> np.ndarray:
  r"""Min-max normalization :math:`(s - \min s) / (\max s - \min s)` into [0, 1] (``float32``).

  A constant vector (including a single score) maps to 0.5 everywhere: every architecture is
  equally good and 0.5 is the predictor's neutral output (the reference divides by zero here).
  """
  scores = np.asarray(scores, np.float64)
  if scores.size == 0:
    return scores.astype(np.float32)
  lo, hi = scores.min(), scores.max()
  if hi == lo:
    return np.full(scores.shape, 0.5, np.float32)
  return ((scores - lo) / (hi - lo)).astype(np.float32)


def expand_training_set(tokens, targets, *, augment_fn: Callable, expand: int,
                        train_fraction: float = 0.9, rng: np.random.Generator
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
  """NAO-V2's ``controller_expand`` augmentation of the scored pool.

  The pool is shuffled (``rng``) and split: the first ``int(N·train_fraction)`` rows train, the
  rest validate. The training rows come first, then ``expand - 1`` augmented copies of them (each
  copy of row ``i`` is ``augment_fn(copy of tokens_i, rng)``, same target), in the reference's
  order; the validation rows are never augmented. ``expand=1`` gives the split alone. (The
  reference's ``controller_expand=None`` mode, which trains on the whole pool with random swaps
  drawn per sample, is not provided.)

  Returns:
    ``(train_tokens int32[S·expand, L], train_targets float32[S·expand], valid_tokens,
    valid_targets)`` with ``S = int(N·train_fraction)``.
  """
  if expand < 1:
    raise ValueError(f"expand must be >= 1, got {expand}.")
  tokens = np.asarray(tokens, np.int32)
  targets = np.asarray(targets, np.float32)
  perm = rng.permutation(len(tokens))
  tokens, targets = tokens[perm], targets[perm]
  split = int(len(tokens) * train_fraction)
  train_tok, train_tgt = [tokens[:split]], [targets[:split]]
  for _ in range(expand - 1):
    train_tok.append(np.stack([np.asarray(augment_fn(row.copy(), rng), np.int32)
                               for row in tokens[:split]]).reshape(split, tokens.shape[1]))
    train_tgt.append(targets[:split])
  return (np.concatenate(train_tok), np.concatenate(train_tgt), tokens[split:].copy(),
          targets[split:].copy())


# --------------------------------------------------------------------------- inference


@functools.partial(jax.jit, static_argnames="model")
def _predict(model, params, tokens):
  _, arch_emb = model.apply(params, tokens, method=Controller.encode)
  return model.apply(params, arch_emb, method=Controller.predict)


def predict_scores(model: Controller, params: PyTree, tokens) -> np.ndarray:
  """Predicted scores ``float32[N]`` of ``int[N, L]`` sequences (eval mode)."""
  return np.asarray(_predict(model, params, jnp.asarray(tokens, jnp.int32)))


def ascend_encoder_outputs(model: Controller, params: PyTree, tokens: jax.Array,
                           step_size) -> tuple[jax.Array, jax.Array]:
  r"""NAO's gradient step in embedding space (``Encoder.infer(direction='+')``).

  :math:`o' = \mathrm{normalize}(o + \eta\,\nabla_o \sum_b f(z(o_b)))` per step, with
  :math:`z(o) = \mathrm{normalize}(\mathrm{mean}_t\,o_t)`; returns :math:`(o', z(o'))`. The
  gradient of the summed predictions is each row's own gradient (rows are independent in eval mode).
  """
  outputs, _ = model.apply(params, tokens, method=Controller.encode)

  def total_score(o):
    return jnp.sum(model.apply(params, embed_outputs(o), method=Controller.predict))

  new_outputs = l2_normalize(outputs + step_size * jax.grad(total_score)(outputs))
  return new_outputs, embed_outputs(new_outputs)


@functools.partial(jax.jit, static_argnames="model")
def _generate(model, params, tokens, step_size, allowed):
  new_outputs, new_emb = ascend_encoder_outputs(model, params, tokens, step_size)
  return model.apply(params, new_outputs, new_emb, allowed, method=Controller.greedy_decode)


def generate(model: Controller, params: PyTree, tokens, step_size, allowed) -> jax.Array:
  """Decodes ``int[N, L]`` sequences after one gradient-ascent step of size ``step_size``.

  See ``ascend_encoder_outputs``; decoding is ``Controller.greedy_decode`` constrained by
  ``allowed`` (bool ``[L, V]``). ``step_size`` is traced: every step size shares one program.
  """
  return _generate(model, params, jnp.asarray(tokens, jnp.int32),
                   jnp.asarray(step_size, jnp.float32), jnp.asarray(allowed, bool))


def generate_new_archs(model: Controller, params: PyTree, top_tokens, allowed, *, num_new: int,
                       max_step_size: int = 50, existing=()) -> np.ndarray:
  """NAO's generation loop: step sizes 1, 2, ... until ``num_new`` new sequences are found.

  At each step size, every decoded sequence (in the order of ``top_tokens``) is kept if it is
  neither in ``existing`` (tuples of ints, the scored pool) nor already kept; stops at ``num_new``
  or after step size ``max_step_size`` (the reference also tries ``max_step_size + 1``).

  Returns:
    ``int32[K, L]`` with ``K <= num_new``.
  """
  seen = {tuple(int(t) for t in row) for row in existing}
  new = []
  for step_size in range(1, max_step_size + 1):
    for row in np.asarray(generate(model, params, top_tokens, float(step_size), allowed)):
      key = tuple(int(t) for t in row)
      if key not in seen:
        seen.add(key)
        new.append(row)
        if len(new) >= num_new:
          return np.stack(new).astype(np.int32)
  return (np.stack(new).astype(np.int32) if new
          else np.zeros((0, model.seq_len), np.int32))
