"""The container and the scripts around it, checked without a Docker engine or a cloud account.

Linters (hadolint, shellcheck) come from PyPI packages in the venv; the Dockerfile is parsed to check
the contract the cockpit relies on (entrypoint, non-root user, cached dependency layer, what goes in
the image); each script is run with stand-in `docker`, `gcloud`, `psa-cockpit` and trainer executables
to check the commands it runs.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
SCRIPTS = sorted((ROOT / "scripts").glob("*.sh"))
SCRIPT_IDS = [p.name for p in SCRIPTS]


def _tool(name: str) -> str:
    """A linter installed by the test extra: next to this interpreter, else on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} not found: install the test extra (pip install -e '.[test]')")
    return found


def _all_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per Dockerfile instruction, continuation lines joined, comments dropped."""
    out, pending = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending += stripped[:-1] + " " if stripped.endswith("\\") else stripped
        if not stripped.endswith("\\"):
            word, _, rest = pending.partition(" ")
            out.append((word.upper(), rest.strip()))
            pending = ""
    return out


def _stages() -> dict[str, list[tuple[str, str]]]:
    """Stage name -> its instructions, FROM first; the last stage is also keyed "" (the default target)."""
    stages: dict[str, list] = {}
    current: list = []
    for word, rest in _all_instructions():
        if word == "FROM":
            current = []
            parts = rest.split()
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else f"#{len(stages)}"
            stages[name] = current
        current.append((word, rest))
    stages[""] = current
    return stages


def _instructions(target: str = "") -> list[tuple[str, str]]:
    """What an image of `target` (default: the default target) runs: its stage after the stages it is
    built FROM; the one FROM kept is the external base image's, without its `AS name`."""
    stages = _stages()
    chain = []
    stage = stages[target]
    while True:
        base = stage[0][1].split()[0]
        chain = stage[1:] + chain
        if base not in stages:
            return [("FROM", base)] + chain
        stage = stages[base]


def _args_of(instruction: str, target: str = "") -> list[str]:
    return [rest for word, rest in _instructions(target) if word == instruction]


def _index_of(predicate) -> int:
    for i, (word, rest) in enumerate(_instructions()):
        if predicate(word, rest):
            return i
    raise AssertionError("instruction not found in the Dockerfile")


def _fake_exe(directory: Path, name: str, body: str) -> Path:
    path = directory / name
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _run(args: list, env_extra: dict | None = None, **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env, timeout=120,
                          cwd=ROOT, **kw)


# ---------------------------------------------------------------------------------------------------------
# Dockerfile


def test_hadolint_reports_nothing_for_the_dockerfile():
    result = _run([_tool("hadolint"), DOCKERFILE])
    assert result.returncode == 0 and result.stdout.strip() == "", result.stdout + result.stderr


def test_entrypoint_runs_the_trainer_module():
    (entry,) = _args_of("ENTRYPOINT")
    assert json.loads(entry) == ["python", "-m", "core.train"]


def test_default_command_trains_the_cloud_preset():
    (cmd,) = _args_of("CMD")
    assert json.loads(cmd) == ["--preset", "cloud"]


def test_base_image_is_a_pinned_pytorch_cuda_runtime():
    (base,) = _args_of("FROM")
    assert re.fullmatch(r"pytorch/pytorch:2\.\d+\.\d+-cuda\d+\.\d+-cudnn\d+-runtime", base), base


def test_container_runs_as_a_non_root_user():
    users = _args_of("USER")
    assert users, "no USER instruction: the trainer would run as root"
    assert users[-1].split(":")[0] not in ("root", "0")


def test_output_is_unbuffered_so_metric_lines_stream():
    envs = " ".join(_args_of("ENV"))
    assert re.search(r"\bPYTHONUNBUFFERED=1\b", envs)


def test_image_trains_the_cloud_preset_when_the_arguments_name_none():
    """The Vertex guide's own --args list has no --preset: in the image it must not mean the laptop preset."""
    from core.train_args import default_preset

    envs = " ".join(_args_of("ENV"))
    assert re.search(r"\bPSA_DEFAULT_PRESET=cloud\b", envs)
    assert default_preset({"PSA_DEFAULT_PRESET": "cloud"}) == "cloud"


