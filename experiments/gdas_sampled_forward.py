"""Seconds per GDAS gradient step (weights and alpha) on the NB201 supernet: the sampled-op edge
(``space.sampled_forward``, ``ops.SampledMixedOp``: only the sampled op runs) against the all-ops
MixedOp fed the same straight-through sample.

  python experiments/gdas_sampled_forward.py --channels 8 --cells 2 --batch 32

Both compute the same forward value; the gradients differ as documented in ``SampledMixedOp``.
The numbers depend on the platform and on ``unroll`` (rolled loops here, as on CPU by default).
"""
import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from jaxnas import parametrize  # noqa: E402
from jaxnas import spaces  # noqa: E402


def seconds_per_step(sampled: bool, channels: int, cells: int, batch: int, repeats: int,
                     unroll: bool) -> float:
  space = spaces.get("nb201")
  x = jax.random.normal(jax.random.key(0), (batch, 32, 32, 3))
  labels = jnp.arange(batch) % 10
  alpha = 1e-3 * jax.random.normal(jax.random.key(1), (6, len(space.ops)))
  net = space.supernet(channels=channels, cells_per_stage=cells, unroll=unroll, sampled=sampled)
  variables = net.init(jax.random.key(2), x, {"cell": jax.nn.softmax(alpha)}, train=True)

  def loss(params, a, key):
    h = parametrize.gumbel_hard(jax.nn.log_softmax(a), key, 5.0)
    logits, _ = net.apply({"params": params, "batch_stats": variables["batch_stats"]}, x,
                          {"cell": h}, train=True, mutable=["batch_stats"])
    return jnp.mean(-jax.nn.log_softmax(logits)[jnp.arange(batch), labels])

  grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
  jax.block_until_ready(grad(variables["params"], alpha, jax.random.key(3)))
  start = time.perf_counter()
  for i in range(repeats):
    jax.block_until_ready(grad(variables["params"], alpha, jax.random.key(10 + i)))
  return (time.perf_counter() - start) / repeats


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--channels", type=int, default=8)
  parser.add_argument("--cells", type=int, default=2)
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--repeats", type=int, default=10)
  parser.add_argument("--unroll", action="store_true")
  args = parser.parse_args()
  print(f"device: {jax.devices()[0].device_kind}; C={args.channels} N={args.cells} "
        f"batch={args.batch} unroll={args.unroll}")
  for sampled in (False, True):
    s = seconds_per_step(sampled, args.channels, args.cells, args.batch, args.repeats,
                         args.unroll)
    print(f"{'sampled-op edge' if sampled else 'all-ops edge   '}: {s:.4f} s/step", flush=True)


if __name__ == "__main__":
  main()
