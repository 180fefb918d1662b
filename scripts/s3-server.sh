#!/usr/bin/env bash
# Start or stop, by hand, the S3 server larder's tests use (versitygw on a
# loopback port, built from the Go module proxy on first use), with a
# bucket "larder", the master's credential (the server's root) and a
# writer's credential that may only put, get and list.
#
#   eval "$(scripts/s3-server.sh start)"   # exports LARDER_REPO, AWS_*, WRITER_AWS_*
#   scripts/s3-server.sh stop
#
# The server keeps its objects in $LARDER_S3_DIR (default .cache/s3-server),
# emptied by each start.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${LARDER_S3_DIR:-$PWD/.cache/s3-server}
case "${1:-}" in
start|stop) exec go run ./internal/s3test/cmd/s3server "$1" "$dir" ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
