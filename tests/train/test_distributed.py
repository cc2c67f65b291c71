"""2-process data-parallel training on the CPU (torchrun, gloo) matches 1 process."""
import os
import subprocess
import sys
from pathlib import Path

import torch

HELPERS = Path(__file__).parents[1] / "helpers"


def _run(args, env):
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]


def test_two_processes_match_one(tmp_path, fakes, tiny_weights):
    config = fakes.tiny_config(tmp_path, tiny_weights)
    fakes.fake_sessions(config.output_dir, 8)
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HELPERS.parent), env.get("PYTHONPATH")]))
    worker = str(HELPERS / "ddp_worker.py")
    _run([sys.executable, worker, str(tmp_path), str(tiny_weights), str(tmp_path / "one.pt")], env)
    _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
          worker, str(tmp_path), str(tiny_weights), str(tmp_path / "two.pt")], env)
    one = torch.load(tmp_path / "one.pt", weights_only=True)
    two = torch.load(tmp_path / "two.pt", weights_only=True)
    for net in ("teacher", "student"):
        assert one[net].keys() == two[net].keys()
        # score.bias: its gradient is 0 in exact arithmetic (softmax ignores a shift), so what Adam
        # does with it is rounding noise; every other tensor must agree
        keys = [k for k in one[net] if not k.endswith("score.bias")]
        gap = sum(((one[net][k] - two[net][k]) ** 2).sum() for k in keys).sqrt()
        moved = sum(((one[net][k] - one["init"][net][k]) ** 2).sum() for k in keys).sqrt()
        assert moved > 0 and gap / moved < 0.01, (net, float(gap), float(moved))
    assert (tmp_path / "work-2" / "phase2.pt").exists()  # rank 0 wrote the checkpoints
