"""The binaries' XLA CPU setting: added once, never over the user's own choice, and never
for a jaxlib whose XLA would abort on the unknown flag."""
from dbsn_jax import xla_cpu


def test_flag_is_appended_to_existing_flags_once():
  env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
  assert xla_cpu.use_xla_kernels(env, version="0.10.2")
  assert env["XLA_FLAGS"] == ("--xla_force_host_platform_device_count=2 "
                              "--xla_cpu_experimental_ynn_fusion_type=")
  assert not xla_cpu.use_xla_kernels(env, version="0.10.2")  # Already there: unchanged.
  assert env["XLA_FLAGS"].count(xla_cpu.FLAG) == 1
  empty = {}
  assert xla_cpu.use_xla_kernels(empty, version="0.9.0")
  assert empty["XLA_FLAGS"] == "--xla_cpu_experimental_ynn_fusion_type="


def test_users_own_setting_wins():
  env = {"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type=dot"}
  assert not xla_cpu.use_xla_kernels(env, version="0.10.2")
  assert env["XLA_FLAGS"] == "--xla_cpu_experimental_ynn_fusion_type=dot"


def test_older_or_missing_jaxlib_is_left_alone():
  for version in ("0.8.0", "0.8.3", "0.4.38", None):
    env = {"XLA_FLAGS": "--a=1"}
    assert not xla_cpu.use_xla_kernels(env, version=version or "")  # "" = unknown.
    assert env["XLA_FLAGS"] == "--a=1"
  assert xla_cpu._release("0.9.0.1") == (0, 9, 0)
  assert xla_cpu._release("0.10.0rc1") == (0, 10, 0)
  assert xla_cpu._release("0.10.2+cuda12") == (0, 10, 2)
