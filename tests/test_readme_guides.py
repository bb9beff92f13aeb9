"""The README's table of the two guides' defaults states this project's values truly (presets/cloud.toml)."""
import re
from pathlib import Path

from core.config import load_preset

README = Path(__file__).resolve().parent.parent / "README.md"


def _rows() -> dict[str, list[str]]:
    text = README.read_text(encoding="utf-8")
    section = text.split("### The two original guides and this project", 1)[1]
    rows = {}
    for line in section.splitlines():
        m = re.match(r"\| `([a-z_]+\.[a-z_0-9]+)` \|(.*)\|$", line)
        if m:
            rows[m.group(1)] = [cell.strip() for cell in m.group(2).split("|")]
    return rows


def test_the_table_says_the_vertex_guide_wins():
    text = README.read_text(encoding="utf-8")
    assert "Where they disagree, the project follows the **Vertex guide**" in text


def test_this_projects_column_is_the_cloud_presets_value():
    rows, cloud = _rows(), load_preset("cloud")
    assert len(rows) >= 14
    for key, (vertex, _optimisations, ours) in rows.items():
        section, name = key.split(".")
        value = getattr(getattr(cloud, section), name)
        shown = re.match(r"`([^`]+)`", ours).group(1)
        expected = {True: "true", False: "false"}.get(value, value) if isinstance(value, bool) else value
        assert shown.strip('"') == str(expected), key


def test_where_the_vertex_guide_states_a_number_the_project_uses_it():
    for key, (vertex, _optimisations, ours) in _rows().items():
        m = re.match(r"`([^`]+)`", vertex)
        if m and key != "training.use_sampler":
            assert float(m.group(1)) == float(re.match(r"`([^`]+)`", ours).group(1)), key
