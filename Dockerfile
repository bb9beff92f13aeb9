# Two images from one base, as two targets:
#   train (the default, last stage): runs `python -m core.train` exactly as it runs locally, nothing else;
#   serve (`docker build --target serve`): `python -m core.serve`, the prediction server in the Vertex AI
#          custom-container contract (README "Serve the grader").
# The cockpit (TUI, Vertex/Logging SDKs) never goes in either; it drives them from outside.
#
# Base: PyTorch 2.8.0 + CUDA 12.8 + cuDNN 9 (Python 3.11, torch, torchvision, numpy, pillow included).
# Its cu128 build carries kernels for sm_70..sm_120, i.e. every GPU in the catalog from V100 and T4
# through L4, A100, H100/H200 to B200 (P100, sm_60, is not covered). Bump the tag deliberately:
# torch >= 2.11 cu128 builds drop Volta.
FROM pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime AS base

# Unbuffered so every metric line reaches Cloud Logging the moment it is printed. PSA_DEFAULT_PRESET:
# an argument list that names no preset (the Vertex guide's own `--args`) trains `cloud` here, never the
# laptop preset (core/train_args.py default_preset).
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PSA_DEFAULT_PRESET=cloud

WORKDIR /app

# Dependency layer, rebuilt only when the package metadata changes. torch, torchvision, numpy and
# pillow already come with the base image: reinstalling them would pull a second multi-GB torch.
# google-cloud-storage (the `gcs` extra) is what core needs for gs:// paths off the FUSE mount.
COPY pyproject.toml ./
RUN python -m pip install --no-cache-dir "google-cloud-storage==3.17.1"

# A non-root user. It owns only /app itself (to create outputs/ and data/ beside the code) and its
# home (the decoded-image cache lives in ~/.cache/psa); the code stays read-only to it.
RUN useradd --create-home --uid 10001 --user-group --shell /usr/sbin/nologin trainer \
    && chown trainer:trainer /app

# Source layer: only the trainer and its presets (.dockerignore keeps the rest out).
COPY README.md ./
COPY core/ core/
COPY presets/ presets/
# COPY keeps the build context's modes and makes root the owner: a preset saved 0600 on the
# developer's machine would be unreadable to uid 10001 and the job would die at start, after the VM
# was billed. So everything copied is made world-readable (directories traversable), never writable.
# --no-deps: the project's metadata says torch>=2.6 etc.; the base satisfies that and pip must not
# "upgrade" it. The import check fails the build, not the first cloud job, if the trainer is broken.
RUN chmod -R a+rX,go-w pyproject.toml README.md core presets \
    && python -m pip install --no-cache-dir --no-deps . \
    && rm -rf build ./*.egg-info \
    && python -c "import core.train"
# ImageNet weights for the cloud preset's backbone (model.weights = "imagenet"), fetched now: the build
# machine has the internet, a training job must not depend on it. TORCH_HOME is where torch looks.
ENV TORCH_HOME=/opt/torch
RUN python -m core.weights resnet50 && chmod -R a+rX /opt/torch

# ---- serve: the `serve` extra (pinned) on top of the same code; Vertex AI sets AIP_HTTP_PORT,
# AIP_HEALTH_ROUTE, AIP_PREDICT_ROUTE and AIP_STORAGE_URI (the Model's artifacts), which core.serve reads.
FROM base AS serve
RUN python -m pip install --no-cache-dir "starlette==1.10.0" "uvicorn==0.55.0" "httptools==0.9.0" \
        "uvloop==0.23.0" "orjson==3.13.0" "pybase64==1.5.1" \
    && python -c "import core.serve, starlette, uvicorn, httptools, uvloop, orjson, pybase64"
USER 10001
EXPOSE 8080
ENTRYPOINT ["python", "-m", "core.serve"]

# ---- train: the default target (last stage), what `docker build` without --target produces.
FROM base AS train
USER 10001

ENTRYPOINT ["python", "-m", "core.train"]
CMD ["--preset", "cloud"]
