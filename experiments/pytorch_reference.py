"""Times the reference PyTorch DARTS code (quark0/darts `cnn/`) on this machine's CPU.

The baseline behind issue #10's throughput target and issue #4's second-order ratio, measured
here so that jaxnas and PyTorch can be compared on one machine in one half hour (shared CPUs vary
by 2x from hour to hour; `../shared/spec/performance.md`'s figures come from another machine).

Not part of the library and not a test: it needs PyTorch (`pip install torch==2.13.0`, the CPU
build on this project's machines) and a checkout of the reference code, which is not vendored:

    git clone https://github.com/quark0/darts /tmp/dartsref      # commit f276dd3
    python experiments/pytorch_reference.py --darts_repo=/tmp/dartsref --what=weights

The reference's modules are imported from a temporary copy of `cnn/` with two mechanical
patches, each asserted to apply: `.cuda()` calls removed, and the positional-`alpha` forms of
`add_`/`sub_`/`sub` (removed in PyTorch 2) rewritten with `alpha=`. Nothing else changes.

Programs (`--what`, one per process for an isolated peak RSS):
  forward      training-mode forward + loss, no gradient;
  weights      zero_grad, loss, backward, clip_grad_norm_(5), SGD step (lr 0.025, momentum 0.9,
               weight decay 3e-4): `train_search.py`'s weight step;
  arch_first   `Architect.step(..., unrolled=False)` (Adam 3e-4, betas (0.5, 0.999), wd 1e-3);
  arch_second  `Architect.step(..., unrolled=True)`: the virtual step with momentum and weight
               decay, then the central finite difference of the mixed term.
The α programs run one weight step first, so the virtual step sees momentum buffers (as in a
search). Every program runs `--steps` steps; the first is a warm-up and the median of the rest
is reported with the process's peak RSS (`ru_maxrss`, whole process).
"""

import argparse
import json
import os
import pathlib
import resource
import shutil
import statistics
import sys
import tempfile
import time

PATCHES = {
  "architect.py": [
    ("theta.sub(eta, moment+dtheta)", "theta.sub(moment+dtheta, alpha=eta)"),
    ("g.data.sub_(eta, ig.data)", "g.data.sub_(ig.data, alpha=eta)"),
    ("p.data.add_(R, v)", "p.data.add_(v, alpha=R)"),
    ("p.data.sub_(2*R, v)", "p.data.sub_(v, alpha=2*R)"),
    ("model_new.cuda()", "model_new"),
  ],
  "model_search.py": [
    (").cuda()", ")"),  # Network(...).cuda() and both alphas' .cuda()
  ],
}
MODULES = ("architect.py", "model_search.py", "operations.py", "genotypes.py", "utils.py")


def patched_reference(darts_repo, into):
  """Copies the reference's `cnn/` modules into `into`, patched for PyTorch 2 on the CPU."""
  source = pathlib.Path(darts_repo) / "cnn"
  if not (source / "model_search.py").is_file():
    raise SystemExit(
      f"{source / 'model_search.py'} not found: --darts_repo must be a checkout of "
      "https://github.com/quark0/darts (git clone https://github.com/quark0/darts DIR)"
    )
  for name in MODULES:
    text = (source / name).read_text()
    for old, new in PATCHES.get(name, ()):
      if old not in text:
        raise SystemExit(
          f"{source / name}: expected {old!r}; this script was written against "
          "quark0/darts@f276dd3 (git -C DIR checkout f276dd3)"
        )
      text = text.replace(old, new)
    (pathlib.Path(into) / name).write_text(text)


def parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--darts_repo", required=True, help="checkout of quark0/darts")
  parser.add_argument(
    "--what", required=True, choices=("forward", "weights", "arch_first", "arch_second")
  )
  parser.add_argument("--channels", type=int, default=16)
  parser.add_argument("--layers", type=int, default=8)
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--steps", type=int, default=5, help="timed steps; the first is a warm-up")
  parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
  parser.add_argument(
    "--channels_last", action="store_true", help="model and inputs in channels_last format"
  )
  parser.add_argument("--json", default=None, help="also write the result here")
  args = parser.parse_args(argv)
  if args.steps < 2:
    parser.error("--steps must be at least 2 (the first step is a warm-up)")
  return args


def main(argv=None):
  args = parse_args(argv)
  import torch  # pylint: disable=import-outside-toplevel

  torch.set_num_threads(args.threads)
  torch.manual_seed(0)
  workdir = tempfile.mkdtemp(prefix="dartsref_")
  try:
    patched_reference(args.darts_repo, workdir)
    sys.path.insert(0, workdir)
    import architect  # pylint: disable=import-outside-toplevel,import-error
    import model_search  # pylint: disable=import-outside-toplevel,import-error
  finally:
    shutil.rmtree(workdir, ignore_errors=True)

  criterion = torch.nn.CrossEntropyLoss()
  model = model_search.Network(args.channels, 10, args.layers, criterion)
  memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
  model = model.to(memory_format=memory_format)
  optimizer = torch.optim.SGD(model.parameters(), 0.025, momentum=0.9, weight_decay=3e-4)
  arch_args = argparse.Namespace(
    momentum=0.9, weight_decay=3e-4, arch_learning_rate=3e-4, arch_weight_decay=1e-3
  )
  searcher = architect.Architect(model, arch_args)

  def batch():
    images = torch.randn(args.batch_size, 3, 32, 32).to(memory_format=memory_format)
    return images, torch.randint(0, 10, (args.batch_size,))

  def weight_step():
    images, labels = batch()
    optimizer.zero_grad()
    loss = model._loss(images, labels)  # pylint: disable=protected-access
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
    optimizer.step()

  def forward():
    images, labels = batch()
    with torch.no_grad():
      model._loss(images, labels)  # pylint: disable=protected-access

  def arch_step(unrolled):
    (train_x, train_y), (val_x, val_y) = batch(), batch()
    searcher.step(train_x, train_y, val_x, val_y, 0.025, optimizer, unrolled=unrolled)

  programs = {
    "forward": forward,
    "weights": weight_step,
    "arch_first": lambda: arch_step(False),
    "arch_second": lambda: arch_step(True),
  }
  if args.what.startswith("arch"):
    weight_step()
  times = []
  for step in range(args.steps):
    start = time.perf_counter()
    programs[args.what]()
    times.append(time.perf_counter() - start)
    print(f"{args.what}: step {step + 1}/{args.steps} {times[-1]:.3f} s", flush=True)
  median = statistics.median(times[1:])
  result = {
    "what": args.what,
    "channels_last": args.channels_last,
    "median_s": round(median, 3),
    "images_per_s": round(args.batch_size / median, 2),
    "step_s": [round(t, 3) for t in times],
    "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    "torch": torch.__version__,
    "threads": args.threads,
    "params": sum(p.numel() for p in model.parameters()),
    "load_avg": os.getloadavg(),
    "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
  }
  print(json.dumps(result))
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
  main()
