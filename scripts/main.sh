#!/usr/bin/env bash
# The README's main job: set up (idempotent), then run the built-in story on the zoo models.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/planner demo "$@"
