"""The 8 dihedral views: each undone exactly by its inverse, all 8 distinct."""
import numpy as np

from dbsn_jax import dihedral


def test_inverse_undoes_forward_and_the_views_are_the_dihedral_group():
  x = np.random.default_rng(0).random((2, 5, 7, 3)).astype(np.float32)
  views = []
  for k in range(dihedral.COUNT):
    v = np.asarray(dihedral.forward(x, k))
    # Independent NumPy form: rotate k mod 4 times, then flip rows for k >= 4.
    ref = np.rot90(x, k % 4, axes=(1, 2))
    np.testing.assert_array_equal(v, ref[:, ::-1] if k >= 4 else ref)
    np.testing.assert_array_equal(np.asarray(dihedral.inverse(v, k)), x)
    views.append(v.tobytes())
  assert len(set(views)) == dihedral.COUNT