def test_dependency_layer_comes_before_the_source():
    deps = _index_of(lambda w, r: w == "RUN" and "pip install" in r and "--no-deps" not in r)
    metadata = _index_of(lambda w, r: w == "COPY" and "pyproject.toml" in r)
    source = _index_of(lambda w, r: w == "COPY" and r.split()[0].rstrip("/") == "core")
    assert metadata < deps < source


def test_image_copies_only_the_trainer_and_its_metadata():
    sources = set()
    for rest in _args_of("COPY"):
        parts = [p for p in rest.split() if not p.startswith("--")]
        sources.update(p.rstrip("/") for p in parts[:-1])
    assert sources == {"pyproject.toml", "README.md", "core", "presets"}


def test_image_never_installs_cockpit_dependencies_or_a_second_torch():
    runs = " ".join(_args_of("RUN"))
    for banned in ("textual", "aiplatform", "google-cloud-logging", "[cockpit]", "torch==", "torch>",
                   "torchvision", "requirements"):
        assert banned not in runs, banned
    project_installs = re.findall(r"pip install[^&]* \.(?:\s|$)", runs)
    assert project_installs and all("--no-deps" in i for i in project_installs)


def test_the_cloud_presets_imagenet_weights_are_fetched_at_build_time():
    from core.config import load_preset

    model = load_preset("cloud").model
    assert model.weights == "imagenet"
    assert re.search(r"\bTORCH_HOME=/\S+", " ".join(_args_of("ENV")))
    assert any(f"python -m core.weights {model.backbone}" in r for r in _args_of("RUN"))


def test_dockerignore_keeps_data_outputs_venv_and_git_out():
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    for path in ("data", "outputs", ".venv", ".git", "tests", "docs", "cockpit", "*.pth"):
        assert path in ignored, path


def test_dockerignore_does_not_hide_what_the_image_copies():
    ignored = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert not ignored & {"pyproject.toml", "README.md", "core", "presets"}


def test_build_context_packages_as_the_trainer_alone(tmp_path):
    """`pip install --no-deps .` in the image sees only the copied files: the package must build."""
    context = tmp_path / "context"
    context.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, context / name)
    for name in ("core", "presets"):
        shutil.copytree(ROOT / name, context / name, ignore=shutil.ignore_patterns("__pycache__"))
    result = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                   "-w", tmp_path / "wheels", context])
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = (tmp_path / "wheels").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "core/config.py" in names
    assert not [n for n in names if n.startswith("cockpit/")]


def test_entrypoint_and_default_command_parse_to_the_cloud_preset():
    """What the container runs with no arguments is exactly `core.train --preset cloud`."""
    if importlib.util.find_spec("core.train_args") is None:
        pytest.skip("core.train_args not written yet")
    from core.config import load_preset
    from core.train_args import build_parser, config_from_args

    (cmd,) = _args_of("CMD")
    cfg = config_from_args(build_parser().parse_args(json.loads(cmd)))
    assert cfg.to_dict() == load_preset("cloud").to_dict()


# The CustomJob contract test (the cockpit's container args parse in core.train with the same effective
# config as the preset) belongs here, beside the run below.


def _image_copy_sources() -> list[str]:
    sources = []
    for rest in _args_of("COPY"):
        parts = [p for p in rest.split() if not p.startswith("--")]
        sources += [p.rstrip("/") for p in parts[:-1]]
    return sources


def _copy_image_files(app: Path) -> None:
    """What the image holds (its COPY sources), copied with their modes into `app`."""
    for name in _image_copy_sources():
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, app / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, app / name)


@pytest.fixture(scope="module")
def vertex_like_run(tmp_path_factory):
    """The entrypoint run as Vertex AI runs it: only what the image copies, in its own working dir, with
    the cockpit's container args for the smoke preset, AIP_* output dirs set and no CLUSTER_SPEC."""
    if importlib.util.find_spec("core.train") is None:
        pytest.skip("core.train not written yet")
    from cockpit.vertex import container_args

    tmp = tmp_path_factory.mktemp("vertex-like")
    app = tmp / "app"
    app.mkdir()
    _copy_image_files(app)
    base = tmp / "gcs" / "psa-runs" / "job"
    env = {k: v for k, v in os.environ.items() if k not in ("CLUSTER_SPEC", "PYTHONPATH")}
    env.update(HOME=str(tmp / "home"), PYTHONUNBUFFERED="1", CLOUD_ML_JOB_ID="1234",
               AIP_MODEL_DIR=f"{base}/model/", AIP_CHECKPOINT_DIR=f"{base}/checkpoints/",
               AIP_TENSORBOARD_LOG_DIR=f"{base}/logs/")
    (entry,) = _args_of("ENTRYPOINT")
    argv = [sys.executable if a == "python" else a for a in json.loads(entry)]
    argv += container_args("smoke", [])
    result = subprocess.run(argv, cwd=app, env=env, capture_output=True, text=True, timeout=600)
    return result, base


