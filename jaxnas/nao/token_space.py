"""The contract between NAO's controller, its search driver and a search space of token sequences.

NAO (Luo et al., NeurIPS 2018) and NAO-V2 (Luo, Qin, Chen, "Balanced One-shot Neural Architecture
Optimization", arXiv 1909.10815) see an architecture as a fixed-length sequence of integer tokens.
Token 0 is SOS/EOS and never part of an architecture. A space used by NAO implements
``TokenSpace``; the controller (``jaxnas.nao.controller``) only needs ``seq_len``, ``vocab_size``
and ``allowed_tokens()``, so it is free of any cell knowledge. Implementations:
``jaxnas.spaces.nao.NAOSpace`` (NAO's cells, 40 tokens) and ``jaxnas.nao.nb201.NB201TokenSpace``
(NAS-Bench-201's 6 edges, 6 tokens).
"""
from __future__ import annotations

from typing import Any, Protocol

import flax.linen as nn
import numpy as np


class TokenSpace(Protocol):
  """What NAO needs from a search space whose architectures are token sequences."""

  name: str
  seq_len: int      # tokens per architecture (40 for NAO's conv + reduction cells)
  vocab_size: int   # including token 0 (SOS/EOS)

  def allowed_tokens(self) -> np.ndarray:
    """A ``(seq_len, vocab_size)`` bool mask: the tokens valid at each position (never token 0).

    Constrained decoding picks the argmax among the allowed tokens of each position, so every
    decoded sequence is a valid architecture when validity is positional (true for NAO cells and
    NB201).
    """
    ...

  def random_arch(self, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random valid architecture, ``int32[seq_len]``."""
    ...

  def augment(self, tokens: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A symmetry-equivalent sequence of the same architecture (identity if the space has none)."""
    ...

  def num_params(self, tokens: np.ndarray) -> int:
    """The parameter count of the stand-alone network of ``tokens`` (NAO-V2's sampling weight)."""
    ...

  def to_string(self, tokens: np.ndarray) -> str:
    """A human-readable architecture string; ``from_string`` inverts it."""
    ...

  def from_string(self, text: str) -> np.ndarray:
    ...

  def supernet(self, **sizes: Any) -> nn.Module:
    """The weight-sharing supernet: ``__call__(x, tokens, *, train) -> logits``.

    ``tokens`` is a traced ``int32[seq_len]`` array: one compiled step serves every architecture.
    """
    ...

  # What NAO-V2's driver (``jaxnas.nao.search``) asks, at the sizes of the run config; the
  # registered space (``jaxnas.spaces.SPACES``) gives this object by ``token_space(config,
  # num_classes)``.
  drop_path: bool   # whether the supernet takes NAO's drop-path keep probability

  def supernet_from(self, config: Any, backend: Any, num_classes: int) -> nn.Module:
    """``supernet`` at ``config.space``'s sizes with the loops and kernels of ``backend``."""
    ...

  def num_params_from(self, config: Any, tokens: np.ndarray, num_classes: int) -> int:
    """``num_params`` at ``config.space``'s sizes."""
    ...

  def standalone_network_from(self, config: Any, tokens: np.ndarray, num_classes: int,
                              kernels: str) -> nn.Module:
    """The stand-alone network of ``tokens`` at ``config.space``'s sizes:
    ``(x, *, train) -> (logits, aux_logits)``."""
    ...
