"""Real-photo stage 1 on simulated camera photos learns each photo's noise level."""
import numpy as np

from dbsn_jax import realworld
from dbsn_jax.data import camera_sim, input_pipeline, sources
from dbsn_jax.train import stage1
from tests.conftest import tiny_stage1_config

STEPS = 300
# Shot-noise gains a (read noise b = a / 100): about 16, 28 and 43 / 255, high ISO, where
# the noise, not a tiny network's mu error, dominates the residual.
GAINS = (0.006, 0.018, 0.045)


def test_per_photo_noise_levels_order_correctly_and_match_the_truth():
  """Three photos through the camera simulator (demosaicked, colour-matrixed,
  signal-dependent noise) at rising levels; stage 1 on their 4x4 pixel-shuffled
  sub-images with a per-photo, per-Bayer-group CNN_est. Each photo's learned std,
  with the model picked by likelihood as for an unseen photo, is within 20 % of
  std(noisy - clean) and the levels come out in order: CNN_est's, and the fitted level
  the real-photo recipes report (at this size +2 to +9 %)."""
  cat = sources.load("sample:chelsea", 3).images[0]
  photos = [cat[:256, :256], cat[:256, 192:448], cat[44:300, 96:352]]
  pairs = [camera_sim.simulate(x, a, a / 100, np.random.default_rng(i))
           for i, (x, a) in enumerate(zip(photos, GAINS))]
  noisy = [n.astype(np.float32) / 255 for n, _ in pairs]
  clean = [t.astype(np.float32) / 255 for _, t in pairs]
  config = tiny_stage1_config(**{
      "channels": 3, "noise.kind": "none", "noise_model.mode": "multivariate",
      "noise_model.per_image": True, "model.sigma_form": "full", "model.features": 16,
      "realworld.downsample": 4, "realworld.bayer_groups": True, "data.patch_size": 16,
      "data.batch_size": 8, "optim.lr": 4e-3, "optim.milestones": (0.8,),
      "train.num_steps": STEPS})
  rw = realworld.settings(config)
  model = stage1.build_model(config, len(noisy))
  state = stage1.create_state(config, model, len(noisy))
  images, ids = realworld.split_images(noisy, rw, True)
  it = input_pipeline.train_iterator(
      input_pipeline.train_dataset(images, 16, 8, 0, image_ids=ids), 1)
  step = stage1.make_train_step(config, model)
  for _ in range(STEPS):
    state, _ = step(state, next(it))
  # CNN_est's own level, and the real-photo default's: re-levelled by each photo's
  # residual likelihood (bayes.noise_level='fitted').
  for level in ("learned", "fitted"):
    _, rows = stage1.evaluate(state.params, model.clone(bayes_noise=level),
                              (noisy, clean, None, ["a", "b", "c"]), rw=rw, details=True)
    learned = np.array([r["noise_std_learned"] for r in rows])
    true = np.array([r["noise_std_true"] for r in rows])
    np.testing.assert_allclose(true, [255 * np.std(n - c) for n, c in zip(noisy, clean)],
                               rtol=0.02)  # Per-channel RMS of std(noisy - clean).
    assert list(np.argsort(learned)) == [0, 1, 2], (level, learned, true)
    np.testing.assert_allclose(learned, true, rtol=0.2, err_msg=level)
