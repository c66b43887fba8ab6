"""Times the reference PyTorch DARTS code (quark0/darts `cnn/`, AutoDL TinyNetworkDarts), CPU/GPU.

The baseline behind issue #10's throughput target and issue #4's second-order ratio, measured
here so that jaxnas and PyTorch can be compared on one machine in one half hour (shared CPUs vary
by 2x from hour to hour; `../shared/spec/performance.md`'s figures come from another machine).

Not part of the library and not a test: it needs PyTorch (`pip install torch==2.13.0`, the CPU
build on this project's machines) and a checkout of the reference code, which is not vendored:

    git clone https://github.com/quark0/darts /tmp/dartsref      # commit f276dd3
    python experiments/pytorch_reference.py --darts_repo=/tmp/dartsref --what=weights
    git clone https://github.com/D-X-Y/AutoDL-Projects /tmp/autodl  # commit f46486e
    python experiments/pytorch_reference.py --space=nb201 --autodl_repo=/tmp/autodl \
        --what=weights,arch_first,arch_second --device=cuda --steps=11

(`experiments/gpu/` runs both on a GPU from the ignored folder `.ref/`; its README section says
how to fill it.)

The reference's modules are imported from a temporary copy of `cnn/` with two mechanical
patches, each asserted to apply: `.cuda()` calls removed, and the positional-`alpha` forms of
`add_`/`sub_`/`sub` (removed in PyTorch 2) rewritten with `alpha=`. Nothing else changes.
`--device=cuda` runs them on the GPU with `torch.set_default_device` (every tensor and module the
reference creates lands there, so the removed `.cuda()` calls are not needed), each step
synchronised (`torch.cuda.synchronize`) before its time is taken, and reports the GPU's peak
allocated memory (`torch.cuda.max_memory_allocated`, reset before each program).

`--space=nb201` times AutoDL's NAS-Bench-201 DARTS supernet instead (`TinyNetworkDarts`, the code
GAEA searched NB201 with; C=16, N=5 by default), from a checkout of
https://github.com/D-X-Y/AutoDL-Projects (commit f46486e) given as `--autodl_repo`: its
`xautodl/models/{cell_operations,cell_searchs/{search_cells,search_model_darts,genotypes}}.py`
are copied into a temporary package unchanged, and the second-order alpha step is
`backward_step_unrolled` (with `_concat`, `_hessian_vector_product`) taken from
`exps/NAS-Bench-201-algos/DARTS-V2.py` (the functions alone, not the script's imports), with the
same positional-`alpha` patches (`AUTODL_PATCHES`). Optimizers as AutoDL's DARTS config: SGD
(lr 0.025, momentum 0.9, weight decay 5e-4, Nesterov), clip 5, Adam 3e-4 (0.5, 0.999), wd 1e-3.
Several programs can run in one process (`--what=weights,arch_first`); `--json` then gets a list.

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

# AutoDL-Projects (NB201's TinyNetworkDarts): the model files, copied as they are, and the second-
# order step's functions of DARTS-V2.py with the PyTorch 2 forms of add_/sub_/sub.
AUTODL_MODULES = ("xautodl/models/cell_operations.py",
                  "xautodl/models/cell_searchs/search_cells.py",
                  "xautodl/models/cell_searchs/search_model_darts.py",
                  "xautodl/models/cell_searchs/genotypes.py")
AUTODL_SECOND_ORDER = "exps/NAS-Bench-201-algos/DARTS-V2.py"
AUTODL_FUNCTIONS = ("_concat", "_hessian_vector_product", "backward_step_unrolled")
AUTODL_PATCHES = [
  ("p.data.add_(R, v)", "p.data.add_(v, alpha=R)"),
  ("p.data.sub_(2 * R, v)", "p.data.sub_(v, alpha=2 * R)"),
  ("theta.sub(LR, moment + dtheta)", "theta.sub(moment + dtheta, alpha=LR)"),
  ("dalpha.data.sub_(LR, implicit_grads.data)", "dalpha.data.sub_(implicit_grads.data, alpha=LR)"),
]
NB201_OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
PROGRAMS = ("forward", "weights", "arch_first", "arch_second")


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


def patched_autodl(autodl_repo, into):
  """Copies AutoDL's NB201 search-model files into the package ``into/xautodl`` (empty
  ``__init__``s, so nothing else of AutoDL is imported) and returns the source of DARTS-V2.py's
  second-order functions (``AUTODL_FUNCTIONS``), patched for PyTorch 2."""
  import ast  # pylint: disable=import-outside-toplevel
  root = pathlib.Path(autodl_repo)
  how = ("--autodl_repo must be a checkout of https://github.com/D-X-Y/AutoDL-Projects "
         "(git clone https://github.com/D-X-Y/AutoDL-Projects DIR; git -C DIR checkout f46486e)")
  for name in (*AUTODL_MODULES, AUTODL_SECOND_ORDER):
    if not (root / name).is_file():
      raise SystemExit(f"{root / name} not found: {how}")
  for name in AUTODL_MODULES:
    target = pathlib.Path(into) / name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text((root / name).read_text())
  for package in ("xautodl", "xautodl/models", "xautodl/models/cell_searchs"):
    (pathlib.Path(into) / package / "__init__.py").write_text("")
  text = (root / AUTODL_SECOND_ORDER).read_text()
  for old, new in AUTODL_PATCHES:
    if old not in text:
      raise SystemExit(f"{root / AUTODL_SECOND_ORDER}: expected {old!r}; this script was written "
                       "against D-X-Y/AutoDL-Projects@f46486e (git -C DIR checkout f46486e)")
    text = text.replace(old, new)
  functions = {node.name: ast.get_source_segment(text, node) for node in ast.parse(text).body
               if isinstance(node, ast.FunctionDef)}
  missing = [name for name in AUTODL_FUNCTIONS if name not in functions]
  if missing:
    raise SystemExit(f"{root / AUTODL_SECOND_ORDER}: no function {missing}; {how}")
  return "\n\n".join(functions[name] for name in AUTODL_FUNCTIONS) + "\n"


def parse_args(argv):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--darts_repo", default=None,
                      help="checkout of quark0/darts (--space=darts)")
  parser.add_argument("--autodl_repo", default=None,
                      help="checkout of D-X-Y/AutoDL-Projects (--space=nb201)")
  parser.add_argument("--space", choices=("darts", "nb201"), default="darts")
  parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:1, ...")
  parser.add_argument("--what", required=True,
                      help=f"one or more (comma-separated) of {', '.join(PROGRAMS)}")
  parser.add_argument("--channels", type=int, default=16)
  parser.add_argument("--layers", type=int, default=8, help="DARTS: cells")
  parser.add_argument("--cells_per_stage", type=int, default=5, help="NB201: cells per stage N")
  parser.add_argument("--image_size", type=int, default=32)
  parser.add_argument("--batch_size", type=int, default=64)
  parser.add_argument("--steps", type=int, default=5, help="timed steps; the first is a warm-up")
  parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
  parser.add_argument(
    "--channels_last", action="store_true", help="model and inputs in channels_last format"
  )
  parser.add_argument("--cudnn_benchmark", choices=("true", "false"), default="true",
                      help="torch.backends.cudnn.benchmark (quark0's train_search.py: true)")
  parser.add_argument("--json", default=None, help="also write the result here")
  args = parser.parse_args(argv)
  if args.steps < 2:
    parser.error("--steps must be at least 2 (the first step is a warm-up)")
  args.what = [w.strip() for w in args.what.split(",") if w.strip()]
  if not args.what or set(args.what) - set(PROGRAMS):
    parser.error(f"--what: choose from {', '.join(PROGRAMS)}")
  repo = args.darts_repo if args.space == "darts" else args.autodl_repo
  if not repo:
    flag = "--darts_repo" if args.space == "darts" else "--autodl_repo"
    parser.error(f"--space={args.space} needs {flag}")
  return args


def _wrapper(torch):
  """What AutoDL's second-order step expects of its network: ``network.module`` is the model
  (AutoDL wraps it in ``torch.nn.DataParallel``; one device here, so a plain wrapper)."""
  class Wrapper(torch.nn.Module):
    def __init__(self, module):
      super().__init__()
      self.module = module

    def forward(self, inputs):  # pylint: disable=arguments-differ
      return self.module(inputs)
  return Wrapper


def darts_programs(args, workdir, torch, batch):
  """quark0/darts' search Network and its weight / alpha steps (``train_search.py``)."""
  patched_reference(args.darts_repo, workdir)
  sys.path.insert(0, workdir)
  import architect  # pylint: disable=import-outside-toplevel,import-error
  import model_search  # pylint: disable=import-outside-toplevel,import-error

  criterion = torch.nn.CrossEntropyLoss()
  model = model_search.Network(args.channels, 10, args.layers, criterion)
  memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
  model = model.to(memory_format=memory_format)
  optimizer = torch.optim.SGD(model.parameters(), 0.025, momentum=0.9, weight_decay=3e-4)
  arch_args = argparse.Namespace(
    momentum=0.9, weight_decay=3e-4, arch_learning_rate=3e-4, arch_weight_decay=1e-3
  )
  searcher = architect.Architect(model, arch_args)

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
  return model, programs


