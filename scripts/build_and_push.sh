#!/usr/bin/env bash
# Build the training image and push it to Artifact Registry: a thin wrapper over the cockpit's image
# module (cockpit/image.py), so this script and `psa-cockpit --submit` compute the same URI and tag:
#   REGION-docker.pkg.dev/PROJECT/REPO/NAME:TAG   (cloud.region, cloud.project, cloud.image)
#   TAG = git short SHA, plus -dirty-<digest of the uncommitted changes> when the tree differs from the commit.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: scripts/build_and_push.sh [options] [PRESET]

Build the trainer image from ./Dockerfile and push it to Artifact Registry.

  PRESET            preset name or file whose [cloud] section names the image (default: cloud)
  --tag TAG         image tag (default: git short SHA, with -dirty-<digest> for uncommitted changes)
  --no-push         build only
  --dry-run         print the image URI, build nothing
  -h, --help        show this help

Needs docker, and `gcloud auth configure-docker REGION-docker.pkg.dev` once per machine.
Prints the image URI last. Then submit with: scripts/submit_training.sh PRESET --no-build
USAGE
}

die() { echo "build_and_push.sh: $*" >&2; exit 2; }

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-}"
if [[ -z "$python" ]]; then
    if [[ -x "$root/.venv/bin/python" ]]; then python="$root/.venv/bin/python"; else python="python3"; fi
fi

preset="cloud"
tag=""
push=1
dry_run=0
while (($#)); do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --tag) (($# >= 2)) || { usage >&2; die "--tag needs a value"; }; tag="$2"; shift 2 ;;
        --no-push) push=0; shift ;;
        --dry-run) dry_run=1; shift ;;
        -*) usage >&2; die "unknown option: $1" ;;
        *) preset="$1"; shift ;;
    esac
done

cd "$root"

# Docker's output streams line by line; errors come back as one line with the cockpit's exit code
# (2 bad preset, 5 docker missing / daemon down / registry auth, with the fix in the message).
build_and_push='
import sys
from cockpit import image
from cockpit.errors import CockpitError
from core.config import ConfigError, load_preset

preset, tag, push, dry_run, root = sys.argv[1:]
def out(line):
    print(line, flush=True)
try:
    uri = image.image_uri(load_preset(preset), tag or image.git_tag(root))
    if dry_run == "0":
        image.build_image(uri, root, out)
        if push == "1":
            image.push_image(uri, out)
except ConfigError as exc:
    sys.exit(print(f"build_and_push.sh: {exc}", file=sys.stderr) or 2)
except CockpitError as exc:
    sys.exit(print(f"build_and_push.sh: {exc.message}", file=sys.stderr) or exc.exit_code)
print(uri)
'
exec "$python" -c "$build_and_push" "$preset" "$tag" "$push" "$dry_run" "$root"
