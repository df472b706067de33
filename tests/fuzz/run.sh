#!/usr/bin/env bash
# Runs the libFuzzer targets of tests/fuzz/ for the Makefile (make fuzz, fuzz-smoke, fuzz-merge).
#
#   run.sh run   BUILD SECONDS TARGET...   each target SECONDS on a copy of its corpus
#                                          (BUILD/corpus-TARGET); one line of figures each
#   run.sh smoke BUILD SECONDS TARGET...   each target SECONDS from its checked-in corpus alone
#                                          (what it finds goes to BUILD/smoke-TARGET, emptied
#                                          first), so that a smoke run takes the same time every
#                                          time; one "ok -"/"not ok -" line each
#   run.sh merge BUILD 0 TARGET...         fold BUILD/corpus-TARGET into tests/fuzz/corpus/TARGET
#
# Exits non-zero when a target crashed, leaked, timed out or broke an invariant; the
# input is then in BUILD/artifacts/TARGET-*, the whole output in BUILD/MODE-TARGET.log.
set -u
cd "$(dirname "$0")/../.."
mode=$1 build=$2 seconds=$3
shift 3

# Per target: the longest input worth trying, and a dictionary when there is one.
max_len() {
  case $1 in
    draft) echo 65536 ;;
    proto) echo 16384 ;;
    clearance) echo 8192 ;;
    command) echo 512 ;;
    journal) echo 2048 ;;
    *) echo 4096 ;;
  esac
}

args() {   # target
  local a=(-max_len="$(max_len "$1")" -timeout=10 -rss_limit_mb=2048)
  [ -f "tests/fuzz/$1.dict" ] && a+=(-dict="tests/fuzz/$1.dict")
  echo "${a[@]}"
}

# "runs, exec/s, coverage, corpus" from a libFuzzer log.
figures() {   # log
  local log=$1 runs execs cov ft corp new rss
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  execs=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  new=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -n 1)
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n 1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n 1 | cut -d' ' -f2)
  ft=$(grep -oE 'ft: [0-9]+' "$log" | tail -n 1 | cut -d' ' -f2)
  corp=$(grep -oE 'corp: [0-9]+/[0-9]+[a-zA-Z]*' "$log" | tail -n 1 | cut -d' ' -f2)
  echo "${runs:-?} runs, ${execs:-?} exec/s, cov ${cov:-?}, ft ${ft:-?}, corpus ${corp:-?}" \
       "(+${new:-?} new), peak rss ${rss:-?} MB"
}

# What went wrong, in a few lines: the report, our frames of the stack, the input and
# how to run it again.
excerpt() {   # log bin
  local input
  grep -E '^fuzz_[a-z]+:|ERROR|SUMMARY|runtime error|^ +#[0-9]+ .*[ /](tests|device|engine|fs|platform)/' "$1" \
    | head -n 30 | sed 's/^ */    /'
  input=$(sed -n 's/.*Test unit written to //p' "$1" | tail -n 1)
  [ -n "$input" ] && echo "    input: $input; run it again: $2 $input"
}

why() {   # log
  if grep -q 'invariant broken' "$1"; then echo "broken invariant"
  elif grep -q 'ERROR: LeakSanitizer' "$1"; then echo "leak"
  elif grep -q 'ERROR: libFuzzer: timeout' "$1"; then echo "timeout"
  elif grep -q 'runtime error' "$1"; then echo "undefined behaviour"
  elif grep -qE 'ERROR: (AddressSanitizer|libFuzzer)' "$1"; then echo "crash"
  else echo "the fuzzer failed"; fi
}

failed=0
for t in "$@"; do
  bin=$build/fuzz_$t corpus=$build/corpus-$t log=$build/$mode-$t.log
  mkdir -p "$corpus" "$build/artifacts"
  if [ "$mode" = merge ]; then
    echo "fuzz $t: merging $corpus into tests/fuzz/corpus/$t"
    mkdir -p "tests/fuzz/corpus/$t"
    # shellcheck disable=SC2046
    "$bin" $(args "$t") -merge=1 "tests/fuzz/corpus/$t" "$corpus" >"$log" 2>&1 || {
      echo "fuzz $t: merge failed (log: $log)"; excerpt "$log" "$bin"; failed=1; }
    grep -E '^MERGE-OUTER: [0-9]+ new files' "$log" | sed "s/^/fuzz $t: /"
    continue
  fi
  if [ "$mode" = smoke ]; then
    rm -rf "$build/smoke-$t" && mkdir -p "$build/smoke-$t"
    dirs=("$build/smoke-$t" "tests/fuzz/corpus/$t")   # libFuzzer adds to the first only
  else
    cp -n "tests/fuzz/corpus/$t"/* "$corpus"/ 2>/dev/null
    dirs=("$corpus")
  fi
  # libFuzzer counts whole seconds: a run takes about one second more than asked
  # shellcheck disable=SC2046
  "$bin" $(args "$t") -max_total_time="$seconds" -print_final_stats=1 \
    -artifact_prefix="$build/artifacts/$t-" "${dirs[@]}" >"$log" 2>&1
  rc=$?
  if [ "$mode" = smoke ]; then
    if [ $rc -eq 0 ]; then
      echo "ok - fuzz $t $seconds s, no crash"
    else
      echo "not ok - fuzz $t $seconds s: $(why "$log"); input in $build/artifacts/ (log: $log)"
      excerpt "$log" "$bin"
      failed=1
    fi
  elif [ $rc -eq 0 ]; then
    echo "fuzz $t: $seconds s, $(figures "$log")"
  else
    echo "fuzz $t: FAILED after $(figures "$log"): $(why "$log") (log: $log)"
    excerpt "$log" "$bin"
    failed=1
  fi
done
exit $failed