def nb201_programs(args, workdir, torch, batch):
  """AutoDL's TinyNetworkDarts and its weight / alpha steps (NAS-Bench-201 DARTS-V1 / V2)."""
  import copy  # pylint: disable=import-outside-toplevel
  import numpy  # pylint: disable=import-outside-toplevel
  source = patched_autodl(args.autodl_repo, workdir)
  sys.path.insert(0, workdir)
  # pylint: disable-next=import-outside-toplevel,import-error
  from xautodl.models.cell_searchs import search_model_darts
  namespace = {"torch": torch, "np": numpy, "deepcopy": copy.deepcopy}
  exec(compile(source, AUTODL_SECOND_ORDER, "exec"), namespace)  # pylint: disable=exec-used

  model = search_model_darts.TinyNetworkDarts(args.channels, args.cells_per_stage, 4, 10,
                                              NB201_OPS, False, True)
  network = _wrapper(torch)(model)
  criterion = torch.nn.CrossEntropyLoss()
  w_optimizer = torch.optim.SGD(model.get_weights(), 0.025, momentum=0.9, weight_decay=5e-4,
                                nesterov=True)
  a_optimizer = torch.optim.Adam(model.get_alphas(), lr=3e-4, betas=(0.5, 0.999),
                                 weight_decay=1e-3)

  def weight_step():
    images, labels = batch()
    w_optimizer.zero_grad()
    _, logits = network(images)
    criterion(logits, labels).backward()
    torch.nn.utils.clip_grad_norm_(network.parameters(), 5)
    w_optimizer.step()

  def forward():
    images, labels = batch()
    with torch.no_grad():
      criterion(network(images)[1], labels)

  def arch_first():
    images, labels = batch()
    a_optimizer.zero_grad()
    _, logits = network(images)
    criterion(logits, labels).backward()
    a_optimizer.step()

  def arch_second():
    (train_x, train_y), (val_x, val_y) = batch(), batch()
    a_optimizer.zero_grad()
    namespace["backward_step_unrolled"](network, criterion, train_x, train_y, w_optimizer,
                                        val_x, val_y)
    a_optimizer.step()

  programs = {"forward": forward, "weights": weight_step, "arch_first": arch_first,
              "arch_second": arch_second}
  return model, programs


