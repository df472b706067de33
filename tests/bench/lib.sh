# tests/bench/lib.sh — what run.sh, ab.sh and walframes.sh share: messages,
# timing, the bench tools, and a daemon mounted and unmounted.  Sourced; the
# caller sets FAPIAOFS and MOUNTWAIT (the daemon and tests/bench/mountwait),
# TOOLS for need_tools and fs_mount_fresh (build/bench), and FS_PRELOAD for a
# library the daemon is to run with (ab.sh's nosync.so), empty for none.

say() { printf 'bench: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# seconds since $1 (an $EPOCHREALTIME)
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'; }

# fs_mount CONF MNT LOG: start the daemon, wait until status answers; MOUNT_S, FS_PID.
fs_mount() {
  local t0=$EPOCHREALTIME
  MNT=$2
  LD_PRELOAD=${FS_PRELOAD:-} "$FAPIAOFS" -f --config "$1" "$MNT" >>"$3" 2>&1 &
  FS_PID=$!
  "$MOUNTWAIT" "$MNT" "$FS_PID" || { tail -20 "$3" >&2; die "mount of $1 failed (see $3)"; }
  MOUNT_S=$(since "$t0")
}

fs_unmount() {
  fusermount3 -u "$MNT" 2>/dev/null || { sleep 0.5; fusermount3 -uz "$MNT"; }
  wait "$FS_PID" 2>/dev/null
  FS_PID=
}

# need_tools NAME...: each of TOOLS/NAME built, or a message saying how
need_tools() {
  local f
  for f in "$@"; do
    [ -e "$TOOLS/$f" ] || die "$TOOLS/$f missing: make bench-tools"
  done
}

# fs_mount_fresh DIR: a new state without invoices or a platform in DIR/state
# (genstore), mounted on DIR/mnt, the daemon's output in DIR/fs.log.
fs_mount_fresh() {
  fusermount3 -uz "$1/mnt" 2>/dev/null
  rm -rf "$1/state" "$1/mnt"; mkdir -p "$1/mnt"
  "$TOOLS/genstore" --state "$1/state" --invoices 0 > /dev/null || die "genstore failed in $1"
  fs_mount "$1/state/fapiaofs.conf" "$1/mnt" "$1/fs.log"
}
