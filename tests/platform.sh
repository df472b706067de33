# tests/platform.sh — sourced by tests/mount/lib.sh and tests/bench/run.sh:
# the one way the tests start the platform simulator.
#
#   platform_sim_start SIM DIR   start SIM (fapiaofs-platform-sim) on loopback
#                                with its database and port files in DIR; sets
#                                PLATFORM_PID, PLATFORM_PORT, PLATFORM_ADMIN;
#                                status 1 if it did not answer within 10 s
platform_sim_start() {
  rm -f "$2/platform.port" "$2/platform.admin"
  "$1" --port 0 --db "$2/platform.db" --port-file "$2/platform.port" \
      --admin-port-file "$2/platform.admin" >>"$2/platform.log" 2>&1 &
  PLATFORM_PID=$!
  for _ in $(seq 200); do [ -s "$2/platform.admin" ] && break; sleep 0.05; done
  PLATFORM_PORT=$(cat "$2/platform.port" 2>/dev/null)
  PLATFORM_ADMIN=$(cat "$2/platform.admin" 2>/dev/null)
  [ -n "$PLATFORM_PORT" ] && [ -n "$PLATFORM_ADMIN" ]
}