@pytest.mark.slow
def test_entrypoint_trains_the_smoke_preset_as_on_vertex(vertex_like_run):
    result, base = vertex_like_run
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1])["event"] == "done"


@pytest.mark.slow
def test_entrypoint_exports_the_model_to_aip_model_dir(vertex_like_run):
    result, base = vertex_like_run
    assert {p.name for p in (base / "model").iterdir()} >= {"psa_dual_branch_state_dict.pth",
                                                             "psa_dual_branch_config.json"}


@pytest.mark.slow
def test_entrypoint_writes_checkpoints_to_aip_checkpoint_dir(vertex_like_run):
    result, base = vertex_like_run
    assert {"phase1_best.pth", "phase2_best.pth", "last.pth"} <= {p.name for p in (base / "checkpoints").iterdir()}


@pytest.mark.slow
def test_entrypoint_prints_only_json_lines_and_nothing_on_stderr(vertex_like_run):
    """Cloud Logging turns JSON lines into jsonPayload and shows any stderr line as an ERROR."""
    result, base = vertex_like_run
    assert result.stderr == ""
    for line in result.stdout.splitlines():
        assert isinstance(json.loads(line), dict), line


RUNTIME_UID = 10001  # the Dockerfile's `USER 10001`


def test_image_makes_every_copied_file_readable_by_the_runtime_user():
    """COPY keeps the context's modes and root ownership; a 0600 file would be unreadable to uid 10001."""
    (user,) = _args_of("USER")[-1:]
    assert user.split(":")[0] == str(RUNTIME_UID)
    last_copy = max(i for i, (w, _) in enumerate(_instructions()) if w == "COPY")
    user_at = _index_of(lambda w, r: w == "USER")
    chmods = [r for i, (w, r) in enumerate(_instructions())
              if w == "RUN" and last_copy < i < user_at and re.search(r"chmod -R a\+rX", r)]
    assert chmods, "no `chmod -R a+rX ...` between the last COPY and USER"
    for source in _image_copy_sources():
        assert re.search(rf"chmod -R a\+rX\S* [^&]*\b{re.escape(source)}\b", chmods[0]), source


def _become_runtime_user():
    os.setgroups([])
    os.setgid(RUNTIME_UID)
    os.setuid(RUNTIME_UID)


def _interpreter_for_runtime_user(env: dict) -> tuple[str, dict]:
    """A Python that uid 10001 may run, with this venv's packages: this interpreter when it can reach
    it, else the system's one of the same minor version with the venv's site-packages on PYTHONPATH
    (an interpreter under /root is out of its reach). Skips when there is none."""
    import sysconfig

    site = sysconfig.get_paths()["purelib"]
    minor = f"{sys.version_info.major}.{sys.version_info.minor}"
    for python, extra in ((sys.executable, {}), (f"/usr/bin/python{minor}", {"PYTHONPATH": site})):
        try:
            probe = subprocess.run([python, "-c", "import torch, numpy, PIL"], env=dict(env, **extra),
                                   capture_output=True, timeout=120, preexec_fn=_become_runtime_user)
        except OSError:  # not executable by uid 10001
            continue
        if probe.returncode == 0:
            return python, extra
    pytest.skip("no Python with torch that uid 10001 can run on this machine")


