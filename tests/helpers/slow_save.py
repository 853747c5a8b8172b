"""Run the alembert CLI with a pause inside the N-th checkpoint save (after Accelerate
wrote the state, before the rename), so a test can SIGKILL it mid-save.

usage: python slow_save.py N SECONDS alembert-args...
"""

import sys
import time

import accelerate

n_target, pause = int(sys.argv[1]), float(sys.argv[2])
original = accelerate.Accelerator.save_state
calls = {"n": 0}


def save_state(self, *args, **kwargs):
    result = original(self, *args, **kwargs)
    calls["n"] += 1
    if calls["n"] == n_target:
        print("PAUSED", flush=True)
        time.sleep(pause)
    return result


accelerate.Accelerator.save_state = save_state

from alembert.cli.main import main  # noqa: E402

sys.exit(main(sys.argv[3:]))
