#!/usr/bin/env bash
# Builds and runs the Go baseline (ctxbench, this directory), checks its output, and prints it:
# one JSON object per line on stdout, progress on stderr. Arguments go to ctxbench unchanged:
#
#   bench/go/run.sh                                   # every case, about a minute on 2 cores
#   bench/go/run.sh -benchtime 300ms -only 'cancel_tree|fanout'
#   bench/go/run.sh -extras=false > go.jsonl          # the required cases only
#
# Exits non-zero, printing nothing on stdout, if go is missing, the build or the run fails, or a
# line is not a JSON object with "name", "ns_per_op", "bytes_per_op" and "allocs_per_op".
set -euo pipefail

DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if ! command -v go >/dev/null 2>&1; then
  echo "run.sh: no 'go' on PATH (Debian: apt-get install -y golang-go)" >&2
  exit 1
fi

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

echo "run.sh: $(go version)" >&2
# The module is this directory (go.mod); build outside the caller's GOFLAGS and workspace.
if ! (cd "$DIR" && GOFLAGS= GOWORK=off go build -o "$TMP/" . ./checklines); then
  echo "run.sh: build failed" >&2
  exit 1
fi

status=0
"$TMP/ctxbench" "$@" > "$TMP/out.jsonl" || status=$?
if [ "$status" -ne 0 ]; then
  echo "run.sh: ctxbench exited with status $status; its output:" >&2
  cat "$TMP/out.jsonl" >&2
  exit "$status"
fi

# -list prints case names and -h the usage, not results: pass them through unchecked.
for arg in "$@"; do
  case "$arg" in
    -list | --list | -list=true | --list=true | -h | -help | --help)
      cat "$TMP/out.jsonl"
      exit 0
      ;;
  esac
done

if ! "$TMP/checklines" < "$TMP/out.jsonl"; then
  echo "run.sh: malformed output (above); the lines were:" >&2
  cat "$TMP/out.jsonl" >&2
  exit 1
fi
cat "$TMP/out.jsonl"
