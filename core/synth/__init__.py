"""Built-in synthetic trading cards with PSA-style labels (docs/design.md §1, §2).

`generate(out_dir, n, seed, size=(W, H))` writes a card set and returns its splits.json path;
`python -m core.synth --out DIR --n N --seed S --size WxH` does the same from a shell. The grade of
every card is `grade_from_attributes` of what was drawn: the minimum of the centering cap (PSA's bands)
and the corner, edge and surface (crease) caps.
"""
from core.centering import back_centering_cap, centering_cap, front_centering_cap
from core.synth.dataset import SynthCard, SynthError, generate, grade_histogram, make_card
from core.synth.grading import CardAttributes, caps, crease_cap, grade_from_attributes, severity_cap

__all__ = [
    "CardAttributes", "SynthCard", "SynthError", "back_centering_cap", "caps", "centering_cap",
    "crease_cap", "front_centering_cap", "generate", "grade_from_attributes", "grade_histogram",
    "make_card", "severity_cap",
]
