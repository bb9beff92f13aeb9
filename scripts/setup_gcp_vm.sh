#!/usr/bin/env bash
# Prepare a Compute Engine GPU VM to train: check the NVIDIA driver, create a venv, install the
# trainer (with GCS support) and optionally copy the data down from a bucket.
# Run from a clone of this repository on the VM; then start training with
# scripts/run_gcp_vm_training.sh.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: scripts/setup_gcp_vm.sh [options]

  --data GS_URI        copy a data folder (the one holding splits.json) from GCS, e.g.
                       gs://my-bucket/psa-data/mine
  --data-dest DIR      where to put it (default: data/<last part of GS_URI>)
  --venv DIR           virtual environment to create or reuse (default: .venv)
  --python PYTHON      interpreter that creates the venv (default: python3; needs >= 3.11)
  --skip-driver-check  install even when nvidia-smi is missing (CPU-only VM)
  -h, --help           show this help
USAGE
}

die() { echo "setup_gcp_vm.sh: $*" >&2; exit 2; }

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
data=""
data_dest=""
venv="$root/.venv"
python="python3"
check_driver=1
while (($#)); do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --data|--data-dest|--venv|--python)
            (($# >= 2)) || { usage >&2; die "$1 needs a value"; }
            case "$1" in
                --data) data="$2" ;;
                --data-dest) data_dest="$2" ;;
                --venv) venv="$2" ;;
                --python) python="$2" ;;
            esac
            shift 2 ;;
        --skip-driver-check) check_driver=0; shift ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done
if [[ -n "$data" && "$data" != gs://* ]]; then
    die "--data must be a gs:// URI, got '$data'"
fi

cd "$root"

# 1. Driver: without it torch silently falls back to the CPU and a 3-hour run takes days.
if ((check_driver)); then
    if ! command -v nvidia-smi >/dev/null || ! nvidia-smi >/dev/null 2>&1; then
        cat >&2 <<'MSG'
setup_gcp_vm.sh: no working NVIDIA driver (nvidia-smi is missing or fails).
  On a Deep Learning VM image: sudo /opt/deeplearning/install-driver.sh
  Otherwise: https://cloud.google.com/compute/docs/gpus/install-drivers-gpu
  (For a CPU-only VM, rerun with --skip-driver-check.)
MSG
        exit 1
    fi
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
fi

# 2. Virtual environment and the trainer. Plain `pip install torch` on Linux brings CUDA wheels.
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$python is older than Python 3.11: pass --python python3.11 (or newer)"
if [[ ! -x "$venv/bin/python" ]]; then
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -e "${root}[gcs]"
"$venv/bin/python" -c 'import torch; print(f"torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}")'

# 3. Data from GCS (optional). gcloud storage when present, else gsutil.
if [[ -n "$data" ]]; then
    if [[ -z "$data_dest" ]]; then
        data_dest="data/$(basename "${data%/}")"
    fi
    mkdir -p "$data_dest"
    if command -v gcloud >/dev/null; then
        gcloud storage rsync --recursive "$data" "$data_dest"
    elif command -v gsutil >/dev/null; then
        gsutil -m rsync -r "$data" "$data_dest"
    else
        die "neither gcloud nor gsutil found: install the Google Cloud CLI to copy $data"
    fi
    echo "data copied to $data_dest (point data.splits at $data_dest/splits.json)"
fi

echo "VM ready. Train with: scripts/run_gcp_vm_training.sh"
