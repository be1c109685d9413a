"""Default hyper-parameters; the files in configs/ start from these and override.

Values follow docs/design.md sections 2-6 (reference architecture, Adam 3e-4, 96x96 patches,
batch 8). Noise levels are on the 0-255 scale.
"""
import ml_collections


def stage1() -> ml_collections.ConfigDict:
  """Stage 1: D-BSN + CNN_est trained by the constrained likelihood on noisy images."""
  c = ml_collections.ConfigDict()
  c.stage = "stage1"
  c.seed = 0
  c.channels = 1
  # D-BSN's train-step computation: "bfloat16" (parameters and Adam stay fp32) or
  # "float32". Evaluation and inference always run in fp32 (dbsn_jax.train.precision).
  c.compute_dtype = "float32"

  c.model = ml_collections.ConfigDict()
  c.model.features = 96
  c.model.branches = ((3, 2), (5, 3))  # (masked kernel, dilation) per branch.
  c.model.blocks = (8, 8)              # MDC modules per branch.
  c.model.mdc_style = "paper"          # or "reference" (one 5x5 dilated conv).
  c.model.sigma_form = "diag"          # Sigma_mu: "diag" or "full" (color).
  c.model.sigma_features = 0           # 0: 16 gray, 32 color.
  c.model.out_init_scale = 0.01        # Output layers start small: one run from scratch.
  c.model.remat = False                # Recompute MDC modules in the backward pass (memory).

  c.noise_model = ml_collections.ConfigDict()
  c.noise_model.mode = "awgn"          # "awgn", "hetero" or "multivariate".
  c.noise_model.features = 16
  c.noise_model.hidden_layers = 3
  c.noise_model.per_image = False      # One CNN_est per noisy training image (paper).
  c.noise_model.input = "mu"           # "mu" (reference) or "y" (paper text).

  # The Bayes step only (training is unchanged): the Sigma_n it uses ("learned": CNN_est;
  # "estimated": the classical estimate of each image, for white noise without
  # down-sampling; "fitted": CNN_est's, re-levelled together with Sigma_mu's scale by
  # the likelihood of each image's residual, dbsn_jax.predict.fitted_noise), and whether
  # Sigma_mu is rescaled per image to fit the residual (predict.calibrated_prior).
  c.bayes = ml_collections.ConfigDict()
  c.bayes.noise_level = "learned"
  c.bayes.calibrate_prior = False

  # Synthetic noise added to the training images ("none": they are already noisy).
  c.noise = ml_collections.ConfigDict()
  c.noise.kind = "awgn"
  c.noise.sigma = 25.0
  c.noise.sigma_range = (5.0, 50.0)
  c.noise.alpha = 40.0
  c.noise.delta = 10.0
  c.noise.hetero_form = "paper"        # or "reference": var = alpha^2 x^2 + delta^2.
  c.noise.mg_scale = 75.0
  c.noise.pg_lambda = 30.0

  c.data = ml_collections.ConfigDict()
  c.data.train = "shared:Train400"     # See dbsn_jax.data.sources for spec strings.
  c.data.train_start = 0
  c.data.train_stop = 0                # 0: to the end.
  c.data.patch_size = 96
  c.data.batch_size = 8                # Per device: global batch = 8 x jax.device_count().
  c.data.augment = True
  c.data.num_threads = 2

  # Real camera photos (docs/design.md section 8): pixel-shuffle down-sampling, Bayer
  # groups, guided filter.
  c.realworld = ml_collections.ConfigDict()
  c.realworld.downsample = 1           # Factor f; 4 for demosaicked photos (1: off).
  c.realworld.bayer_groups = False     # One CNN_est per Bayer phase of the sub-images.
  c.realworld.guided_filter = False    # Smooth the reassembled Bayes estimate.
  c.realworld.gf_radius = 1
  c.realworld.gf_eps = 0.01

  c.eval = ml_collections.ConfigDict()
  c.eval.source = "shared:BSD68"
  c.eval.start = 0
  c.eval.stop = 8                      # 0: all images.
  c.eval.crop = 0                      # Centre crop side (0: full images).
  c.eval.seed = 1234                   # Noise seeded per image: every run sees the same.
  c.eval.every_steps = 1000

  c.loss = ml_collections.ConfigDict()
  # Eq. 8 ("constrained") until switch_fraction of the steps, then the plain NLL
  # ("gaussian") plus final_constrained_weight x Eq. 8: the reference's pre-train and
  # fine-tune in one run. Either loss alone mis-learns the noise level, and the plain NLL
  # alone after Eq. 8 drifts below it (dbsn_jax.train.stage1.loss_fn; measured in
  # docs/noise_level.md).
  c.loss.kind = "constrained_then_gaussian"
  c.loss.switch_fraction = 0.5
  c.loss.final_constrained_weight = 0.03
  c.loss.l2_warmup_steps = 0           # Train mu by L2 first, inside the same run.
  c.loss.eps = 1e-6

  c.optim = ml_collections.ConfigDict()
  c.optim.lr = 3e-4
  c.optim.b1 = 0.9
  c.optim.b2 = 0.999
  c.optim.schedule = "step"             # Or 'cosine': lr to 0 by num_steps.
  c.optim.milestones = (1 / 6, 2 / 6, 3 / 6)  # Fractions of num_steps: lr x decay.
  c.optim.decay = 0.1
  c.optim.warmup = 0.0                 # Linear lr warm-up over this fraction of num_steps.
  c.optim.clip_norm = 0.0              # > 0: clip gradients to this global norm before Adam.

  c.train = ml_collections.ConfigDict()
  c.train.num_steps = 180_000          # 180 epochs x 6,000 batches of 8 (paper).
  c.train.log_every = 100
  c.train.checkpoint_every = 2000
  c.train.keep_checkpoints = 3
  c.train.max_nonfinite = 20           # Stop after this many consecutive skipped steps.
  # Patches per device in each forward/backward pass; the step sums the passes'
  # gradients (the same update as one pass, to float rounding). 0: the whole batch.
  # On CPU, 1 keeps each pass's activations in cache (tools/benchmark.py: 1.9-2.3x plain
  # at the reference size, 1.1-1.5x at 48 features); accelerators want 0.
  c.train.microbatch = 0
  return c


