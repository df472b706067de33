#!/usr/bin/env bash
# tests/crash/crash.sh — the crash harness of SPEC §7 "Robustness" (tests/crash/README.md):
# 8 writers drop drafts without end while the daemon is killed with SIGKILL at random
# moments and mounted again, through three phases (plain drops, upload bursts after a
# platform outage, clearing the card); then a clean mount drains everything and
# tests/crash/verify.py holds the tree to what every close() said.
#
#   bash tests/crash/crash.sh short|full      (FAPIAOFS_BUILD=build-asan, CRASH_SEED=N)
#
# Prints "ok - ..." / "not ok - ..." lines and "# ..." figures; exits non-zero on a failure.
# The work stays in tests/tmp/crash-MODE.BUILD/ (drafts.log, kills.log, fapiaofs.log).
MODE=${1:-short}
source "$(dirname "$0")/../mount/lib.sh"
case $MODE in
  short) DROP_KILLS=4 POWER_CUTS=3 BURSTS=1 DOWN_KILLS=2 UP_KILLS=2 CLEARINGS=1 CLEAR_KILLS=3
         AFTER_KILLS=1 PAUSE_US=10000 RUN_MAX_MS=1200 MIN_KILLS=8 ;;
  full)  DROP_KILLS=20 POWER_CUTS=12 BURSTS=2 DOWN_KILLS=4 UP_KILLS=4 CLEARINGS=2 CLEAR_KILLS=6
         AFTER_KILLS=2 PAUSE_US=8000 RUN_MAX_MS=2500 MIN_KILLS=50 ;;
  *) echo "usage: crash.sh short|full" >&2; exit 2 ;;
esac
WRITER=$BUILD/crash-writer
[ -x "$WRITER" ] || { echo "not ok - crash: $WRITER is missing (make, or make SAN=1)"; exit 1; }
# power cuts preload tests/crash/powercut.c into the daemon, which ASan's runtime forbids
POWERCUT_LIB=$BUILD/libpowercut.so
case $(basename "$BUILD") in *asan*) POWER_CUTS=0 ;; esac
POWER_ARG=$([ "$POWER_CUTS" -gt 0 ] && echo power)
[ "$POWER_CUTS" -eq 0 ] || [ -f "$POWERCUT_LIB" ] ||
  { echo "not ok - crash: $POWERCUT_LIB is missing (make)"; exit 1; }
SEED=${CRASH_SEED:-$(( $(date +%s) % 100000 ))}
RANDOM=$SEED
STARTED=$(date +%s)

T_CLOCK=2026-11-10T10:00:00+08:00
t_setup "crash-$MODE"
ADMIN=http://127.0.0.1:$PLATFORM_ADMIN
echo "# crash $MODE on $(basename "$BUILD"), seed $SEED (CRASH_SEED=$SEED repeats the kill moments)"

# ---- the test clock: it runs at the pace of the real one from a base that the
# phases move (uploads are scheduled on it, so it must not stand still) ----------
iso_cst() { date -u -d "@$(($1 + 28800))" +%Y-%m-%dT%H:%M:%S+08:00; }
clock_ticker() {
  local base real
  while [ ! -e "$T/ticker.stop" ]; do
    read -r base real < "$T/clock.base"
    printf '%s\n' "$(iso_cst $((base + $(date +%s) - real)))" > "$T/clock.tick"
    mv -f "$T/clock.tick" "$T/clock"
    sleep 0.2
  done
}
clock_epoch() { date -d "$(cat "$T/clock")" +%s; }
# clock_jump EPOCH: the clock goes on from there; returns once the daemon can see it
clock_jump() {
  printf '%s %s\n' "$1" "$(date +%s)" > "$T/clock.base.new" && mv -f "$T/clock.base.new" "$T/clock.base"
  for _ in $(seq 50); do [ "$(clock_epoch)" -ge "$1" ] && return; sleep 0.1; done
}
printf '%s %s\n' "$(date -d "$T_CLOCK" +%s)" "$(date +%s)" > "$T/clock.base"
clock_ticker & TICKER_PID=$!

# ---- the writers, and the cleanup of what this script started --------------------
"$WRITER" --mount "$MNT" --template "$ROOT/examples/basic.json" --log "$T/drafts.log" \
  --stop "$T/writers.stop" --writers 8 --pause-us "$PAUSE_US" --seed "$SEED" \
  > "$T/writers.out" 2>&1 &
WRITER_PID=$!
CLEAR_PID=
crash_cleanup() {
  touch "$T/ticker.stop" "$T/writers.stop"
  [ -n "$CLEAR_PID" ] && kill "$CLEAR_PID" 2>/dev/null
  if kill -0 "$WRITER_PID" 2>/dev/null; then
    for _ in $(seq 100); do kill -0 "$WRITER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$WRITER_PID" 2>/dev/null
  fi
  wait "$TICKER_PID" 2>/dev/null
  t_cleanup
}
trap crash_cleanup EXIT

