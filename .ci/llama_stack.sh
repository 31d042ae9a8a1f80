#!/usr/bin/env bash
# Install the llama-stack server of the integration tests (tests/integration/) in its own
# venv, exactly as locked in tests/integration/llama_stack/requirements.txt. Idempotent: a
# venv made from the same lock is kept. Prints the venv's path on stdout (progress on stderr).
#
#   .ci/llama_stack.sh                 # -> .ci/venvs/llama-stack (gitignored)
#   BATCHGRADER_LLAMA_STACK_VENV=DIR .ci/llama_stack.sh
#   LLAMA_STACK_PYTHON=/path/to/python3.12 .ci/llama_stack.sh
#
# llama-stack 0.7.3 needs Python >= 3.12 (the project's own is 3.11); Python is never
# downloaded: an interpreter already on the machine is used (pyenv's, uv's, or on PATH).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
lock="$root/tests/integration/llama_stack/requirements.txt"
venv="${BATCHGRADER_LLAMA_STACK_VENV:-$root/.ci/venvs/llama-stack}"
export UV_PYTHON_DOWNLOADS=never

if ! command -v uv >/dev/null 2>&1; then
  python3 -m pip install --quiet uv >&2
fi

is_new_enough() {
  "$1" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1
}

find_python() {
  local candidates=()
  [ -n "${LLAMA_STACK_PYTHON:-}" ] && candidates+=("$LLAMA_STACK_PYTHON")
  candidates+=("$(uv python find '>=3.12' 2>/dev/null || true)")
  local pyenv_root
  pyenv_root="$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"
  for dir in "$pyenv_root"/versions/3.1[2-9]*/bin; do
    candidates+=("$dir/python3")
  done
  candidates+=(python3.12 python3.13 python3)
  for candidate in "${candidates[@]}"; do
    if [ -n "$candidate" ] && is_new_enough "$candidate"; then
      "$candidate" -c 'import sys; print(sys.executable)'
      return 0
    fi
  done
  return 1
}

want="$(sha256sum "$lock" | cut -d' ' -f1)"
stamp="$venv/.batchgrader-lock.sha256"
if [ -x "$venv/bin/llama" ] && [ "$(cat "$stamp" 2>/dev/null || true)" = "$want" ]; then
  echo "llama-stack: venv up to date" >&2
else
  if ! python="$(find_python)"; then
    echo "llama-stack: no Python >= 3.12 found (set LLAMA_STACK_PYTHON)" >&2
    exit 1
  fi
  echo "llama-stack: installing into $venv with $python" >&2
  rm -rf "$venv"
  uv venv --quiet --python "$python" "$venv" >&2
  VIRTUAL_ENV="$venv" uv pip sync --quiet "$lock" >&2
  # It must import its whole server (0.7.3 with mcp 2.x, say, does not).
  "$venv/bin/python" -c "import llama_stack.core.stack" >&2
  echo "$want" >"$stamp"
fi
echo "$venv"
