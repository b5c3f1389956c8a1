#!/usr/bin/env bash
# stop.sh: stops the stack scripts/quickstart.sh started in ./run.
set -euo pipefail
top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
exec "$top/scripts/stack.sh" stop --dir "$top/run" "$@"
