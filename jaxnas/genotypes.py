"""Published genotypes by name, with their provenance: train or compare them with
``--config.genotype=<name>``.

Every entry below was copied from a primary source (the authors' repository or paper) and, where
a reference figure exists, checked by a test (``tests/test_evaluation.py``: DARTS V1/V2 parameter
counts at C=36, 20 cells equal the reference code's 3,169,414 / 3,349,342, and the MiLeNAS
cells' counts round to the paper's 3.87M / 2.86M;
``tests/test_nao_space.py``: NAONet-A's 11,470,150 at C=36, counted on the reference model).

``resolve(spec)`` turns a config value into ``(space_name, genotype)``: a registry name, a genotype
string (DARTS ``Genotype(...)``, an NB201 ``|op~0|+...`` string, or a NAO arch, below), or the
path of a search's ``genotypes.jsonl`` (the genotype of its last line) or of a text file holding a
genotype string.

NAO architectures (space ``'nao'``, ``jaxnas.spaces.nao``) are ``NAOArch``: the reference's raw
``fixed_arc``, ``[x_id, x_op, y_id, y_op]`` per node (5 nodes), conv cell then reduction cell,
40 ints, op indices into the reference's op set (``OPERATIONS_small`` unless said otherwise).
As a string: ``"nao:1 1 0 1 ..."`` (the small op set, NAO-V2's default ``--search_space``),
``"nao:middle:0 2 ..."`` (the middle op set), or the bare ints ``"1 1 0 1 ..."`` as pasted from a
``train_*.sh`` or an ``arch_pool`` file (always the small op set: the ints alone do not say which
set they index). ``str(NAOArch)`` is the prefixed form, which parses back to the same arch.

The MiLeNAS cells (He et al., CVPR 2020): ``chaoyanghe/MiLeNAS`` (@ce91b6b)
``search_space/genotypes.py`` holds about fifty run genotypes under run names and does not say
which ones the paper reports. The paper PDF in the same repository (``docs/``) draws two
architectures in its Figure 5 and gives their sizes in Table 1; an architecture is registered
only where the figure, read edge by edge, and the parameter count (``reports.num_params`` at
C=36, 20 cells, auxiliary head excluded like the reference's ``count_parameters_in_MB``) both
match:

* ``MILENAS``: Figure 5 left, "an error rate of 2.34% with a parameter size of 3.87M" (Table 1:
  2.51 +- 0.11 %, best 2.34). Equal, gene for gene, to the repository's ``r101_e50_48_n7r3``, the
  only one of its genotypes with 3.87M parameters (3,874,222), which its
  ``evaluation/run_eval_cifar10.sh`` annotates "(97.66)", i.e. 2.34 % error.
* ``MILENAS_2_86M``: Figure 5 right, "an error rate of 2.50% with a parameter size of 2.86M"
  (Table 1's third MiLeNAS row), as drawn. Its normal cell is the repository's ``V2_r2_e100``'s
  (2,857,942 parameters, the only 2.86M genotype there); its reduction cell has one max pool
  where ``V2_r2_e100`` has an average pool (node 2's edge from c_{k-2}; the figure shows four
  max pools and one average pool), which is the reduction cell of ``v2_r2_e200``. Pools have no
  parameters, so the figure's network has the same 2,857,942 parameters.

Not in the registry, because no primary source could be verified (never reconstructed from
memory): Table 1's other two MiLeNAS rows (2.87M and 2.09M: the repository's only genotypes of
those sizes are ``r118_e100_92_n4r1`` and ``v2_r5_e200``, but no figure shows them, so the match
is by size alone), the GAEA PC-DARTS cell (published as a figure of arXiv 2004.07802, which
could not be read here; ``liamcli/gaea_release`` and ``liamcli/PC-DARTS`` hold run genotypes
without naming the paper's), and the DARTS-PRIME cells (``k8lion/DARTS-PRIME src/genotypes.py``
names none as the paper's).

NAONet-A's op indices (5-15) follow NAO-V1's numbering (``NAO_V1/model.py``: 0-4 the small set,
5-15 NAO's original 11 ops), the ``'v1'`` op set: ``"nao:v1:0 7 1 15 ..."``.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Any

from jaxnas.spaces import nao as nao_lib
from jaxnas.spaces.darts import Genotype, parse_darts_genotype
from jaxnas.spaces.nb201 import NB201Genotype


@dataclasses.dataclass(frozen=True)
class Entry:
  """A registered genotype: its space, the genotype, and where it was published."""
  space: str
  genotype: Any
  source: str


@dataclasses.dataclass(frozen=True)
class NAOArch:
  """A NAO architecture: the raw arch (``fixed_arc`` ints) and the op set its op indices refer to.

  ``ops``: a name of ``jaxnas.spaces.nao.OP_SETS`` (``'small'``, ``'middle'``, ``'v1'``); the
  number of nodes is ``len(arch) // 8``. Validated on construction (ValueError names the bad node).
  """
  arch: tuple[int, ...]
  ops: str = "small"

  def __post_init__(self):
    object.__setattr__(self, "arch", tuple(int(v) for v in self.arch))
    if self.ops not in nao_lib.OP_SETS:
      raise ValueError(f"Unknown NAO op set {self.ops!r}; valid: {', '.join(nao_lib.OP_SETS)}.")
    if not self.arch or len(self.arch) % 8:
      raise ValueError(f"Malformed NAO arch {' '.join(map(str, self.arch))!r}: expected 8 "
                       "integers per node ([x_id, x_op, y_id, y_op] x nodes x 2 cells), got "
                       f"{len(self.arch)}.")
    try:
      self.tokens()  # validates ids and ops
    except ValueError as e:
      largest = max(self.arch[1::2])
      if len(nao_lib.OP_SETS[self.ops]) <= largest < len(nao_lib.OP_SETS["v1"]):
        raise ValueError(f"{e} Op indices up to 15 are NAO-V1's numbering (NAONet-A's "
                         "train_*.sh): write the arch as 'nao:v1:<ints>'.") from None
      raise

  @classmethod
  def from_string(cls, text: str, ops: str = "small") -> "NAOArch":
    """From whitespace-separated ints (the reference's ``fixed_arc``)."""
    try:
      return cls(tuple(int(v) for v in text.split()), ops)
    except ValueError as e:
      if "NAO" in str(e):
        raise
      raise ValueError(f"Malformed NAO arch {text!r}: expected whitespace-separated "
                       "integers.") from None

  @property
  def space(self) -> nao_lib.NAOSpace:
    return nao_lib.NAOSpace(self.ops, num_nodes=len(self.arch) // 8)

  def tokens(self):
    """The arch's token sequence in ``self.space`` (``NAOSpace.arch_to_tokens``)."""
    return self.space.arch_to_tokens(list(self.arch))

  def __str__(self) -> str:
    prefix = "nao:" if self.ops == "small" else f"nao:{self.ops}:"
    return prefix + " ".join(str(v) for v in self.arch)


def _darts(normal, reduce, concat=(2, 3, 4, 5)) -> Genotype:
  return Genotype(normal=list(normal), normal_concat=list(concat), reduce=list(reduce),
                  reduce_concat=list(concat))


_QUARK0 = ("quark0/darts cnn/genotypes.py; identical copies in chaoyanghe/MiLeNAS "
           "search_space/genotypes.py @41d75b3 and liamcli/gaea_release "
           "cnn/search_spaces/darts/genotypes.py @36d1299")
_PCDARTS = ("PC-DARTS (Xu et al., ICLR 2020), as copied into liamcli/gaea_release "
            "cnn/search_spaces/darts/genotypes.py @36d1299")
_NAO_PYTORCH = "renqianluo/NAO_pytorch @418ff717e6a6e9b22ec163fd4d21f2f8013f03c5"
_MILENAS_FIGURE = ("MiLeNAS paper (He et al., CVPR 2020) Figure 5, in chaoyanghe/MiLeNAS @ce91b6b "
                   "docs/ (module docstring)")
_NATS = ("/work/shared/data/nb201/nats_bench.csv (NATS-Bench topology results, 200 epochs): "
         "the cell with the highest CIFAR-10 test accuracy, 94.37")

REGISTRY: dict[str, Entry] = {
    # DARTS first order (Liu et al., ICLR 2019), CIFAR-10: 3.00 +- 0.14 % test error, 3.3M params.
    "DARTS_V1": Entry("darts", _darts(
        normal=[("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("skip_connect", 0),
                ("sep_conv_3x3", 1), ("skip_connect", 0), ("sep_conv_3x3", 1),
                ("sep_conv_3x3", 0), ("skip_connect", 2)],
        reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2),
                ("max_pool_3x3", 0), ("max_pool_3x3", 0), ("skip_connect", 2),
                ("skip_connect", 2), ("avg_pool_3x3", 0)]), _QUARK0 + " (DARTS_V1)"),
    # DARTS second order, CIFAR-10: 2.76 +- 0.09 % test error, 3.3M params; ImageNet mobile 26.7 %.
    "DARTS_V2": Entry("darts", _darts(
        normal=[("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("sep_conv_3x3", 0),
                ("sep_conv_3x3", 1), ("sep_conv_3x3", 1), ("skip_connect", 0),
                ("skip_connect", 0), ("dil_conv_3x3", 2)],
        reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("skip_connect", 2),
                ("max_pool_3x3", 1), ("max_pool_3x3", 0), ("skip_connect", 2),
                ("skip_connect", 2), ("max_pool_3x3", 1)]), _QUARK0 + " (DARTS_V2)"),
    "PC_DARTS_CIFAR": Entry("darts", _darts(
        normal=[("sep_conv_3x3", 1), ("skip_connect", 0), ("sep_conv_3x3", 0),
                ("dil_conv_3x3", 1), ("sep_conv_5x5", 0), ("sep_conv_3x3", 1),
                ("avg_pool_3x3", 0), ("dil_conv_3x3", 1)],
        reduce=[("sep_conv_5x5", 1), ("max_pool_3x3", 0), ("sep_conv_5x5", 1),
                ("sep_conv_5x5", 2), ("sep_conv_3x3", 0), ("sep_conv_3x3", 3),
                ("sep_conv_3x3", 1), ("sep_conv_3x3", 2)]), _PCDARTS + " (PC_DARTS_cifar)"),
    "PC_DARTS_IMAGENET": Entry("darts", _darts(
        normal=[("skip_connect", 1), ("sep_conv_3x3", 0), ("sep_conv_3x3", 0),
                ("skip_connect", 1), ("sep_conv_3x3", 1), ("sep_conv_3x3", 3),
                ("sep_conv_3x3", 1), ("dil_conv_5x5", 4)],
        reduce=[("sep_conv_3x3", 0), ("skip_connect", 1), ("dil_conv_5x5", 2),
                ("max_pool_3x3", 1), ("sep_conv_3x3", 2), ("sep_conv_3x3", 1),
                ("sep_conv_5x5", 0), ("sep_conv_3x3", 3)]), _PCDARTS + " (PC_DARTS_image)"),
    # MiLeNAS (He et al., CVPR 2020), CIFAR-10: 2.51 +- 0.11 % (best 2.34 %), 3.87M params.
    "MILENAS": Entry("darts", _darts(
        normal=[("sep_conv_3x3", 1), ("sep_conv_3x3", 0), ("dil_conv_3x3", 0),
                ("sep_conv_3x3", 1), ("skip_connect", 0), ("sep_conv_3x3", 1),
                ("sep_conv_3x3", 0), ("sep_conv_5x5", 1)],
        reduce=[("dil_conv_3x3", 0), ("sep_conv_3x3", 1), ("skip_connect", 2),
                ("max_pool_3x3", 0), ("skip_connect", 2), ("dil_conv_5x5", 3),
                ("skip_connect", 2), ("max_pool_3x3", 0)]),
        _MILENAS_FIGURE + " left = search_space/genotypes.py r101_e50_48_n7r3"),
    # MiLeNAS, CIFAR-10: 2.50 %, 2.86M params (model-size-based search).
    "MILENAS_2_86M": Entry("darts", _darts(
        normal=[("sep_conv_3x3", 0), ("sep_conv_3x3", 1), ("skip_connect", 0),
                ("sep_conv_3x3", 1), ("skip_connect", 0), ("skip_connect", 1),
                ("skip_connect", 0), ("sep_conv_5x5", 1)],
        reduce=[("max_pool_3x3", 0), ("max_pool_3x3", 1), ("max_pool_3x3", 0),
                ("skip_connect", 2), ("max_pool_3x3", 0), ("skip_connect", 2),
                ("avg_pool_3x3", 0), ("skip_connect", 2)]),
        _MILENAS_FIGURE + " right, as drawn (normal cell = V2_r2_e100's, reduction cell = "
        "v2_r2_e200's)"),
    # NAO-V2 (Luo et al., arXiv 1909.10815), small op set: NAO_V2/README.md reports 2.57 % test
    # error on CIFAR-10 (C=36, N=6, train_NAONet_V2_36_cifar10.sh) and no parameter count.
    "NAONET_V2": Entry("nao", NAOArch.from_string(
        "1 1 0 1 2 4 0 0 0 0 2 1 0 0 0 2 0 3 0 0 0 2 0 2 2 2 1 0 0 0 0 1 0 0 0 3 0 0 0 1"),
        _NAO_PYTORCH + " NAO_V2/train_NAONet_V2_36_cifar10.sh (fixed_arc)"),
    # NAO (Luo et al., NeurIPS 2018): "the best architecture we discovered by NAO (Fig. 1 in the
    # Appendix)", in NAO's original 11-op space (NAO-V1's ops 5-15). NAO_V1/README.md reports
    # 2.48 % test error (C=36, N=6, cutout 16) and 1.93 % at C=128; no parameter count.
    "NAONET_A": Entry("nao", NAOArch.from_string(
        "0 7 1 15 2 8 1 7 0 6 1 7 0 8 4 7 1 5 0 7 0 7 1 13 0 6 0 14 0 9 1 10 0 14 2 6 1 11 0 7",
        "v1"), _NAO_PYTORCH + " NAO_V1/train_NAONet_A_36_cifar10.sh (fixed_arc)"),
    # NAO-WS (Luo et al., NeurIPS 2018), NAO-V1's ops 0-4 = the small op set (NAO_V1/model.py
    # builds them as NAO-V2's OPERATIONS_small): NAO_V1/README.md reports 2.93 % test error
    # (C=36, N=6) and no parameter count.
    "NAONET_B": Entry("nao", NAOArch.from_string(
        "0 1 0 2 0 1 2 2 1 3 0 2 4 0 1 3 2 1 0 3 1 1 1 0 2 1 2 4 1 0 2 3 3 1 2 2 0 2 0 2"),
        _NAO_PYTORCH + " NAO_V1/train_NAONet_B_36_cifar10.sh (fixed_arc)"),
    # NB201: the best cell on CIFAR-10 and the all-skip cell DARTS collapses to (methods.md §2(f)).
    "NB201_BEST_CIFAR10": Entry("nb201", NB201Genotype.from_string(
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|"
        "nor_conv_1x1~2|"), _NATS),
    "NB201_ALL_SKIP": Entry("nb201", NB201Genotype.from_string(
        "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|"
        "skip_connect~2|"), "the all-skip_connect cell DARTS-V1/V2 find on NB201 (AutoDL "
        "re-implementation, methods.md §2(f))"),
}


def names() -> list[str]:
  """The registered genotype names."""
  return sorted(REGISTRY)


def get(name: str) -> Entry:
  """The registry entry ``name``; ValueError lists the valid names."""
  if name not in REGISTRY:
    raise ValueError(f"Unknown genotype {name!r}; registered genotypes: {', '.join(names())}.")
  return REGISTRY[name]


def parse(text: str) -> tuple[str, Any]:
  """``(space, genotype)`` of a genotype string: DARTS ``Genotype(...)``, NB201 ``|...|``, or a
  NAO arch (``nao:<ints>``, ``nao:<op set>:<ints>`` or bare ints; see the module docstring)."""
  text = text.strip()
  if text.startswith("Genotype("):
    return "darts", parse_darts_genotype(text)
  if text.startswith("|"):
    return "nb201", NB201Genotype.from_string(text)
  if text.startswith("nao:"):
    body, ops = text[len("nao:"):], "small"
    if ":" in body:
      ops, body = (part.strip() for part in body.split(":", 1))
    return "nao", NAOArch.from_string(body, ops)
  if re.fullmatch(r"[0-9\s]+", text):
    return "nao", NAOArch.from_string(text)
  raise ValueError(f"Not a genotype: {text[:80]!r}. Give a registered name ({', '.join(names())}), "
                   "a DARTS 'Genotype(normal=...)' or NB201 '|op~0|+...' string, a NAO arch "
                   "('nao:1 1 0 1 ...', 40 ints), or the path of a search's genotypes.jsonl.")


def from_log(path: str) -> str:
  """The genotype string of the last record of a search's ``genotypes.jsonl``."""
  with open(path) as f:
    lines = [line for line in f if line.strip()]
  if not lines:
    raise ValueError(f"{path} holds no genotype records.")
  try:
    return json.loads(lines[-1])["genotype"]
  except (json.JSONDecodeError, KeyError, TypeError) as e:
    raise ValueError(f"The last line of {path} is not a genotype record ({e}).") from None


def resolve(spec: str) -> tuple[str, Any]:
  """``(space, genotype)`` from a registry name, a genotype string, or a path (see module doc).

  A directory is taken as a search's workdir (its ``genotypes.jsonl``).
  """
  spec = spec.strip()
  if not spec:
    raise ValueError("No genotype given: set --config.genotype to a registered name "
                     f"({', '.join(names())}), a genotype string, or a genotypes.jsonl path.")
  if spec in REGISTRY:
    return REGISTRY[spec].space, REGISTRY[spec].genotype
  if os.path.isdir(spec):
    spec = os.path.join(spec, "genotypes.jsonl")
  if os.path.isfile(spec):
    if spec.endswith(".jsonl"):
      return parse(from_log(spec))
    with open(spec) as f:
      return parse(f.read())
  return parse(spec)
