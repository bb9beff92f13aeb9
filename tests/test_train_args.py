"""What `python -m core.train` resolves a command line to: the default preset inside the container and on
Vertex AI, and `--print-config`, which shows the effective config without training."""
import tomllib

import pytest

from core.config import config_from_dict, load_preset
from core.train import main
from core.train_args import build_parser, config_from_args, default_preset

# The Vertex guide's own `--args` list for the CustomJob: no --preset.
GUIDE_ARGS = ["--splits_path", "gs://my-bucket/psa-data/splits.json", "--output_dir", "gs://my-bucket/psa-out",
              "--batch_size", "32", "--phase1_epochs", "10", "--phase2_epochs", "30", "--lr_phase1", "1e-3",
              "--lr_phase2", "3e-4", "--lambda_fusion", "0.7", "--alpha_emd", "0.7", "--beta_edge", "0.05",
              "--beta_center", "0.1", "--use_sampler"]
CONTAINER_ENV = {"CLOUD_ML_JOB_ID": "1234567890", "AIP_MODEL_DIR": "gs://my-bucket/psa-runs/job/model/",
                 "AIP_CHECKPOINT_DIR": "gs://my-bucket/psa-runs/job/checkpoints/",
                 "AIP_TENSORBOARD_LOG_DIR": "gs://my-bucket/psa-runs/job/logs/", "PSA_DEFAULT_PRESET": "cloud"}


@pytest.fixture
def bare_env(monkeypatch):
    """No Vertex or image variables from the machine running the tests."""
    import os

    for key in list(os.environ):
        if key.startswith("AIP_") or key in ("CLOUD_ML_JOB_ID", "PSA_DEFAULT_PRESET"):
            monkeypatch.delenv(key)
    return monkeypatch


def _resolve(argv):
    return config_from_args(build_parser().parse_args(argv))


def test_without_preset_a_laptop_run_starts_from_local(bare_env):
    assert default_preset() == "local"
    assert _resolve([]).source.endswith("local.toml")


@pytest.mark.parametrize("env", [{"CLOUD_ML_JOB_ID": "42"}, {"AIP_MODEL_DIR": "gs://b/job/model/"},
                                 {"PSA_DEFAULT_PRESET": "cloud"}])
def test_without_preset_a_vertex_job_or_the_image_starts_from_cloud(bare_env, env):
    for key, value in env.items():
        bare_env.setenv(key, value)
    cfg = _resolve(GUIDE_ARGS)
    assert cfg.source.endswith("cloud.toml")
    assert (cfg.model.backbone, cfg.data.image_size, cfg.training.precision) == ("resnet50", [224, 320], "auto")
    assert cfg.data.splits == "gs://my-bucket/psa-data/splits.json" and cfg.training.batch_size == 32


def test_image_default_names_any_preset_and_an_explicit_preset_still_wins(bare_env):
    bare_env.setenv("PSA_DEFAULT_PRESET", "smoke")
    bare_env.setenv("CLOUD_ML_JOB_ID", "42")
    assert _resolve([]).source.endswith("smoke.toml")
    assert _resolve(["--preset", "local"]).source.endswith("local.toml")
    assert _resolve(["--mode", "local"]).source.endswith("local.toml")


def test_print_config_prints_the_effective_toml_and_does_not_train(bare_env, tmp_path, capsys):
    for key, value in CONTAINER_ENV.items():
        bare_env.setenv(key, value)
    out_dir = tmp_path / "never-created"
    code = main([*GUIDE_ARGS, "--output_dir", str(out_dir), "--print-config"])
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    assert out.startswith("# effective config of ") and "cloud.toml" in out.splitlines()[0]
    printed = config_from_dict(tomllib.loads(out))  # valid TOML that validates as a preset
    expected = load_preset("cloud", ["data.splits=gs://my-bucket/psa-data/splits.json",
                                     f"output.dir={out_dir}", "training.use_sampler=true"])
    assert printed.to_dict() == expected.to_dict()
    assert not out_dir.exists()  # nothing trained, nothing written


def test_print_config_reports_a_bad_override_in_one_line(bare_env, capsys):
    assert main(["--preset", "smoke", "--set", "training.batch_size=0", "--print-config"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "training.batch_size" in err
