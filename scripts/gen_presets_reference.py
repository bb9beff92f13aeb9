"""Print the presets reference (every key, its type, default and meaning) as Markdown tables.

Generated from core.config.schema(), the one table every preset key is declared in, so the README
cannot drift from the code:

    python scripts/gen_presets_reference.py                 # print the Markdown
    python scripts/gen_presets_reference.py --write README.md  # replace the block between the markers
    python scripts/gen_presets_reference.py --check README.md  # exit 1 if the README is stale
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from core.config import SECTIONS, schema  # noqa: E402

START = "<!-- presets-reference:start -->"
END = "<!-- presets-reference:end -->"

SECTION_INTRO = {
    "data": "Where the cards come from and how they are loaded.",
    "model": "The dual-branch network.",
    "training": "Optimisation: the two phases, learning rates, schedule, precision, sampler.",
    "early_stopping": "Per-phase early stopping; the best weights of a phase are restored when it stops.",
    "loss": "`alpha_emd * squared-EMD + (1 - alpha_emd) * cross-entropy + beta_edge * edge + "
            "beta_center * centering`.",
    "output": "Where a run writes its files, and resuming.",
    "cloud": "Vertex AI job settings; ignored by local runs.",
}
TYPE_NAMES = {bool: "bool", int: "int", float: "float", str: "string", list: "list", dict: "table"}


def format_value(value) -> str:
    """A default as it would be written in a preset (TOML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {format_value(v)}" for k, v in value.items()) + "}"
    return repr(value)


def _meaning(spec) -> str:
    text = spec.help
    if spec.choices:
        text += "; one of " + ", ".join(f"`{c}`" for c in spec.choices)
    if spec.min is not None and spec.max is not None:
        text += f"; {spec.min:g} to {spec.max:g}"
    elif spec.min is not None:
        text += f"; at least {spec.min:g}"
    elif spec.max is not None:
        text += f"; at most {spec.max:g}"
    return text.replace("|", "\\|")


def render() -> str:
    """The whole reference as Markdown (no markers)."""
    specs = schema()
    out = [
        "Top-level keys: `extends` (a preset name or path this one builds on; its values are merged "
        "first) and `description` (one line shown by the cockpit). Override any key on the command "
        "line with `--set section.key=value`.",
    ]
    for section in SECTIONS:
        out += ["", f"#### `[{section}]`", "", SECTION_INTRO[section], "",
                "| key | type | default | meaning |", "|---|---|---|---|"]
        for spec in (s for s in specs if s.section == section):
            out.append(f"| `{spec.key}` | {TYPE_NAMES[spec.type]} | `{format_value(spec.default)}` | "
                       f"{_meaning(spec)} |")
    return "\n".join(out) + "\n"


def replace_block(text: str, body: str, start: str, end: str, where: str) -> str:
    """Return `text` with everything between the start and end marker lines replaced by `body`."""
    i, j = text.find(start), text.find(end)
    if i < 0 or j < i:
        raise SystemExit(f"{where}: markers {start} ... {end} not found")
    return text[: i + len(start)] + "\n" + body + text[j:]


def main(argv: list[str] | None = None, render_fn=render, start: str = START, end: str = END) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", metavar="FILE", help="replace the generated block in FILE")
    group.add_argument("--check", metavar="FILE", help="exit 1 when FILE's block is not up to date")
    args = parser.parse_args(argv)
    body = render_fn()
    target = args.write or args.check
    if not target:
        sys.stdout.write(body)
        return 0
    path = Path(target)
    text = path.read_text(encoding="utf-8")
    updated = replace_block(text, body, start, end, str(path))
    if args.check:
        if updated != text:
            print(f"{path}: the generated block is stale; run {Path(sys.argv[0]).name} --write {path}",
                  file=sys.stderr)
            return 1
        return 0
    path.write_text(updated, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
