#!/usr/bin/env bash
# Train on a GPU VM (set up by scripts/setup_gcp_vm.sh), safe to leave running:
#   nohup scripts/run_gcp_vm_training.sh --preset cloud &
# Output goes to a timestamped log file; the run resumes from its newest checkpoint when restarted
# (output.resume=auto); the output folder is copied to GCS when the run ends, fails or is stopped.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: scripts/run_gcp_vm_training.sh [options] [-- TRAINER_ARGS...]

  --preset PRESET     preset name or file (default: cloud)
  --output-dir DIR    run folder (default: outputs/vm-<preset>); keep it to resume a run
  --backup-to GS_URI  where the run folder is copied at the end and on failure
                      (default: gs://<cloud.bucket>/psa-runs/vm-<preset>)
  --no-backup         do not copy anything to GCS
  --force-backup      copy even when the backup holds a newer run (a later step) than this folder
  --restore           first copy GS_URI back into the run folder (a new VM continues the run)
  --set KEY=VALUE     preset override passed to the trainer (repeatable)
  -h, --help          show this help

Anything after -- goes to `python -m core.train` unchanged.
Follow the run with: tail -f <run folder>/vm_logs/train_<timestamp>.log
USAGE
}

die() { echo "run_gcp_vm_training.sh: $*" >&2; exit 2; }

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-}"
if [[ -z "$python" ]]; then
    if [[ -x "$root/.venv/bin/python" ]]; then python="$root/.venv/bin/python"; else python="python3"; fi
fi

preset="cloud"
out=""
backup_to=""
backup=1
force_backup=0
backup_step=0
this_step=0
restore=0
extra=()
while (($#)); do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --preset|--output-dir|--backup-to|--set)
            (($# >= 2)) || { usage >&2; die "$1 needs a value"; }
            case "$1" in
                --preset) preset="$2" ;;
                --output-dir) out="$2" ;;
                --backup-to) backup_to="$2" ;;
                --set) extra+=(--set "$2") ;;
            esac
            shift 2 ;;
        --no-backup) backup=0; shift ;;
        --force-backup) force_backup=1; shift ;;
        --restore) restore=1; shift ;;
        --) shift; extra+=("$@"); break ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
done

cd "$root"
name="$(basename "$preset" .toml)"
out="${out:-outputs/vm-$name}"

if ((backup)) && [[ -z "$backup_to" ]]; then
    read_bucket='
import sys
from core.config import ConfigError, load_preset
try:
    print(load_preset(sys.argv[1]).cloud.bucket)
except ConfigError as exc:
    sys.exit(f"run_gcp_vm_training.sh: {exc}")
'
    bucket="$("$python" -c "$read_bucket" "$preset")" || exit 2
    [[ -n "$bucket" ]] || die "preset '$preset' has no cloud.bucket: pass --backup-to gs://BUCKET/PATH or --no-backup"
    bucket="${bucket#gs://}"
    backup_to="gs://${bucket%/}/psa-runs/vm-$name"
fi
if ((backup)) && [[ "$backup_to" != gs://* ]]; then
    die "--backup-to must be a gs:// URI, got '$backup_to'"
fi

# Copies SRC to DEST (either may be gs://) with whichever Google Cloud CLI is installed.
sync_dir() {
    if command -v gcloud >/dev/null; then
        gcloud storage rsync --recursive "$1" "$2"
    elif command -v gsutil >/dev/null; then
        gsutil -m rsync -r "$1" "$2"
    else
        echo "run_gcp_vm_training.sh: neither gcloud nor gsutil found: cannot copy $1 to $2" >&2
        return 1
    fi
}

# Copies one object to a local file with whichever Google Cloud CLI is installed.
# shellcheck disable=SC2329  # used by backup_outputs, called from the EXIT trap
fetch_file() {
    if command -v gcloud >/dev/null; then
        gcloud storage cp "$1" "$2"
    elif command -v gsutil >/dev/null; then
        gsutil cp "$1" "$2"
    else
        return 1
    fi
}

# The global step of a checkpoint file (0 when there is none, -1 when it cannot be read).
read_step='
import os, sys
from core.checkpoint import CheckpointError, load
if not os.path.isfile(sys.argv[1]):
    print(0)
    sys.exit()
try:
    print(int(load(sys.argv[1]).get("global_step", 0)))
except (CheckpointError, TypeError, ValueError):
    print(-1)
'

# True when the backup's last.pth is further along than this folder's: a sync would replace a newer
# run with an older one (say, a second VM started without --restore).
# shellcheck disable=SC2329  # used by backup_outputs, called from the EXIT trap
backup_is_newer() {
    local tmp remote local_step
    tmp="$(mktemp -d)"
    if ! fetch_file "$backup_to/checkpoints/last.pth" "$tmp/last.pth" >/dev/null 2>&1; then
        rm -rf "$tmp"
        return 1  # no backup yet
    fi
    remote="$("$python" -c "$read_step" "$tmp/last.pth")"
    rm -rf "$tmp"
    local_step="$("$python" -c "$read_step" "$out/checkpoints/last.pth")"
    backup_step="$remote"
    this_step="$local_step"
    ((remote > local_step))
}

if ((restore)); then
    ((backup)) || die "--restore needs a backup location (drop --no-backup)"
    mkdir -p "$out"
    sync_dir "$backup_to" "$out" || die "could not restore $backup_to into $out"
fi

mkdir -p "$out/vm_logs"
log="$out/vm_logs/train_$(date -u +%Y%m%d_%H%M%S).log"

# shellcheck disable=SC2329  # called by the EXIT trap below, which shellcheck does not follow
backup_outputs() {
    local status=$?
    if ((backup)); then
        if ((!force_backup)) && backup_is_newer; then
            echo "run_gcp_vm_training.sh: NOT backing up: $backup_to holds a newer run (step $backup_step) than" \
                 "$out (step $this_step); continue it with --restore, or overwrite it with --force-backup" \
                | tee -a "$log" >&2
            ((status)) || status=1
            exit "$status"
        fi
        echo "backing up $out to $backup_to" | tee -a "$log"
        sync_dir "$out" "$backup_to" >>"$log" 2>&1 \
            || echo "run_gcp_vm_training.sh: backup to $backup_to FAILED (see $log)" >&2
    fi
    exit "$status"
}
trap backup_outputs EXIT

cmd=("$python" -m core.train --preset "$preset"
     --set output.resume=auto --set "output.dir=$out" "${extra[@]}")
echo "training: ${cmd[*]}"
echo "log: $log"

# The trainer runs in the background so a TERM/INT sent to this script reaches it at once: it saves
# a checkpoint and exits, and only then does the backup run.
"${cmd[@]}" >>"$log" 2>&1 &
child=$!
trap 'kill -TERM "$child" 2>/dev/null || true' TERM INT
status=0
wait "$child" || status=$?
while kill -0 "$child" 2>/dev/null; do
    status=0
    wait "$child" || status=$?
done

echo "trainer exited with status $status" | tee -a "$log"
exit "$status"
