"""The preset schema: inheritance, overrides, and one-line errors that name the key."""
import pytest

from core.config import ConfigError, config_to_toml, load_preset, parse_override, schema


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_builtin_presets_load_and_cloud_extends_local():
    local, cloud = load_preset("local"), load_preset("cloud")
    assert cloud.model.backbone == "resnet50"
    assert cloud.data.cache == local.data.cache and cloud.data.synthetic_n == local.data.synthetic_n  # inherited
    assert cloud.data.splits != local.data.splits  # its own set: generated at another size
    assert cloud.training.phase2_epochs == 30 and cloud.training.lr_phase2 == 3e-4
    assert cloud.output.resume == "auto"


def test_child_preset_overrides_only_what_it_states(tmp_path):
    write(tmp_path, "base.toml", '[training]\nbatch_size = 8\nlr_phase1 = 0.01\n[data]\nimage_size = [64, 88]\n')
    child = write(tmp_path, "child.toml", 'extends = "base"\n[training]\nbatch_size = 4\n')
    cfg = load_preset(child)
    assert (cfg.training.batch_size, cfg.training.lr_phase1, cfg.data.image_size) == (4, 0.01, [64, 88])


def test_set_override_is_typed_by_the_schema():
    cfg = load_preset("local", ["training.lr_phase2=1e-4", "training.use_sampler=false",
                                "data.image_size=[64, 96]", "model.backbone=resnet18"])
    assert cfg.training.lr_phase2 == 1e-4 and cfg.training.use_sampler is False
    assert cfg.data.image_size == [64, 96] and cfg.model.backbone == "resnet18"


def test_integer_is_accepted_for_a_float_key():
    assert parse_override("training.lr_phase1=1")[2] == 1.0


@pytest.mark.parametrize("override, message", [
    ("training.batchsize=3", "unknown key 'training.batchsize' (did you mean 'batch_size'?)"),
    ("training.batch_size=abc", "--set: training.batch_size = 'abc' must be an integer"),
    ("model.backbone=resnet19", "must be one of: resnet18"),
    ("training.scheduler=cosin", "(did you mean 'cosine'?)"),
    ("training.lr_phase1=-1", "training.lr_phase1 = -1.0 must be >= 0"),
    ("trainng.seed=1", "unknown section 'trainng' (did you mean 'training'?)"),
    ("seed", "must look like section.key=value"),
])
def test_bad_override_names_the_key(override, message):
    with pytest.raises(ConfigError) as err:
        load_preset("local", [override])
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_key_in_file_names_file_and_suggests(tmp_path):
    p = write(tmp_path, "bad.toml", '[model]\nbackbon = "resnet18"\n')
    with pytest.raises(ConfigError, match=r"bad\.toml: unknown key 'model\.backbon' \(did you mean 'backbone'\?\)"):
        load_preset(p)


def test_extends_cycle_is_reported(tmp_path):
    write(tmp_path, "a.toml", 'extends = "b"\n')
    write(tmp_path, "b.toml", 'extends = "a"\n')
    with pytest.raises(ConfigError, match="cycle"):
        load_preset(tmp_path / "a.toml")


def test_early_stopping_mode_must_fit_metric():
    with pytest.raises(ConfigError, match="does not fit metric 'val_loss'"):
        load_preset("cloud", ["early_stopping.metric=val_loss"])
    with pytest.raises(ConfigError, match="does not fit metric 'val_qwk'"):
        load_preset("local", ["early_stopping.metric=val_qwk"])  # the local preset keeps the lowest val loss


def test_effective_config_round_trips_through_toml(tmp_path):
    cfg = load_preset("cloud")
    p = write(tmp_path, "eff.toml", config_to_toml(cfg))
    assert load_preset(p).to_dict() == cfg.to_dict()


def test_every_schema_field_has_help():
    assert all(spec.help for spec in schema())