def stage2() -> ml_collections.ConfigDict:
  """Stage 2: distil stage 1 into an ordinary denoiser (docs/design.md section 7, paper Eq. 4)."""
  c = ml_collections.ConfigDict()
  c.stage = "stage2"
  c.seed = 0
  c.channels = 1
  c.compute_dtype = "float32"          # The denoiser's train step; as in stage 1.
  c.stage1_workdir = ""                # Where stage 1 saved its checkpoints.

  c.denoiser = ml_collections.ConfigDict()
  c.denoiser.arch = "mwcnn"            # or "dncnn".
  c.denoiser.widths = (160, 256, 256)  # MWCNN width per wavelet level.
  c.denoiser.convs = 3                 # MWCNN extra 3x3 convs per level and side.
  c.denoiser.activation = "relu"       # MWCNN's: "relu" (the paper's) or "leaky_relu".
  c.denoiser.features = 64             # DnCNN width.
  c.denoiser.depth = 17                # DnCNN layers.
  # Tell the network the noise level (FFDNet's noise-level map): the std of each synthetic
  # patch's noise in training, the classical estimate on the image at test time. For noise
  # of one white level per image (a blind range of AWGN levels); docs/evaluation.md.
  c.denoiser.level_input = False

  c.data = ml_collections.ConfigDict()
  c.data.clean = "shared:Train400"     # Clean images, disjoint from stage 1's noisy set.
  c.data.clean_start = 200
  c.data.clean_stop = 0
  # Leave out clean images that contain a noisy training image as a crop, or are one:
  # the two sets must show different scenes (data/overlap.py).
  c.data.drop_overlap = True
  # The real noisy images are stage 1's training images (and its noise, if synthetic).
  c.data.patch_size = 160
  c.data.batch_size = 32               # Per device, each with the real_fraction split.
  c.data.real_fraction = 1 / 8         # Share of each batch from the real noisy set.
  c.data.target_margin = 16            # Context of real patches (real_targets="fresh").
  c.data.augment = True
  c.data.num_threads = 2

  c.distill = ml_collections.ConfigDict()
  c.distill.lam = 0.1                  # Weight of the real-noisy pairs (Eq. 4).
  c.distill.scale_range = (0.9, 1.1)   # s ~ U(a, b) scales the synthesised noise.
  # Where the network works when stage 1 down-sampled (realworld.downsample f > 1):
  # 'full': on whole photos; 'subimages': on their f^2 pixel-shuffled sub-images, whose
  # noise is the white per-group noise stage 1 learned, then reassembled (and guided-
  # filtered as stage 1 is), so its training input matches its test input.
  c.distill.domain = "full"
  # 'pixels': Eq. 4 over all pixels of the batch (the real pairs weigh lam per pixel);
  # 'means': lam * mean(real pairs' loss) + mean(synthetic loss), as the reference does.
  c.distill.weighting = "pixels"
  # Synthetic noise: 'fixed' pairs each real image with one noise draw and its stage-1
  # target, made once, as a user's noisy set is fixed (no teacher in the train step:
  # docs/evaluation.md); 'fresh' draws new noise and runs the teacher every step.
  # Real noise is always fixed.
  c.distill.real_targets = "fixed"
  # Where the synthetic pairs' noise level comes from, for CNN_est modes averaged over
  # the image (awgn, multivariate): 'own_image' draws a training image and uses the
  # covariance its noise model has on that image, as stage 1 learned it; 'fitted' the
  # level stage 1's 'fitted' Bayes step found in it (bayes.noise_level); 'estimated'
  # the white-noise covariance a classical PCA estimate finds in that noisy image
  # (noise_estimate.py); 'estimated_pooled' one level for all, the median of those
  # estimates over the set (for a set that shares one noise level); 'patch' runs CNN_est
  # on the clean patch, whose content then moves the level (a per-image model has only
  # ever seen its own image). Per-pixel modes (hetero*) always use the patch.
  c.distill.noise_levels = "own_image"

  c.eval = ml_collections.ConfigDict()  # The images and noise come from stage 1's eval.
  c.eval.every_steps = 1000

  c.optim = ml_collections.ConfigDict()
  c.optim.lr = 1e-4
  c.optim.b1 = 0.9
  c.optim.b2 = 0.999
  c.optim.schedule = "step"            # Or 'cosine': lr to 0 by num_steps.
  c.optim.milestones = (0.5, 0.75)
  c.optim.decay = 0.1
  # Linear lr warm-up over this fraction of num_steps (0: off). At full lr from step 0,
  # Adam's first steps can leave MWCNN's coarse ReLU layers half dead for good
  # (tools/dead_units.py; docs/evaluation.md, "Dead ReLUs"); set where measured to pay.
  c.optim.warmup = 0.0
  c.optim.ema_decay = 0.0              # > 0: evaluate and export an EMA of the weights.
  # > 0: clip gradients to this global norm before Adam (the console's "grad norm" is
  # the norm before clipping).
  c.optim.clip_norm = 0.0

  c.train = ml_collections.ConfigDict()
  c.train.num_steps = 100_000
  c.train.log_every = 100
  c.train.checkpoint_every = 2000
  c.train.keep_checkpoints = 3
  c.train.max_nonfinite = 20
  return c


