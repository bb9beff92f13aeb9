"""PresetDocument: effective values through `extends`, validated edits, comment-preserving saves, derive."""
from __future__ import annotations

import tomllib

import pytest

from core.config import load_preset
from cockpit.errors import CockpitError
from cockpit.presets import PresetDocument, validate_preset

PARENT = """\
# Parent preset: a comment that must survive.
description = "parent"

[model]
backbone = "resnet18"      # small and quick
dropout = 0.2

[training]
batch_size = 16            # fits a laptop
phase1_epochs = 1
phase2_epochs = 2
"""

CHILD = """\
# Child: only what differs.
extends = "parent.toml"
description = "child"

[training]
# the main knob
phase2_epochs = 5          # longer
lr_phase2 = 0.001

[cloud]
machine_type = "n1-standard-8"
accelerator_type = "NVIDIA_TESLA_T4"
"""


@pytest.fixture
def family(write_preset):
    parent = write_preset(PARENT, "parent.toml")
    child = write_preset(CHILD, "child.toml")
    return parent, child


def test_get_returns_own_then_inherited_then_default(family):
    _, child = family
    doc = PresetDocument.load(child)
    assert doc.get("training", "phase2_epochs") == 5          # stated in the child
    assert doc.get("model", "backbone") == "resnet18"         # inherited from the parent
    assert doc.get("loss", "alpha_emd") == 0.7                # schema default
    assert doc.get(None, "description") == "child"


def test_is_set_here_tells_own_keys_from_inherited(family):
    doc = PresetDocument.load(family[1])
    assert doc.is_set_here("training", "phase2_epochs")
    assert not doc.is_set_here("model", "backbone")


def test_validate_matches_core_load_preset(family):
    _, child = family
    assert PresetDocument.load(child).validate() == load_preset(child)


def test_comments_and_key_order_survive_set_and_save(family):
    _, child = family
    doc = PresetDocument.load(child)
    doc.set("training", "phase2_epochs", 7)
    doc.set("training", "batch_size", 8)                      # a new key goes after the others
    doc.save()
    text = child.read_text()
    assert text == CHILD.replace("phase2_epochs = 5          # longer",
                                 "phase2_epochs = 7          # longer").replace(
        "lr_phase2 = 0.001\n", "lr_phase2 = 0.001\nbatch_size = 8\n")


def test_set_adds_a_missing_section(family):
    _, child = family
    doc = PresetDocument.load(child)
    doc.set("loss", "beta_edge", 0.2)
    doc.save()
    assert tomllib.loads(child.read_text())["loss"] == {"beta_edge": 0.2}
    assert validate_preset(child).loss.beta_edge == 0.2


def test_set_rejects_a_bad_value_and_leaves_the_document_clean(family):
    _, child = family
    doc = PresetDocument.load(child)
    with pytest.raises(CockpitError) as info:
        doc.set("training", "batch_size", "big")
    assert str(info.value) == f"{child}: training.batch_size = 'big' must be an integer"
    assert not doc.dirty
    assert doc.get("training", "batch_size") == 16


def test_set_unknown_key_suggests_the_right_one(family):
    doc = PresetDocument.load(family[1])
    with pytest.raises(CockpitError, match=r"unknown key 'training.bach_size' \(did you mean 'batch_size'\?\)"):
        doc.set("training", "bach_size", 8)


def test_set_unknown_machine_type_suggests_the_catalog_name(family):
    doc = PresetDocument.load(family[1])
    with pytest.raises(CockpitError, match=r"'g2-standrd-8' is not a known machine type \(did you mean "
                                           r"'g2-standard-8'\?\)"):
        doc.set("cloud", "machine_type", "g2-standrd-8")


def test_invalid_machine_gpu_pair_is_reported_by_validate_not_set(family):
    """A user switching machine then GPU passes through a bad pair; validate() is where it is refused."""
    doc = PresetDocument.load(family[1])
    doc.set("cloud", "machine_type", "g2-standard-8")
    with pytest.raises(CockpitError, match="does not fit machine 'g2-standard-8'"):
        doc.validate()
    doc.set("cloud", "accelerator_type", "NVIDIA_L4")
    assert doc.validate().cloud.accelerator_type == "NVIDIA_L4"


def test_dirty_until_saved(family):
    doc = PresetDocument.load(family[1])
    assert not doc.dirty
    doc.set("model", "dropout", 0.3)
    assert doc.dirty
    doc.save()
    assert not doc.dirty


def test_setting_the_same_value_does_not_dirty(family):
    doc = PresetDocument.load(family[1])
    doc.set("training", "phase2_epochs", 5)
    assert not doc.dirty


def test_labels_are_written_as_an_inline_table(family):
    _, child = family
    doc = PresetDocument.load(child)
    doc.set("cloud", "labels", {"team": "ml", "app": "psa"})
    doc.save()
    assert 'labels = {team = "ml", app = "psa"}' in child.read_text()
    assert validate_preset(child).cloud.labels == {"team": "ml", "app": "psa"}


def test_derive_extends_the_parent_and_loads_to_the_same_config_plus_the_change(family, tmp_path):
    _, child = family
    doc = PresetDocument.load(child)
    derived = doc.derive(tmp_path / "sub" / "grandchild.toml", {("model", "dropout"): 0.5}, "more dropout")
    raw = tomllib.loads(derived.path.read_text())
    assert raw["extends"] == "../child.toml"
    assert raw["model"] == {"dropout": 0.5}
    expected = load_preset(child)
    got = load_preset(derived.path)
    expected.model.dropout, expected.description, expected.source = 0.5, "more dropout", got.source
    assert got == expected


def test_derive_refuses_to_overwrite(family, tmp_path):
    _, child = family
    with pytest.raises(CockpitError, match="already exists"):
        PresetDocument.load(child).derive(child)


def test_new_from_copies_comments_and_keeps_extends_pointing_at_the_parent(family, tmp_path):
    _, child = family
    copy = PresetDocument.load(child).new_from(tmp_path / "elsewhere" / "copy.toml")
    text = copy.path.read_text()
    assert "# the main knob" in text and 'extends = "../parent.toml"' in text
    assert validate_preset(copy.path).training.phase2_epochs == 5
    assert child.read_text() == CHILD  # the original is untouched


def test_load_by_preset_name():
    assert PresetDocument.load("smoke").get("data", "image_size") == [48, 64]
