"""The training loop's divergence check between evaluations."""
from dbsn_jax.train import loop


def test_eval_drops_flags_a_psnr_fall_beyond_the_tolerance_only():
  before = {"psnr_stage2": 30.5, "ssim_stage2": 0.85, "psnr_bayes": 28.0}
  after = {"psnr_stage2": 19.8, "ssim_stage2": 0.43, "psnr_bayes": 27.5}
  # The collapsed colour run of 2026-12-08: 4-crop PSNR 19.84 at step 8k.
  assert loop.eval_drops(before, after) == {"psnr_stage2": (30.5, 19.8)}
  assert loop.eval_drops(before, after, tolerance_db=0.4) == {
      "psnr_stage2": (30.5, 19.8), "psnr_bayes": (28.0, 27.5)}
  assert loop.eval_drops(after, before) == {}  # A rise is progress.
  assert loop.eval_drops({}, after) == {}  # The first evaluation has nothing to compare.
