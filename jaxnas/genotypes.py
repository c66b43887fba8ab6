"""Published genotypes by name, with their provenance: train or compare them with
``--config.genotype=<name>``.

Every entry below was copied from a primary source (the authors' repository) and, where a
reference figure exists, checked by a test (``tests/test_evaluation.py``: DARTS V1/V2 parameter
counts at C=36, 20 cells equal the reference code's 3,169,414 / 3,349,342).

``resolve(spec)`` turns a config value into ``(space_name, genotype)``: a registry name, a genotype
string (DARTS ``Genotype(...)`` or an NB201 ``|op~0|+...`` string), or the path of a search's
``genotypes.jsonl`` (the genotype of its last line) or of a text file holding a genotype string.

Not in the registry, because no primary source could be verified (never reconstructed from
memory): the MiLeNAS paper cells (``chaoyanghe/MiLeNAS search_space/genotypes.py`` holds dozens of
run genotypes but does not say which one the paper reports), the GAEA PC-DARTS cell (not in
``liamcli/gaea_release``), the DARTS-PRIME cells (``k8lion/DARTS-PRIME src/genotypes.py`` names
none as the paper's), and NAONet-V2 (the NAO space does not exist in jaxnas yet).
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from jaxnas.spaces.darts import Genotype, parse_darts_genotype
from jaxnas.spaces.nb201 import NB201Genotype


@dataclasses.dataclass(frozen=True)
class Entry:
  """A registered genotype: its space, the genotype, and where it was published."""
  space: str
  genotype: Any
  source: str


def _darts(normal, reduce, concat=(2, 3, 4, 5)) -> Genotype:
  return Genotype(normal=list(normal), normal_concat=list(concat), reduce=list(reduce),
                  reduce_concat=list(concat))


_QUARK0 = ("quark0/darts cnn/genotypes.py; identical copies in chaoyanghe/MiLeNAS "
           "search_space/genotypes.py @41d75b3 and liamcli/gaea_release "
           "cnn/search_spaces/darts/genotypes.py @36d1299")
_PCDARTS = ("PC-DARTS (Xu et al., ICLR 2020), as copied into liamcli/gaea_release "
            "cnn/search_spaces/darts/genotypes.py @36d1299")
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
  """``(space, genotype)`` of a genotype string (DARTS ``Genotype(...)`` or NB201 ``|...|``)."""
  text = text.strip()
  if text.startswith("Genotype("):
    return "darts", parse_darts_genotype(text)
  if text.startswith("|"):
    return "nb201", NB201Genotype.from_string(text)
  raise ValueError(f"Not a genotype: {text[:80]!r}. Give a registered name ({', '.join(names())}), "
                   "a DARTS 'Genotype(normal=...)' or NB201 '|op~0|+...' string, or the path of "
                   "a search's genotypes.jsonl.")


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
