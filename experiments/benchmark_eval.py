"""Times the from-scratch training step of a genotype's evaluation network (``jaxnas.evaluate``).

The program is ``evaluate.train_step`` exactly as ``python -m jaxnas.train
--config=configs/eval_cifar10.py`` compiles it (augmentation with cutout, drop-path, auxiliary head,
clipped SGD with momentum, donated state), fed synthetic uint8 batches of the config's image size;
the timing, FLOP and memory columns are those of ``experiments/benchmark.py`` (its
``compile_and_time``). The report adds the extrapolated cost of the whole protocol:
``s/step x ceil(train_images / batch) x epochs`` (CIFAR-10: 50,000 images, 600 epochs, batch 96,
i.e. 521 steps per epoch, 312,600 steps).

  .venv/bin/python experiments/benchmark_eval.py --genotype=DARTS_V2 --steps=3 --warmup=1
  .venv/bin/python experiments/benchmark_eval.py --genotype=DARTS_V2 --config_variant=smoke
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Any, Sequence

import jax
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import benchmark  # noqa: E402  (experiments/benchmark.py: timing, FLOPs, memory, machine info)
from configs import eval_cifar10  # noqa: E402
from jaxnas import backends  # noqa: E402
from jaxnas import evaluate  # noqa: E402
from jaxnas import genotypes as genotypes_lib  # noqa: E402
from jaxnas import reports  # noqa: E402
from jaxnas import sharding  # noqa: E402


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--genotype", default="DARTS_V2", help="a name of jaxnas.genotypes or a "
                      "genotype string")
  parser.add_argument("--config_variant", default="", help="configs/eval_cifar10.py variant, "
                      "e.g. 'smoke' (tiny network) or 'nb201'")
  parser.add_argument("--batch_size", type=int, default=0, help="0 = the config's (DARTS: 96)")
  parser.add_argument("--train_images", type=int, default=50_000,
                      help="training-set size of the extrapolation (CIFAR-10: 50,000)")
  parser.add_argument("--epochs", type=int, default=0, help="0 = the config's (DARTS: 600)")
  parser.add_argument("--steps", type=int, default=3, help="timed steps")
  parser.add_argument("--warmup", type=int, default=1, help="untimed steps after compilation")
  parser.add_argument("--matmul_peak", choices=("true", "false"), default="true")
  parser.add_argument("--cpu_devices", type=int, default=0,
                      help="config.backend.cpu_devices (0 = one XLA device per core, as the configs; "
                           "1 = one device, as the figures recorded before 2026-12-02 04:30 UTC)")
  parser.add_argument("--json", default="", help="write the report to this JSON file")
  args = parser.parse_args(argv)
  if args.steps < 1 or args.warmup < 0 or args.batch_size < 0 or args.epochs < 0:
    parser.error("--steps must be >= 1; --warmup, --batch_size, --epochs >= 0")
  args.num_seeds, args.compiler_options = 1, None  # what benchmark.compile_and_time reads
  return args


def make_config(args: argparse.Namespace):
  """The eval config with the benchmark's genotype, batch and synthetic data of CIFAR's shape."""
  config = eval_cifar10.get_config(args.config_variant or None)
  config.genotype = args.genotype
  config.batch_size = args.batch_size or config.batch_size
  config.epochs = args.epochs or config.epochs
  config.data.name = "synthetic"
  config.data.synthetic_num_train = 4 * config.batch_size
  config.data.synthetic_num_test = config.batch_size
  config.backend.cpu_devices = args.cpu_devices
  return config


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
  args = parse_args(argv)
  config = make_config(args)
  print(backends.configure_cpu_devices(config), flush=True)  # before JAX's backend starts
  args.batch_size = config.batch_size
  space, genotype = genotypes_lib.resolve(config.genotype)
  dataset, train, _ = evaluate.load_data(config)
  steps_per_epoch = math.ceil(args.train_images / config.batch_size)
  parallel = sharding.from_config(config)
  trainer, _, _, init_fn = evaluate.compiled_steps(config, space, genotype, dataset,
                                                   steps_per_epoch, parallel)
  # The loop's jitted step, with the batch as one argument (compile_and_time's ``f(state, batch)``).
  step = jax.jit(lambda state, batch: evaluate.train_step(state, *batch, trainer=trainer),
                 donate_argnums=0, out_shardings=parallel.replicated)
  start = time.perf_counter()
  state = init_fn(tuple(train.images.shape[1:]))
  jax.block_until_ready(state)
  setup_s = time.perf_counter() - start
  rng = np.random.default_rng(0)
  batches = []
  for _ in range(min(4, args.warmup + args.steps)):
    idx = rng.choice(len(train), config.batch_size, replace=False)
    batches.append(parallel.put_examples(train, idx))
  result = benchmark.compile_and_time("train_step", step, state, batches, args, donate=True)
  total_steps = steps_per_epoch * config.epochs
  result["protocol_steps"] = total_steps
  result["protocol_hours"] = result["median_step_s"] * total_steps / 3600
  report = {"machine": benchmark.machine_info(),
            "setup": {"genotype": str(genotype), "space": space,
                      "config_variant": args.config_variant,
                      "network": config.network.to_dict(), "batch_size": config.batch_size,
                      "image_shape": list(train.images.shape[1:]), "epochs": config.epochs,
                      "train_images": args.train_images, "steps_per_epoch": steps_per_epoch,
                      "drop_path_prob": config.drop_path_prob, "cutout": config.data.cutout,
                      "auxiliary_weight": config.auxiliary_weight,
                      "params": reports.num_params(state.weights),
                      "params_with_auxiliary": reports.num_params(state.weights,
                                                                  auxiliary=True),
                      "setup_s": setup_s, "timed_steps": args.steps, "warmup_steps": args.warmup,
                      "devices": parallel.size},
            "results": {"train_step": result}}
  benchmark.add_peak_fraction(report, args)
  if args.json:
    with open(args.json, "w") as f:
      json.dump(report, f, indent=2)
  benchmark.print_table(report)
  print(f"protocol: {total_steps:,} steps ({config.epochs} epochs x {steps_per_epoch}) x "
        f"{result['median_step_s']:.3f} s = {result['protocol_hours']:.1f} h on this machine")
  return report


if __name__ == "__main__":
  main()
