#!/usr/bin/env bash
# make demo: build larder, make a repository in a temporary folder, ingest
# the committed sample backups with a write key (as the forum server's cron
# job would), restore every one with the master key, and print the
# verified hashes and the deduplication ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
LARDER=${LARDER:-./bin/larder}
work=$(mktemp -d "${TMPDIR:-/tmp}/larder-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT

export LARDER_REPO="$work/repo"
export LARDER_CACHE_DIR="$work/cache"
export LARDER_PASSWORD_FILE="$work/passphrase"
echo "demo passphrase, not for real use" > "$LARDER_PASSWORD_FILE"

echo "== init: a repository and its master key"
$LARDER init
echo
echo "== a write key for the forum server (no passphrase, for cron)"
$LARDER key new-write --name forum --out "$work/forum.key" --no-passphrase 2>/dev/null
echo
backups=$(find testdata/small -mindepth 2 -type f | sort)
echo "== ingest the sample backups with the write key"
$LARDER --key "$work/forum.key" ingest $backups
echo
echo "== the same night again: nothing new to store (exit 0, for cron)"
$LARDER --key "$work/forum.key" ingest $backups | tail -1
echo
echo "== status per site"
$LARDER status
echo
echo "== restore every snapshot with the master key and compare"
mkdir -p "$work/restored"
$LARDER --json snapshots > "$work/snapshots.json"
python3 - "$work" <<'PY'
import json, subprocess, sys, hashlib, os
work = sys.argv[1]
for line in open(os.path.join(work, "snapshots.json")):
    s = json.loads(line)
    out = os.path.join(work, "restored", s["id"][:8] + "-" + s["name"])
    subprocess.run([os.environ.get("LARDER", "./bin/larder"), "restore", s["id"], "-o", out, "--overwrite", "-q"], check=True)
    h = hashlib.sha256(open(out, "rb").read()).hexdigest()
    ok = "verified" if h == s["sha256"] else "MISMATCH"
    print(f"{s['id'][:8]}  {h}  {ok}  {s['name']}")
    if h != s["sha256"]:
        sys.exit(1)
PY
echo
echo "== byte for byte against the originals"
for f in $backups; do
  match=""
  for r in "$work"/restored/*-"$(basename "$f")"; do
    if cmp -s "$f" "$r"; then match=$r; fi
  done
  if [ -z "$match" ]; then echo "NOT RESTORED  $f"; exit 1; fi
  echo "identical  $f"
done
echo
echo "== deduplication"
$LARDER stats | tail -1