# ---- kills --------------------------------------------------------------------------
KILLS=0 PHASE=drops
sleep_ms() { sleep "$(printf '%d.%03d' $(($1 / 1000)) $(($1 % 1000)))"; }
# a moment: a third of them in the first 100 ms after the mount (reconciliation,
# reloading waiting drafts, the first uploads), the rest up to RUN_MAX_MS
random_ms() {
  if [ $((RANDOM % 3)) -eq 0 ]; then echo $((RANDOM % 100))
  else echo $((100 + RANDOM % (RUN_MAX_MS - 100))); fi
}
# daemon_dead: every thread of the daemon is gone (what is left is for wait to reap)
daemon_dead() {
  [ ! -d "/proc/$FS_PID" ] ||
    { grep -q '^State:[[:space:]]*Z' "/proc/$FS_PID/status" 2>/dev/null &&
      [ "$(ls "/proc/$FS_PID/task" 2>/dev/null | wc -l)" -le 1 ]; }
}
wait_dead() { for _ in $(seq "$1"); do daemon_dead && return 0; sleep 0.1; done; daemon_dead; }
# stacks: the kernel stacks of the daemon's threads and of the threads of this run that
# wait in the kernel (D), for the report of a daemon that SIGKILL does not end
stacks() {
  local t
  for t in /proc/"$FS_PID"/task/* /proc/"$WRITER_PID"/task/*; do
    grep -q '^State:[[:space:]]*[DS]' "$t/status" 2>/dev/null || continue
    grep -q 'fuse' "$t/stack" 2>/dev/null || continue
    echo "$(cat "$t/comm" 2>/dev/null) $(basename "$t") $(sed -n 's/^State:[[:space:]]*//p' "$t/status"):" \
      "$(sed 's/+0x[0-9a-f/x]*//' "$t/stack" | awk '{print $2}' | head -n 6 | paste -sd' ')"
  done
}
STUCK=0
# kill_daemon MS: SIGKILL the daemon (it must still be alive), lazy unmount
kill_daemon() {
  local rc
  if ! kill -0 "$FS_PID" 2>/dev/null || daemon_dead; then
    wait "$FS_PID"; rc=$?
    echo "not ok - the daemon died on its own (exit $rc) in phase $PHASE before kill $((KILLS + 1))"
    tail -n 30 "$T/fapiaofs.log" | sed 's/^/    /'
    T_FAILED=1
  else
    conn=$(mountpoint -d "$MNT" 2>/dev/null)
    kill -KILL "$FS_PID"
    KILLS=$((KILLS + 1))
    echo "$(date +%s.%N) $PHASE kill $KILLS at ${1}ms" >> "$T/kills.log"
    if ! wait_dead 50; then
      # A thread that SIGKILL cannot end keeps /dev/fuse open, so the kernel never aborts
      # the connection and whoever waits on the mount waits for ever: that is a failure.
      # umount -f aborts the connection (root), so that the run can go on.
      STUCK=$((STUCK + 1))
      echo "not ok - kill $KILLS ($PHASE, ${1} ms after the mount): the daemon is not gone 5 s after" \
        "SIGKILL; its threads and the writers wait in the kernel:"
      stacks | sort | uniq -c | sed 's/^/    /' | tee -a "$T/stuck.log"
      T_FAILED=1
      umount -f "$MNT" 2>/dev/null
      wait_dead 50 || { echo 1 > "/sys/fs/fuse/connections/${conn#*:}/abort"; } 2>/dev/null
      if ! wait_dead 50; then   # nothing can be waited for now: leave without waiting
        echo "not ok - neither umount -f nor /sys/fs/fuse/connections/${conn#*:}/abort released" \
          "the daemon (pid $FS_PID, needs root): giving up"
        trap - EXIT; touch "$T/ticker.stop" "$T/writers.stop"; kill "$PLATFORM_PID"; exit 1
      fi
    fi
    wait "$FS_PID" 2>/dev/null; rc=$?
    if [ "$rc" -ne 137 ]; then
      echo "not ok - the daemon exited $rc instead of being killed (phase $PHASE, kill $KILLS)"
      tail -n 30 "$T/fapiaofs.log" | sed 's/^/    /'
      T_FAILED=1
    fi
  fi
  fusermount3 -uz "$MNT" 2>/dev/null
}
# mount_daemon [power]: mount; with power, under tests/crash/powercut.c, which logs what
# every write into the state directory overwrites until the file is synced
POWER_MOUNTED=0 CUTS=0
mount_daemon() {
  if [ "${1:-}" = power ]; then
    POWERCUT_DIR=$T/state POWERCUT_LOG=$T/undo LD_PRELOAD=$POWERCUT_LIB t_mount
    POWER_MOUNTED=1
  else
    t_mount
    POWER_MOUNTED=0
  fi
}
# power_cut: after the kill of a daemon mounted with power, what a power loss may leave: each
# file of the state directory keeps or loses (a coin, seeded) what was written since its sync
power_cut() {
  [ "$POWER_MOUNTED" = 1 ] || return 0
  CUTS=$((CUTS + 1))
  python3 "$ROOT/tests/crash/powercut.py" --dir "$T/state" --log "$T/undo" \
    --seed $((SEED + KILLS)) >> "$T/power.log" ||
    { echo "not ok - powercut.py failed after kill $KILLS"; T_FAILED=1; }
}
# cuts_that_lost [FILE]: how many power cuts lost unsynced writes (of FILE, a state file's name)
cuts_that_lost() {
  if [ $# -eq 0 ]; then grep -vc 'lost in none' "$T/power.log"
  else grep -c "lost in [^;]*$1" "$T/power.log"; fi
}
# crash_once [power]: let the daemon run for a random moment, kill it (and cut the power if it
# ran with power), mount again (with power: under the library)
crash_once() {
  local ms; ms=$(random_ms)
  sleep_ms "$ms"
  kill_daemon "$ms" 2>/dev/null   # not bash's "Killed" notices
  power_cut
  sleep_ms $((RANDOM % 200))
  mount_daemon "${1:-}"
}
field() { sed -n "s/^$2: //p" "$1"; }

# ---- phase 1: plain drops -------------------------------------------------------------
for _ in $(seq "$DROP_KILLS"); do crash_once; done
echo "# phase drops: $KILLS kills, $(wc -l < "$T/drafts.log") drafts so far"

# ---- phase 2: power cuts: a kill -9 keeps what the daemon wrote (the page cache outlives it),
# a power loss only what it synced; the last crash_once cuts the power and mounts plainly ------
if [ "$POWER_CUTS" -gt 0 ]; then
  PHASE=power
  mkdir -p "$T/undo"
  for _ in $(seq "$POWER_CUTS"); do crash_once power; done
  crash_once
  echo "# phase power: $CUTS power cuts, $(cuts_that_lost) of them lost unsynced writes;" \
    "$(wc -l < "$T/drafts.log") drafts so far"
fi

# ---- phase 3: upload bursts: the platform down while the queue grows, then up --------
PHASE=upload-bursts
for _ in $(seq "$BURSTS"); do
  platform_mode down
  # drafts wait for the uploads here (offline limit): power cuts too, when there are any
  for _ in $(seq "$DOWN_KILLS"); do crash_once "$POWER_ARG"; done
  echo "# platform down: queued $(field "$MNT/platform/status" queued)," \
    "waiting $(field "$MNT/status" waiting)" \
    "$(grep -m1 '^waiting_draft' "$MNT/status")"
  platform_mode up
  # the backlog's retry is due at once (not after the backoff): a burst under the kills
  clock_jump $(($(clock_epoch) + 60))
  for _ in $(seq "$UP_KILLS"); do crash_once; done
done
echo "# phase upload-bursts: $KILLS kills, $(wc -l < "$T/drafts.log") drafts so far"

# ---- phase 4: clearing the card while the daemon is killed -----------------------------
PHASE=clearing
period=2026-11 day=2026-12-16
: > "$T/locked.windows"
for _ in $(seq "$CLEARINGS"); do
  clock_jump "$(date -d "${day}T09:00:00+08:00" +%s)"   # past the lock date: drafts wait
  locked_from=$(date +%s%3N)
  crash_once "$POWER_ARG"   # the kills of the clearings are power cuts too, when there are any
  # The first half of the clearings run before the return is filed (they end in step 5 with
  # EPERM: the kills fall in steps 1-5), the rest after (steps 1-7).  The platform is slow
  # (150 ms a call: a clearing takes 300-500 ms), so that a kill 0-600 ms after the start
  # falls inside a clearing more often than not.
  killed=0 answered=
  for i in $(seq "$CLEAR_KILLS"); do
    [ "$i" -eq $((CLEAR_KILLS / 2 + 1)) ] && curl -s -d "$period" "$ADMIN/admin/filed" >/dev/null
    platform_mode "slow 150"
    ( echo clear > "$MNT/device/clear" ) 2>"$T/clear.err" & CLEAR_PID=$!
    ms=$((RANDOM % 600))
    sleep_ms "$ms"
    kill_daemon "$ms" 2>/dev/null
    power_cut
    wait "$CLEAR_PID" 2>/dev/null; CLEAR_PID=
    if grep -qE 'connection abort|not connected' "$T/clear.err"; then killed=$((killed + 1))
    else answered="$answered $(sed 's/.*: //' "$T/clear.err" | tr ' ' _ | grep . || echo ok)"; fi
    sleep_ms $((RANDOM % 200))
    mount_daemon "$POWER_ARG"
  done
  [ "$CLEAR_KILLS" -eq 1 ] && curl -s -d "$period" "$ADMIN/admin/filed" >/dev/null
  echo "# clearing $period: $killed of $CLEAR_KILLS clearings killed before they answered;" \
    "answered before the kill:${answered:- none}"
  platform_mode up
  for try in $(seq 10); do
    err=$( ( echo clear > "$MNT/device/clear" ) 2>&1 | sed 's/.*: //')
    [ -z "$err" ] && [ "$(field "$MNT/device/status" cleared_through)" = "$period" ] && break
    echo "# clear $period, try $try: ${err:-ok}: $(field "$MNT/device/clear" reason)"
    sleep 1
  done
  check_eq "clearing $period killed $CLEAR_KILLS times, then run again: cleared through $period" \
    "$(field "$MNT/device/status" cleared_through)" "$period"
  check_eq "  the platform cleared $period once" \
    "$(curl -s "$ADMIN/admin/clearances" | grep -c "^$period ")" "1"
  echo "# clearing $period: $(grep -c " clear: " "$MNT/device/log") clearings finished in device/log so far"
  echo "$locked_from $(date +%s%3N) $period" >> "$T/locked.windows"
  for _ in $(seq "$AFTER_KILLS"); do crash_once; done   # the waiting drafts go out under kills
  period=$(date -d "${period}-01 +1 month" +%Y-%m)
  day=$(date -d "${day} +1 month" +%Y-%m-%d)
done

# ---- the end: writers stop, a clean remount, everything drains, then the checks ----------
PHASE=final
touch "$T/writers.stop"
for _ in $(seq 300); do kill -0 "$WRITER_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$WRITER_PID" 2>/dev/null; then
  echo "not ok - the writers did not stop within 30 s (a close() hangs?)"; T_FAILED=1
  kill -KILL "$WRITER_PID"
fi
wait "$WRITER_PID"; ok $? "the writers ran to the end"
cat "$T/writers.out"
t_unmount
t_mount
clock_jump $(($(clock_epoch) + 60))   # uploads in backoff are due now
drained=1
for _ in $(seq 900); do
  if [ "$(field "$MNT/status" waiting)" = 0 ] && [ "$(field "$MNT/platform/status" queued)" = 0 ] &&
     [ -z "$(ls -A "$MNT/pending")" ]; then drained=0; break; fi
  sleep 0.1
done
ok $drained "after the final clean mount: no draft waits, the upload queue is empty"
[ "$drained" = 0 ] || { grep -E '^(waiting|platform|upload)' "$MNT/status" | sed 's/^/    /'; }
sleep 1.1   # generated files are one-second snapshots
timeout 300 python3 "$ROOT/tests/crash/verify.py" --mount "$MNT" --log "$T/drafts.log" \
  --admin "$ADMIN" --windows "$T/locked.windows"
rc=$?
[ "$rc" -le 1 ] || echo "not ok - verify.py did not finish (exit $rc)"
[ "$rc" -eq 0 ] || T_FAILED=1
check "at least $MIN_KILLS kills ($KILLS)" test "$KILLS" -ge "$MIN_KILLS"
while read -r code number; do
  verify_signature "$MNT"/issued/*/"$code-$number.json"
  ok $? "the invoice $code-$number restored from the journal has a valid signature"
done < <(sed -n 's/.* reconcile: restored \([0-9]*\)-\([0-9]*\) .*/\1 \2/p' "$MNT/device/log" | head -n 20)
check "no kill left the daemon stuck in the kernel ($STUCK of $KILLS did; stacks in stuck.log)" \
  test "$STUCK" -eq 0
if [ "$CUTS" -gt 0 ]; then
  echo "# power cuts in all: $CUTS, $(cuts_that_lost) of which lost unsynced writes (WAL" \
    "$(cuts_that_lost fapiaofs.db-wal) times, device journal $(cuts_that_lost 'device.json.journal ')" \
    "times)"
  # the library must have seen the store's writes, or every cut was a plain kill
  check "the power cuts found unsynced writes of the store's WAL to undo or keep" \
    grep -q 'fapiaofs.db-wal' "$T/power.log"
fi
echo "# crash $MODE: $KILLS kills ($CUTS with power cuts) in $(($(date +%s) - STARTED)) s, seed $SEED"
