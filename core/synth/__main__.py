"""`python -m core.synth --out DIR --n N --seed S --size WxH [--val 0.1 --test 0.1]`.

Prints one summary line and the grade histogram; bad arguments exit 2 with a one-line message.
"""
from __future__ import annotations

import argparse
import sys
import time

from core.synth.dataset import SynthError, generate, grade_histogram


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line and exit 2, without the usage block
        sys.stderr.write(f"python -m core.synth: error: {message}\n")
        raise SystemExit(2)


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT, e.g. 200x280") from None
    return w, h


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m core.synth", description="Render synthetic PSA-graded card scans.")
    p.add_argument("--out", required=True, help="output directory (gets img/ and splits.json)")
    p.add_argument("--n", type=int, required=True, help="number of cards")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same bytes)")
    p.add_argument("--size", type=parse_size, default=(200, 280), help="scan size WIDTHxHEIGHT (default 200x280)")
    p.add_argument("--val", type=float, default=0.1, help="share of cards in the val split")
    p.add_argument("--test", type=float, default=0.1, help="share of cards in the test split")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    try:
        path = generate(args.out, args.n, args.seed, size=args.size, val_frac=args.val, test_frac=args.test)
    except SynthError as exc:
        sys.stderr.write(f"python -m core.synth: error: {exc}\n")
        return 2
    except OSError as exc:
        sys.stderr.write(f"python -m core.synth: error: cannot write under {args.out}: {exc.strerror or exc}\n")
        return 2
    hist = grade_histogram(path)
    print(f"wrote {args.n} synthetic cards ({args.size[0]}x{args.size[1]}, seed {args.seed}) "
          f"in {time.perf_counter() - started:.1f} s -> {path}")
    print("grades " + "  ".join(f"{g}:{c}" for g, c in hist.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