@pytest.mark.slow
def test_entrypoint_runs_as_the_runtime_user_on_a_preset_the_cockpit_saved():
    """A TUI save rewrites the preset atomically; the job must still read it as uid 10001 (as in the
    image, where root owns the copied files). Before issue 12 the rewrite made it 0600 and every job
    submitted after a save died at start."""
    if os.geteuid() != 0:
        pytest.skip("switching to uid 10001 needs root")
    import tempfile

    from cockpit.presets import PresetDocument
    from cockpit.vertex import container_args

    top = Path(tempfile.mkdtemp(prefix="psa-uid-"))  # pytest's tmp dirs are 0700: uid 10001 cannot enter
    try:
        top.chmod(0o755)
        app = top / "app"
        app.mkdir()
        _copy_image_files(app)
        doc = PresetDocument.load(app / "presets" / "smoke.toml")
        doc.set("training", "phase2_epochs", 1)
        doc.save()
        os.chown(app, RUNTIME_UID, RUNTIME_UID)  # the Dockerfile: chown trainer /app (the dir only)
        home, base = top / "home", top / "gcs" / "psa-runs" / "job"
        for folder in (home, base):
            folder.mkdir(parents=True)
            os.chown(folder, RUNTIME_UID, RUNTIME_UID)
        env = {k: v for k, v in os.environ.items()  # caches default to ~/.cache, as in the image
               if k not in ("CLUSTER_SPEC", "PYTHONPATH", "PSA_CACHE_DIR", "PSA_GCS_CACHE_DIR")}
        env.update(HOME=str(home), PYTHONUNBUFFERED="1", CLOUD_ML_JOB_ID="1234",
                   AIP_MODEL_DIR=f"{base}/model/", AIP_CHECKPOINT_DIR=f"{base}/checkpoints/")
        python, extra_env = _interpreter_for_runtime_user(env)
        env.update(extra_env)
        (entry,) = _args_of("ENTRYPOINT")
        argv = [python if a == "python" else a for a in json.loads(entry)]
        argv += container_args("smoke", ["training.phase1_epochs=0", "data.synthetic_n=40"])
        result = subprocess.run(argv, cwd=app, env=env, capture_output=True, text=True, timeout=600,
                                preexec_fn=_become_runtime_user)
        assert result.returncode == 0, result.stderr[-2000:]
        assert (base / "model" / "psa_dual_branch_config.json").is_file()
    finally:
        shutil.rmtree(top, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------------
# The serving target (`docker build --target serve`): python -m core.serve, README "Serve the grader"


def test_serve_target_runs_the_prediction_server_as_non_root_on_the_same_base():
    (entry,) = _args_of("ENTRYPOINT", "serve")
    assert json.loads(entry) == ["python", "-m", "core.serve"]
    assert _args_of("FROM", "serve") == _args_of("FROM")  # the same pinned base as training
    assert _args_of("USER", "serve")[-1].split(":")[0] not in ("root", "0")
    assert not _args_of("CMD", "serve")  # the model comes from AIP_STORAGE_URI, set by Vertex AI


def test_serve_target_installs_only_pinned_server_libraries():
    runs = " ".join(_args_of("RUN", "serve"))
    for banned in ("textual", "aiplatform", "google-cloud-logging", "torch==", "torchvision"):
        assert banned not in runs, banned
    assert re.search(r'"starlette==[\d.]+"', runs) and re.search(r'"uvicorn==[\d.]+"', runs)


def test_the_default_target_is_still_the_trainer():
    assert list(_stages())[-2] == "train"  # docker build without --target builds the last stage


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _http(url: str, body: dict | None = None) -> tuple[int, dict | None]:
    import urllib.error
    import urllib.request

    data = json.dumps(body).encode() if body is not None else None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None


def test_serve_entrypoint_answers_health_and_predict_as_vertex_calls_it(tmp_path, tiny_model_dir, card_scans):
    """The serve target's entrypoint, run as Vertex AI runs it: only what the image copies, the model from
    AIP_STORAGE_URI, port and routes from AIP_* variables; /health turns 200 and a predict round-trips."""
    import base64
    import time

    app = tmp_path / "app"
    app.mkdir()
    _copy_image_files(app)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HOME=str(tmp_path / "home"), AIP_HTTP_PORT=str(port), AIP_STORAGE_URI=tiny_model_dir,
               AIP_HEALTH_ROUTE="/v1/health", AIP_PREDICT_ROUTE="/v1/models/grader:predict")
    (entry,) = _args_of("ENTRYPOINT", "serve")
    argv = [sys.executable if a == "python" else a for a in json.loads(entry)] + ["--host", "127.0.0.1"]
    proc = subprocess.Popen(argv, cwd=app, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                status, _ = _http(base + "/v1/health")
            except OSError:
                status = 0
            if status == 200 or proc.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert status == 200, proc.stdout.read() if proc.poll() is not None else "no 200 from /v1/health"
        front, back = card_scans[0]
        instance = {side: {"b64": base64.b64encode(Path(p).read_bytes()).decode()}
                    for side, p in (("front", front), ("back", back))}
        status, reply = _http(base + "/v1/models/grader:predict", {"instances": [instance]})
        assert status == 200
        (prediction,) = reply["predictions"]
        assert 1 <= prediction["grade"] <= 10 and len(prediction["probabilities"]) == 10
        assert _http(base + "/v1/models/grader:predict", {"instances": [{}]})[0] == 400
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# ---------------------------------------------------------------------------------------------------------
# Scripts


def test_there_are_the_four_scripts():
    assert set(SCRIPT_IDS) >= {"build_and_push.sh", "submit_training.sh", "setup_gcp_vm.sh",
                               "run_gcp_vm_training.sh"}


@pytest.mark.parametrize("script", SCRIPTS, ids=SCRIPT_IDS)
def test_shellcheck_passes(script):
    result = _run([_tool("shellcheck"), "--shell=bash", script])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=SCRIPT_IDS)
