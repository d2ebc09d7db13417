"""benchmarks/gpu_check.py runs on the CPU in its small mode and ends with one JSON line."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_check_small_cpu_run_ends_with_a_json_line():
    path = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--small", "--threads", "1",
           "--pytest-args", "-m cuda tests/test_cuda.py -k same_critic_on_the_device"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["device"] == "cpu" and out["small"] is True and out["device_name"]
    assert out["device_tests"]["passed"] == 1 and out["device_tests"]["failed"] == 0
    assert out["critic_step"]["fused_ms"] > 0 and out["critic_step"]["max_terms_diff"] < 1e-4
    ens = out["lsd_ensemble"]
    assert ens["sequential_extrapolated"] and ens["sequential_timed"] < ens["k"] and ens["max_pvalue_diff"] < 1e-4
    assert out["ksd"]["seconds"] > 0 and 0 <= out["ksd"]["pvalue"] <= 1
