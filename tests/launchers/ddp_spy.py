"""`python -m core.train` for tests/test_torchrun.py, with a spy that keeps each rank's weights.

It runs core.train.main unchanged; the spy wraps Trainer._end_of_epoch (called on every rank right
after an epoch's training, before evaluation results are saved) and records this rank's model state at
each epoch end. On exit each rank saves them to $PSA_TEST_RANK_WEIGHTS_DIR/rank<R>.pth. Test-only: the
product has no hook for this.
"""
import os
import sys

import torch

from core import train

STATES: dict[str, dict[str, torch.Tensor]] = {}


def _spy(original):
    def end_of_epoch(self, ctx, metrics, improved):
        STATES[f"phase{ctx.phase}_epoch{self.pos.epoch}"] = {
            k: v.detach().clone() for k, v in self.model.state_dict().items()}
        return original(self, ctx, metrics, improved)
    return end_of_epoch


if __name__ == "__main__":
    train.Trainer._end_of_epoch = _spy(train.Trainer._end_of_epoch)
    code = train.main(sys.argv[1:])
    out = os.environ["PSA_TEST_RANK_WEIGHTS_DIR"]
    torch.save(STATES, os.path.join(out, f"rank{os.environ.get('RANK', '0')}.pth"))
    sys.exit(code)