def test_script_is_strict_and_never_evals(script):
    text = script.read_text()
    assert "set -euo pipefail" in text
    assert not re.search(r"^\s*eval\b|[;&|]\s*eval\b", text, re.M)


@pytest.mark.parametrize("script", SCRIPTS, ids=SCRIPT_IDS)
def test_script_prints_usage_on_help(script):
    result = _run(["bash", script, "--help"])
    assert result.returncode == 0
    assert result.stdout.startswith("Usage: scripts/" + script.name)


@pytest.mark.parametrize("script", SCRIPTS, ids=SCRIPT_IDS)
def test_script_rejects_an_unknown_option_with_usage(script):
    result = _run(["bash", script, "--bogus"])
    assert result.returncode == 2
    assert "Usage:" in result.stderr and "--bogus" in result.stderr


@pytest.fixture
def fakes(tmp_path):
    """A bin/ folder of stand-in executables, put first on PATH; each records its argv in a log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "FAKE_LOG": str(tmp_path / "calls.log")}
    return bin_dir, env, tmp_path / "calls.log"


def _expected_tag() -> str:
    """The cockpit's own tag rule (short SHA, -dirty-<digest> with uncommitted changes): the script must
    tag exactly as `psa-cockpit --submit` does."""
    from cockpit.image import git_tag

    return git_tag(ROOT)


def test_build_and_push_tags_with_the_commit_and_the_presets_registry(fakes, tmp_path):
    bin_dir, env, log = fakes
    _fake_exe(bin_dir, "docker", 'echo "docker $*" >> "$FAKE_LOG"\n')
    preset = tmp_path / "mine.toml"
    preset.write_text('extends = "cloud"\n[cloud]\nproject = "my-proj"\nregion = "europe-west4"\n')
    result = _run(["bash", ROOT / "scripts/build_and_push.sh", preset], env)
    uri = f"europe-west4-docker.pkg.dev/my-proj/psa/psa-trainer:{_expected_tag()}"
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == uri
    build, push = log.read_text().splitlines()
    assert build.startswith("docker build ") and f" {uri} " in build and build.endswith(f" {ROOT}")
    assert f"{DOCKERFILE}" in build
    assert push == f"docker push {uri}"


def test_build_and_push_builds_only_with_no_push(fakes, tmp_path):
    bin_dir, env, log = fakes
    _fake_exe(bin_dir, "docker", 'echo "docker $*" >> "$FAKE_LOG"\n')
    preset = tmp_path / "mine.toml"
    preset.write_text('extends = "cloud"\n[cloud]\nproject = "my-proj"\n')
    result = _run(["bash", ROOT / "scripts/build_and_push.sh", "--no-push", "--tag", "v1", preset], env)
    assert result.returncode == 0, result.stderr
    assert [line.split()[1] for line in log.read_text().splitlines()] == ["build"]
    assert result.stdout.strip().splitlines()[-1] == "us-central1-docker.pkg.dev/my-proj/psa/psa-trainer:v1"


def test_build_and_push_needs_a_project_in_the_preset(fakes):
    bin_dir, env, log = fakes
    _fake_exe(bin_dir, "docker", 'echo "docker $*" >> "$FAKE_LOG"\n')
    result = _run(["bash", ROOT / "scripts/build_and_push.sh", "cloud"], env)
    assert result.returncode == 2
    assert "cloud.project is empty" in result.stderr
    assert not log.exists()


def test_build_and_push_reports_a_docker_failure_in_one_line(fakes, tmp_path):
    bin_dir, env, log = fakes
    _fake_exe(bin_dir, "docker", 'echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock."\n'
                                 "exit 1\n")
    preset = tmp_path / "mine.toml"
    preset.write_text('extends = "cloud"\n[cloud]\nproject = "my-proj"\n')
    result = _run(["bash", ROOT / "scripts/build_and_push.sh", preset], env)
    assert result.returncode == 5  # the cockpit's EXIT_BUILD
    assert result.stderr.strip().startswith("build_and_push.sh: ")
    assert "Traceback" not in result.stderr


def test_submit_training_hands_preset_and_options_to_the_cockpit(fakes):
    bin_dir, env, log = fakes
    cockpit = _fake_exe(bin_dir, "psa-cockpit", 'printf "%s\\n" "$@" > "$FAKE_LOG"\nexit 4\n')
    result = _run(["bash", ROOT / "scripts/submit_training.sh", "presets/cloud.toml", "--detach",
                   "--set", "cloud.spot=true"], dict(env, PSA_COCKPIT=str(cockpit)))
    assert result.returncode == 4  # the cockpit's exit code (job state) comes back unchanged
    assert log.read_text().splitlines() == ["--submit", "presets/cloud.toml", "--detach", "--set",
                                            "cloud.spot=true"]


def _vm_training(fakes, trainer_rc: int):
    bin_dir, env, log = fakes
    trainer = _fake_exe(bin_dir, "trainer", f'echo "trainer $*" >> "$FAKE_LOG"\nexit {trainer_rc}\n')
    _fake_exe(bin_dir, "gcloud", 'echo "gcloud $*" >> "$FAKE_LOG"\n')
    out = log.parent / "run"
    result = _run(["bash", ROOT / "scripts/run_gcp_vm_training.sh", "--output-dir", out,
                   "--backup-to", "gs://bucket/runs/a", "--set", "training.batch_size=8"],
                  dict(env, PYTHON=str(trainer)))
    return result, log.read_text().splitlines(), out


def test_vm_training_resumes_from_the_newest_checkpoint(fakes):
    result, calls, out = _vm_training(fakes, 0)
    assert result.returncode == 0, result.stderr
    assert calls[0] == (f"trainer -m core.train --preset cloud --set output.resume=auto "
                        f"--set output.dir={out} --set training.batch_size=8")


def test_vm_training_logs_to_a_timestamped_file(fakes):
    result, calls, out = _vm_training(fakes, 0)
    (log_file,) = (out / "vm_logs").glob("train_*.log")
    assert re.fullmatch(r"train_\d{8}_\d{6}\.log", log_file.name)
    assert "trainer exited with status 0" in log_file.read_text()


def test_vm_training_backs_up_outputs_even_when_training_fails(fakes):
    result, calls, out = _vm_training(fakes, 3)
    assert result.returncode == 3
    assert calls[-1] == f"gcloud storage rsync --recursive {out} gs://bucket/runs/a"


def _vm_run_with_a_backup(fakes, tmp_path, local_step: int, backup_step: int, *options: str):
    """The VM script over a fake bucket folder whose checkpoints/last.pth is at `backup_step`."""
    import torch

    bin_dir, env, log = fakes
    bucket = tmp_path / "bucket"
    (bucket / "runs" / "a" / "checkpoints").mkdir(parents=True)
    torch.save({"global_step": backup_step}, bucket / "runs" / "a" / "checkpoints" / "last.pth")
    out = tmp_path / "run"
    (out / "checkpoints").mkdir(parents=True)
    torch.save({"global_step": local_step}, out / "checkpoints" / "last.pth")
    # the trainer stand-in; `python -c` (the script's checkpoint reader) runs the real interpreter
    _fake_exe(bin_dir, "trainer", f'if [[ "$1" == -c ]]; then exec {sys.executable} "$@"; fi\n'
                                  'echo "trainer $*" >> "$FAKE_LOG"\n')
    _fake_exe(bin_dir, "gcloud", 'echo "gcloud $*" >> "$FAKE_LOG"\n'
                                 'if [[ "$1 $2" == "storage cp" ]]; then\n'
                                 '  cp "$FAKE_BUCKET/${3#gs://bucket/}" "$4"\nfi\n')
    result = _run(["bash", ROOT / "scripts/run_gcp_vm_training.sh", "--output-dir", out,
                   "--backup-to", "gs://bucket/runs/a", *options],
                  dict(env, PYTHON=str(bin_dir / "trainer"), FAKE_BUCKET=str(bucket), PYTHONPATH=str(ROOT)))
    return result, log.read_text().splitlines()


def test_vm_training_never_overwrites_a_newer_backup(fakes, tmp_path):
    result, calls = _vm_run_with_a_backup(fakes, tmp_path, local_step=100, backup_step=5000)
    assert result.returncode != 0
    assert "holds a newer run (step 5000)" in result.stderr and "--force-backup" in result.stderr
    assert not [c for c in calls if "rsync" in c]


def test_vm_training_backs_up_over_an_older_backup(fakes, tmp_path):
    result, calls = _vm_run_with_a_backup(fakes, tmp_path, local_step=5000, backup_step=100)
    assert result.returncode == 0, result.stderr
    assert calls[-1] == f"gcloud storage rsync --recursive {tmp_path / 'run'} gs://bucket/runs/a"


def test_vm_training_force_backup_overwrites_a_newer_backup(fakes, tmp_path):
    result, calls = _vm_run_with_a_backup(fakes, tmp_path, 100, 5000, "--force-backup")
    assert result.returncode == 0, result.stderr
    assert calls[-1] == f"gcloud storage rsync --recursive {tmp_path / 'run'} gs://bucket/runs/a"


def test_vm_setup_stops_with_a_driver_hint_when_there_is_no_gpu_driver():
    if any(Path(d, "nvidia-smi").exists() for d in ("/usr/bin", "/bin")):
        pytest.skip("this machine has nvidia-smi")
    result = _run(["bash", ROOT / "scripts/setup_gcp_vm.sh"], {"PATH": "/usr/bin:/bin"})
    assert result.returncode == 1
    assert "no working NVIDIA driver" in result.stderr and "--skip-driver-check" in result.stderr


# ---------------------------------------------------------------------------------------------------------
# README: generated blocks stay in sync


def _load_script(name: str):
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(ROOT / "scripts"))


def _readme_block(start: str, end: str) -> str:
    text = (ROOT / "README.md").read_text()
    return text[text.index(start) + len(start) + 1: text.index(end)]


def test_readme_presets_reference_is_generated_from_the_schema():
    gen = _load_script("gen_presets_reference")
    assert _readme_block(gen.START, gen.END) == gen.render(), \
        "README is stale: run python scripts/gen_presets_reference.py --write README.md"


def test_presets_reference_lists_every_schema_key():
    from core.config import schema

    gen = _load_script("gen_presets_reference")
    text = gen.render()
    for spec in schema():
        assert f"| `{spec.key}` |" in text, spec.key


def test_readme_cost_table_is_generated_from_the_catalog():
    gen = _load_script("gen_cost_table")
    assert _readme_block(gen.START, gen.END) == gen.render(), \
        "README is stale: run python scripts/gen_cost_table.py --write README.md"


def test_readme_quick_start_targets_exist_in_the_makefile():
    readme = (ROOT / "README.md").read_text()
    makefile = (ROOT / "Makefile").read_text()
    for target in ("train", "test", "cockpit"):
        assert f"make {target}" in readme
        assert re.search(rf"^{target}:", makefile, re.M), target


def test_readme_names_only_scripts_and_presets_that_exist():
    readme = (ROOT / "README.md").read_text()
    named = set(re.findall(r"\b(?:scripts/\w+\.(?:sh|py)|presets/\w+\.toml)\b", readme))
    named.discard("presets/mycloud.toml")  # the example preset the cloud guide asks the user to write
    assert named
    for path in named:
        assert (ROOT / path).is_file(), path
