"""tools/benchmark.py runs end to end in smoke mode (tiny models, one repetition)."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _run(tmp_path, *args):
  out = tmp_path / "bench.json"
  proc = subprocess.run(
      [sys.executable, os.path.join(ROOT, "tools", "benchmark.py"), "--smoke",
       "--nohugepages", f"--json={out}", *args],
      cwd=ROOT, capture_output=True, text=True, timeout=300,
      env=dict(os.environ, JAX_PLATFORMS="cpu"))
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout, json.loads(out.read_text())


def test_smoke_table_json_and_memory_check(tmp_path):
  # One subprocess for both reports: each costs a JAX start-up and compiles.
  stdout, result = _run(tmp_path, "--models=dbsn_cpu_budget,dncnn",
                        "--impls=plain,fast/mb1", "--memory", "--memory_batch=2")
  rows = result["rows"]
  # Micro-batches only split D-BSN's stage-1 step; the plain path always runs.
  assert [(r["model"], r["impl"]) for r in rows] == [
      ("dbsn_cpu_budget", "plain"), ("dbsn_cpu_budget", "fast/mb1"), ("dncnn", "plain")]
  assert result["peak_gflops"] > 0 and len(result["matmul_gflops"]) == 2
  for r in rows:
    assert r["train_gflop"] > 0 and r["train_s"] > 0 and r["forward_s"] > 0
    assert 0 < r["train_frac_peak"] and 0 < r["forward_frac_peak"]
    assert r["train_mem_mb"] > 0
  # The FLOP count is the plain path's, shared by every implementation.
  assert rows[0]["train_gflop"] == rows[1]["train_gflop"]
  assert rows[0]["train_speedup"] == 1.0
  assert "| dbsn_cpu_budget | fast/mb1 |" in stdout
  rows = result["memory"]
  assert [(r["config"], r["remat"], r["microbatch"]) for r in rows] == [
      ("gray_awgn", False, 2), ("gray_awgn", True, 2), ("gray_awgn", False, 1)]
  assert all(r["mem_gb"] > 0 and r["fits"] for r in rows)