def workflow(s1: ml_collections.ConfigDict = None,
             s2: ml_collections.ConfigDict = None) -> ml_collections.ConfigDict:
  """A whole run: `stage1` and `stage2` configs with matching channels and seed."""
  c = ml_collections.ConfigDict()
  c.stage1 = s1 if s1 is not None else stage1()
  c.stage2 = s2 if s2 is not None else stage2()
  c.stage2.channels = c.stage1.channels
  return c


def paper(channels: int, noise_kind: str, noise_model: str, **noise) -> ml_collections.ConfigDict:
  """A paper-scale pipeline (docs/design.md sections 6-7) on the shared training/test sets.

  Gray: noisy Train400[:200], clean Train400[200:], test BSD68. Color: noisy
  CBSD432[:216], clean CBSD432[216:], test CBSD68. (The paper's stage 1 used ImageNet
  validation images; any folder or prepared TFDS set can replace these.)
  """
  s1, s2 = stage1(), stage2()
  s1.channels = channels
  gray = channels == 1
  s1.data.train = "shared:Train400" if gray else "shared:CBSD432"
  s1.data.train_start, s1.data.train_stop = 0, (200 if gray else 216)
  s1.eval.source = "shared:BSD68" if gray else "shared:CBSD68"
  s1.eval.stop = 0
  s1.noise.kind = noise_kind
  for k, v in noise.items():
    s1.noise[k] = v
  s1.noise_model.mode = noise_model
  if noise_model == "multivariate":
    s1.model.sigma_form = "full"
  if noise_model == "awgn":
    # White noise: the Bayes step takes each image's classical noise estimate and fits
    # Sigma_mu's scale to its residual; measured in docs/noise_level.md.
    s1.bayes.noise_level, s1.bayes.calibrate_prior = "estimated", True
  s1.eval.every_steps = 6000
  # Accelerator runs: bf16 convolutions, fp32 parameters, optimizer state and losses.
  s1.compute_dtype = s2.compute_dtype = "bfloat16"
  s2.data.clean = s1.data.train
  s2.data.clean_start, s2.data.clean_stop = s1.data.train_stop, 0
  s2.eval.every_steps = 10_000
  return workflow(s1, s2)