def main(argv=None):
  """Times the programs of ``argv``; returns the result (a list when several programs ran)."""
  args = parse_args(argv)
  import torch  # pylint: disable=import-outside-toplevel

  torch.set_num_threads(args.threads)
  torch.manual_seed(0)
  device = torch.device(args.device)
  cuda = device.type == "cuda"
  if cuda:
    if not torch.cuda.is_available():
      raise SystemExit(f"--device={args.device}: torch {torch.__version__} sees no CUDA device")
    torch.set_default_device(device)  # the reference's tensors and modules are created there
  torch.backends.cudnn.benchmark = args.cudnn_benchmark == "true"
  memory_format = torch.channels_last if args.channels_last else torch.contiguous_format

  def batch():
    images = torch.randn(args.batch_size, 3, args.image_size, args.image_size)
    return images.to(memory_format=memory_format), torch.randint(0, 10, (args.batch_size,))

  def sync():
    if cuda:
      torch.cuda.synchronize(device)

  workdir = tempfile.mkdtemp(prefix="dartsref_")
  try:
    build = darts_programs if args.space == "darts" else nb201_programs
    model, programs = build(args, workdir, torch, batch)
  finally:
    shutil.rmtree(workdir, ignore_errors=True)
  if args.space == "nb201":
    model = model.to(memory_format=memory_format)

  results = []
  warmed = False
  for what in args.what:
    if what.startswith("arch") and not warmed:
      programs["weights"]()  # momentum buffers for the virtual step, as in a search
      warmed = True
    if cuda:
      sync()
      torch.cuda.reset_peak_memory_stats(device)
    times = []
    for step in range(args.steps):
      sync()
      start = time.perf_counter()
      programs[what]()
      sync()
      times.append(time.perf_counter() - start)
      print(f"{args.space} {what}: step {step + 1}/{args.steps} {times[-1]:.4f} s", flush=True)
    median = statistics.median(times[1:])
    result = {
      "space": args.space,
      "what": what,
      "device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if cuda else ""),
      "channels_last": args.channels_last,
      "cudnn_benchmark": torch.backends.cudnn.benchmark,
      "median_s": median,
      "images_per_s": round(args.batch_size / median, 2),
      "step_s": [round(t, 5) for t in times],
      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
      "torch": torch.__version__,
      "threads": args.threads,
      "batch_size": args.batch_size,
      "params": sum(p.numel() for p in model.parameters()),
      "load_avg": os.getloadavg(),
      "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    if cuda:
      result["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
      result["cudnn_allow_tf32"] = torch.backends.cudnn.allow_tf32
      result["matmul_allow_tf32"] = torch.backends.cuda.matmul.allow_tf32
    print(json.dumps(result), flush=True)
    results.append(result)
  out = results[0] if len(results) == 1 else results
  if args.json:
    pathlib.Path(args.json).write_text(json.dumps(out, indent=1))
  return out


if __name__ == "__main__":
  main()
