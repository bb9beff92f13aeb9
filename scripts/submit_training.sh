#!/usr/bin/env bash
# Submit a Vertex AI training job: a thin wrapper over `psa-cockpit --submit`, which validates the
# preset, prints the cost estimate, builds and pushes the image, submits and tails the logs.
set -euo pipefail

usage() {
    cat <<'USAGE'
Usage: scripts/submit_training.sh PRESET [psa-cockpit --submit options]

Submit PRESET (a name such as "cloud" or a file such as presets/cloud.toml) to Vertex AI.
Everything after PRESET goes to `psa-cockpit --submit` unchanged, for example:

  --no-build        use the image already pushed for this commit
  --upload-data     copy the preset's local data to the bucket first
  --detach          return right after submitting, printing the job id
  --dry-run         print the CustomJob JSON, submit nothing
  --yes             accept an estimate above cloud.max_cost_usd
  --set KEY=VALUE   override a preset key (repeatable)
  --tag TAG         image tag to use

  -h, --help        show this help

Examples:
  scripts/submit_training.sh presets/cloud.toml --dry-run
  scripts/submit_training.sh cloud --set cloud.spot=true --detach
USAGE
}

if (($# == 0)); then usage >&2; exit 2; fi
case "$1" in
    -h|--help) usage; exit 0 ;;
    -*) usage >&2; echo "submit_training.sh: the first argument must be the preset, not '$1'" >&2; exit 2 ;;
esac

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The project's venv first (what `make setup` installs), then PATH; PSA_COCKPIT overrides both.
cockpit="${PSA_COCKPIT:-}"
if [[ -z "$cockpit" ]]; then
    if [[ -x "$root/.venv/bin/psa-cockpit" ]]; then
        cockpit="$root/.venv/bin/psa-cockpit"
    elif command -v psa-cockpit >/dev/null; then
        cockpit="psa-cockpit"
    else
        echo "submit_training.sh: psa-cockpit not found: run 'make setup' (or pip install -e '.[cockpit]')" >&2
        exit 2
    fi
fi

preset="$1"
shift
exec "$cockpit" --submit "$preset" "$@"
