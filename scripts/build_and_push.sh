#!/usr/bin/env bash
# Build the training image and push it to Artifact Registry, tagged the way the cockpit tags it:
# the git short SHA, plus "-dirty" when the working tree has uncommitted changes.
# URI: REGION-docker.pkg.dev/PROJECT/REPO/NAME:TAG, with region, project and REPO/NAME (cloud.image)
# read from the preset, so this and `psa-cockpit --submit` always agree on the image.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: scripts/build_and_push.sh [options] [PRESET]

Build the trainer image from ./Dockerfile and push it to Artifact Registry.

  PRESET            preset name or file whose [cloud] section names the image (default: cloud)
  --tag TAG         image tag (default: git short SHA, with -dirty for uncommitted changes)
  --no-push         build only
  --dry-run         print the docker commands and the image URI, run nothing
  -h, --help        show this help

Needs docker, and `gcloud auth configure-docker REGION-docker.pkg.dev` once per machine.
Then submit with: scripts/submit_training.sh PRESET --no-build
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

# One line "REGION PROJECT IMAGE" from the validated preset; a bad preset stops here with core's
# one-line message.
read_cloud_fields='
import sys
from core.config import ConfigError, load_preset
try:
    c = load_preset(sys.argv[1]).cloud
except ConfigError as exc:
    sys.exit(f"build_and_push.sh: {exc}")
print(c.region, c.project or "-", c.image)
'
fields="$("$python" -c "$read_cloud_fields" "$preset")" || exit 2
read -r region project image <<<"$fields"
[[ "$project" != "-" ]] || die "preset '$preset': cloud.project is empty (set it in the preset, e.g. project = \"my-project\")"

if [[ -z "$tag" ]]; then
    tag="$(git rev-parse --short HEAD 2>/dev/null)" || die "not a git checkout: pass --tag TAG"
    if [[ -n "$(git status --porcelain --untracked-files=no)" ]]; then
        tag="$tag-dirty"
    fi
fi

uri="$region-docker.pkg.dev/$project/$image:$tag"
build=(docker build --tag "$uri" --file "$root/Dockerfile" "$root")
push_cmd=(docker push "$uri")

if ((dry_run)); then
    printf '%q ' "${build[@]}"; echo
    if ((push)); then printf '%q ' "${push_cmd[@]}"; echo; fi
    echo "$uri"
    exit 0
fi

command -v docker >/dev/null || die "docker not found: install Docker (https://docs.docker.com/engine/install/)"
"${build[@]}"
if ((push)); then
    if ! "${push_cmd[@]}"; then
        echo "build_and_push.sh: push failed; if it was an auth error run: gcloud auth configure-docker $region-docker.pkg.dev" >&2
        exit 1
    fi
fi
echo "$uri"