def real_photos(noisy: str, eval_clean: str = "", eval_noisy: str = "",
                clean: str = "shared:CBSD432") -> ml_collections.ConfigDict:
  """A paper-scale pipeline for real sRGB photos (docs/design.md section 8, paper 3.4).

  Stage 1 learns from the noisy photos themselves (no synthetic noise) on 4x4
  pixel-shuffled sub-images, one channel-correlated CNN_est per photo and Bayer
  group, then guided-filters the reassembled Bayes estimate; stage 2 distils into
  MWCNN with the clean photos `clean`, on the sub-images too. With
  `eval_clean` / `eval_noisy` (pairs, same file names) both stages are scored.
  """
  s1, s2 = stage1(), stage2()
  s1.channels = 3
  s1.data.train = noisy
  s1.noise.kind = "none"
  s1.noise_model.mode = "multivariate"
  s1.noise_model.per_image = True
  s1.model.sigma_form = "full"
  s1.realworld.downsample = 4
  s1.realworld.bayer_groups = True
  s1.realworld.guided_filter = True
  # The Bayes step re-levels CNN_est's noise (affine in intensity) and Sigma_mu's scale by
  # each photo's residual likelihood: CNN_est's level carries mu's error on textured
  # photos (measured on CC15 and camera-simulated Kodak24: docs/noise_level.md).
  s1.bayes.noise_level = "fitted"
  s1.data.patch_size = 64                # Sub-image patches (256 x 256 of the photo).
  s1.eval.source = eval_clean
  s1.eval_noisy_source = eval_noisy
  s1.eval.stop, s1.eval.crop = 0, 0
  s1.eval.every_steps = 6000
  s2.data.clean = clean
  s2.data.clean_start, s2.data.clean_stop = 0, 0
  # The network learns and runs on the sub-images, where the noise is the white noise
  # stage 1 learned (docs/evaluation.md: +0.16 dB and +0.028 SSIM on CC15 over full
  # size at the CPU budget). Patches are multiples of 8f: 48x48 sub-images.
  s2.distill.domain = "subimages"
  # Synthetic pairs at each photo's level as the PCA estimate reads it off its noisy
  # sub-images: CNN_est's level sits at mu's error floor, too high on textured photos,
  # and a stage 2 trained on it over-smooths (docs/evaluation.md: at the CPU budget
  # +0.55 dB on camera-simulated Kodak24 and +1.26 dB on CC15 over CNN_est's levels).
  s2.distill.noise_levels = "estimated"
  s2.data.patch_size, s2.data.batch_size = 192, 24
  s2.eval.every_steps = 10_000
  return workflow(s1, s2)
