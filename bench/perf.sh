#!/usr/bin/env bash
# Load-test harness for the JWT auth server (and its yardsticks), against servers already running
# on 127.0.0.1.
#
#   tools/perf.sh BASE                   one server: warm-up, then ROUNDS rounds of
#                                        GET /protected?token=... and POST /login
#   tools/perf.sh --compare BASE_A BASE_B
#                                        two servers, alternating A B A B ... for ROUNDS rounds;
#                                        prints the median per-round ratio A/B of req/s
#   tools/perf.sh --compare BASE_A1 BASE_B1 BASE_A2 BASE_B2 ...
#                                        several pairs (authd and its yardstick for each signing
#                                        algorithm, say), named by PAIRS="HS256 EdDSA ES256"; each
#                                        round runs A1 B1 A2 B2 ..., and each pair gets its median
#                                        per-round ratio of req/s and the ratio of its median p99s
#
#   BASE is e.g. http://127.0.0.1:18001 (only 127.0.0.1/localhost is accepted).
#
# Settings (environment):
#   DURATION=10     seconds per measured wrk run           CONNS=64    wrk connections
#   WARMUP=3        seconds of unmeasured wrk per endpoint  THREADS=1   wrk threads
#   ROUNDS=3        rounds (median reported)                ENDPOINTS="protected login"
#   WRK_CPU=0       CPU that wrk (and this script) run on
#   SERVER_CPU=1    CPU the server is expected to be pinned to; start it with
#                   `taskset -c 1 <server>`. Set PIN_SERVER=1 to have this script re-pin every
#                   thread of the listening process(es) and their children to SERVER_CPU.
#   BASIC_USER=user BASIC_PASS=password
#   LABEL=S         name used in the RUN/SUMMARY lines of single mode (letters, digits, _)
#   PAIRS="..."     --compare with several pairs: one name per pair (letters, digits, _); the
#                   RUN/SUMMARY labels are then A_<name> and B_<name>
#   SAME_TOKEN=0    1: in --compare, each B is sent the token A's /login gave (checked to answer
#                   200 first), so both servers check the very same token (same header, same
#                   claims); B must then hold A's key (same secret, or the same key file)
#
# Pinning: on a 2-core machine the server gets one core (SERVER_CPU) and wrk the other (WRK_CPU),
# so that neither steals cycles from the other and results do not depend on the scheduler.
# Each run reports how busy the server's core (cpu_srv, kernel work included) and wrk's core
# (cpu_wrk) were: cpu_srv ~100% means the server is the bottleneck; cpu_wrk ~100% with cpu_srv
# well below means the client is, and the figure is a lower bound on the server's capacity. It also
# reports steal time and the CPU used by other processes (others=, top_other=): the machine is
# shared, so read those before trusting a run.
#
# Latency: wrk is closed-loop (each connection sends the next request when the previous answer
# arrives), so at saturation p50 ~ CONNS / rps is mostly queueing; compare p99 across servers at
# the same CONNS, not as an absolute service time.
#
# Output: one "RUN ..." line per measured run, a summary per server, and in --compare mode the
# last line is machine-readable:   ratio protected A/B: X.XX
# (with several pairs, one line per pair:  ratio protected A/B NAME: X.XX p99 A/B: Y.YY)
# In single mode the last line is:  result protected_rps=... protected_p99_ms=... login_rps=...
set -euo pipefail

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-3}
CONNS=${CONNS:-64}
THREADS=${THREADS:-1}
ROUNDS=${ROUNDS:-3}
WRK_CPU=${WRK_CPU:-0}
SERVER_CPU=${SERVER_CPU:-1}
PIN_SERVER=${PIN_SERVER:-0}
SAME_TOKEN=${SAME_TOKEN:-0}
ENDPOINTS=${ENDPOINTS:-"protected login"}
BASIC_USER=${BASIC_USER:-user}
BASIC_PASS=${BASIC_PASS:-password}

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LUA="$HERE/perf-wrk.lua"
BASIC_B64=$(printf '%s:%s' "$BASIC_USER" "$BASIC_PASS" | base64 -w0)
CLK_TCK=$(getconf CLK_TCK)

die() { echo "perf.sh: $*" >&2; exit 1; }
command -v wrk >/dev/null || die "wrk not found"
command -v taskset >/dev/null || die "taskset not found"

# --- helpers -------------------------------------------------------------------------------

check_base() { # BASE -> port on stdout
  local base=${1%/}
  [[ $base =~ ^http://(127\.0\.0\.1|localhost):([0-9]+)$ ]] \
    || die "BASE must look like http://127.0.0.1:PORT (got '$1')"
  echo "${BASH_REMATCH[2]}"
}

server_pids() { # PORT -> pids listening on it, plus all their descendants (gunicorn workers)
  local port=$1 pids todo p kids
  pids=$(ss -ltnpH "( sport = :$port )" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u)
  todo=$pids
  while [[ -n $todo ]]; do
    kids=""
    for p in $todo; do kids+=" $(ps -o pid= --ppid "$p" 2>/dev/null || true)"; done
    todo=$(echo $kids)
    pids+=" $todo"
  done
  echo $pids | tr ' ' '\n' | sort -un | tr '\n' ' '
}

cpu_ticks() { # pids -> summed utime+stime (clock ticks) of those processes (all threads)
  local t=0 p st
  local -a f
  for p in "$@"; do
    st=$(cat "/proc/$p/stat" 2>/dev/null) || continue
    read -r -a f <<<"${st##*) }" # drop "pid (comm) " (comm may contain spaces)
    t=$((t + f[11] + f[12]))     # fields 14 and 15 of stat: utime, stime
  done
  echo $t
}

rss_hwm_kib() { # pids -> summed VmHWM (peak RSS) in KiB
  local t=0 p v
  for p in "$@"; do
    v=$(awk '/^VmHWM:/{print $2}' "/proc/$p/status" 2>/dev/null || true)
    t=$((t + ${v:-0}))
  done
  echo $t
}

affinity_note() { # pids -> warn if some thread is not pinned to SERVER_CPU
  local p tid a bad=0
  for p in "$@"; do
    for tid in /proc/$p/task/*; do
      a=$(taskset -cp "${tid##*/}" 2>/dev/null | awk -F': ' '{print $2}') || continue
      [[ $a == "$SERVER_CPU" ]] || bad=1
    done
  done
  if ((bad)); then
    echo "warning: server pids [$*] are not all pinned to CPU $SERVER_CPU" \
      "(start with 'taskset -c $SERVER_CPU ...' or set PIN_SERVER=1)" >&2
  fi
}

pin_server() { # pids -> pin every thread to SERVER_CPU
  local p
  for p in "$@"; do taskset -a -cp "$SERVER_CPU" "$p" >/dev/null; done
}

get_token() { # BASE -> token
  local body
  body=$(curl -sS -X POST -u "$BASIC_USER:$BASIC_PASS" "$1/login") || die "login to $1 failed"
  [[ $body =~ \"token\"[[:space:]]*:[[:space:]]*\"([^\"]+)\" ]] || die "no token in: $body"
  echo "${BASH_REMATCH[1]}"
}

check_200() { # BASE TOKEN
  local code
  code=$(curl -sS -o /dev/null -w '%{http_code}' "$1/protected?token=$2")
  [[ $code == 200 ]] || die "GET $1/protected?token=... answered $code, not 200"
}

snapshot() { # -> stdout: "C cpuN user nice system idle iowait irq softirq steal" and "P pid ticks"
  grep -E '^cpu[0-9]+ ' /proc/stat | sed 's/^/C /'
  awk 'FNR == 1 { p = FILENAME; gsub(/[^0-9]/, "", p); c = $0; sub(/^[^(]*\(/, "", c); sub(/\).*$/, "", c)
    gsub(/[^A-Za-z0-9_.:-]/, "_", c); sub(/^.*\) /, ""); print "P", p, $12 + $13, c }' \
    /proc/[0-9]*/stat 2>/dev/null || true
}

# run_wrk LABEL BASE ENDPOINT TOKEN SECONDS MEASURE(0|1)
# Prints "RUN label endpoint rps=... p50_ms=... p99_ms=... errors=... cpu figures"
#   srv_proc  CPU time charged to the server's processes / wall time (user+sys, not softirq)
#   cpu_srv   busy share of SERVER_CPU (100 - idle), including the kernel's loopback softirq work
#   cpu_wrk   busy share of WRK_CPU;  wrk_proc: CPU time of wrk itself
#   sirq      softirq share (both CPUs averaged);  steal: hypervisor steal (both CPUs averaged)
#   others    CPU used by other processes on the machine during the run (noise from neighbours);
#             top_other names the busiest of them
run_wrk() {
  local label=$1 base=$2 ep=$3 token=$4 secs=$5 measure=$6 url method port pids
  case $ep in
    protected) url="$base/protected?token=$token"; method=GET ;;
    login) url="$base/login"; method=POST ;;
    *) die "unknown endpoint $ep" ;;
  esac
  port=$(check_base "$base")
  pids=$(server_pids "$port")
  local out tf
  tf=$(mktemp)
  snapshot >"$tf.s0"
  local TIMEFORMAT='%R %U %S'
  { time WRK_METHOD=$method WRK_BASIC=$([[ $ep == login ]] && echo "$BASIC_B64") \
      taskset -c "$WRK_CPU" wrk -t"$THREADS" -c"$CONNS" -d"${secs}s" --timeout 5s \
      -s "$LUA" "$url" >"$tf" 2>&1; } 2>"$tf.time"
  snapshot >"$tf.s1"
  out=$(grep '^WRKRESULT' "$tf" || true)
  [[ -n $out ]] || { cat "$tf" >&2; rm -f "$tf" "$tf".*; die "wrk produced no result for $label $ep"; }
  local wall wu ws
  read -r wall wu ws <"$tf.time"
  if ((measure)); then
    awk -v label="$label" -v ep="$ep" -v out="$out" -v hz="$CLK_TCK" -v wall="$wall" \
        -v wu="$wu" -v ws="$ws" -v spids=" $pids " -v me="$$" -v scpu="cpu$SERVER_CPU" \
        -v wcpu="cpu$WRK_CPU" '
      FNR == NR { if ($1 == "P") t0[$2] = $3; else for (i = 3; i <= 10; i++) c0[$2, i] = $i; next }
      $1 == "P" {
        d = ($2 in t0) ? $3 - t0[$2] : $3 # a process born during the run: all its time
        if (index(spids, " " $2 " ")) srv += d
        else if ($2 != me) { oth += d; if (d > top_d) { top_d = d; top_p = $2 "(" $4 ")" } }
        next
      }
      {
        tot = 0; for (i = 3; i <= 10; i++) { x[i] = $i - c0[$2, i]; tot += x[i] }
        busy[$2] = 100 * (tot - x[6]) / tot; sirq += 100 * x[9] / tot; steal += 100 * x[10] / tot; n++
      }
      END {
        m = split(out, kv, " ")
        for (i = 2; i <= m; i++) { split(kv[i], a, "="); r[a[1]] = a[2] }
        errs = r["err_connect"] + r["err_read"] + r["err_write"] + r["err_status"] + r["err_timeout"]
        printf "RUN %s %s rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.1f requests=%d errors=%d (connect=%d read=%d write=%d status=%d timeout=%d)",
          label, ep, r["rps"], r["p50_us"]/1000, r["p90_us"]/1000, r["p99_us"]/1000, r["max_us"]/1000,
          r["requests"], errs, r["err_connect"], r["err_read"], r["err_write"], r["err_status"], r["err_timeout"]
        printf " srv_proc=%.0f%% cpu_srv=%.0f%% wrk_proc=%.0f%% cpu_wrk=%.0f%% sirq=%.0f%% steal=%.1f%% others=%.1f%% top_other=%s:%.1f%%\n",
          100 * srv / hz / wall, busy[scpu], 100 * (wu + ws) / wall, busy[wcpu], sirq / n, steal / n,
          100 * oth / hz / wall, (top_p == "" ? "-" : top_p), 100 * top_d / hz / wall
      }' "$tf.s0" "$tf.s1"
  fi
  rm -f "$tf" "$tf".*
}

# median of numbers on stdin
median() { sort -g | awk '{v[NR]=$1} END {if (NR==0) {print "nan"; exit} if (NR%2) print v[(NR+1)/2]; else print (v[NR/2]+v[NR/2+1])/2}'; }

field() { # LINE KEY -> value of key=value in LINE (strips % suffix)
  local re="(^| )$2=([^ ]+)"
  [[ $1 =~ $re ]] && echo "${BASH_REMATCH[2]%\%}"
}

prepare() { # BASE LABEL [TOKEN] -> sets TOKEN_<LABEL> (TOKEN, else one from BASE's /login)
  local base=$1 label=$2 port pids tok=${3:-}
  port=$(check_base "$base")
  pids=$(server_pids "$port")
  [[ -n $pids ]] || echo "warning: no process found listening on port $port (ss -ltnp)" >&2
  if ((PIN_SERVER)) && [[ -n $pids ]]; then pin_server $pids; fi
  [[ -n $pids ]] && affinity_note $pids
  [[ -n $tok ]] || tok=$(get_token "$base")
  check_200 "$base" "$tok"
  printf -v "TOKEN_$label" '%s' "$tok"
  echo "# $label = $base  pids=[${pids% }]  token=${tok:0:16}..."
}

warm() { # BASE LABEL
  local ep tokvar="TOKEN_$2"
  ((WARMUP > 0)) || return 0
  for ep in $ENDPOINTS; do run_wrk "$2" "$1" "$ep" "${!tokvar}" "$WARMUP" 0; done
}

summarize() { # LABEL, reads RUN lines from $RESULTS
  local label=$1 ep vals
  for ep in $ENDPOINTS; do
    vals=$(grep "^RUN $label $ep " "$RESULTS" || true)
    [[ -n $vals ]] || continue
    local rps p99 rmin rmax
    rps=$(while read -r l; do field "$l" rps; done <<<"$vals" | median)
    rmin=$(while read -r l; do field "$l" rps; done <<<"$vals" | sort -g | head -1)
    rmax=$(while read -r l; do field "$l" rps; done <<<"$vals" | sort -g | tail -1)
    p99=$(while read -r l; do field "$l" p99_ms; done <<<"$vals" | median)
    p50=$(while read -r l; do field "$l" p50_ms; done <<<"$vals" | median)
    scpu=$(while read -r l; do field "$l" cpu_srv; done <<<"$vals" | median)
    wcpu=$(while read -r l; do field "$l" cpu_wrk; done <<<"$vals" | median)
    oth=$(while read -r l; do field "$l" others; done <<<"$vals" | sort -g | tail -1)
    printf 'SUMMARY %s %s median_rps=%s (min %s max %s) median_p50_ms=%s median_p99_ms=%s cpu_srv=%s%% cpu_wrk=%s%% max_others=%s%%\n' \
      "$label" "$ep" "$rps" "$rmin" "$rmax" "$p50" "$p99" "$scpu" "$wcpu" "$oth"
    printf -v "MED_${label}_${ep}_rps" '%s' "$rps"
    printf -v "MED_${label}_${ep}_p99" '%s' "$p99"
  done
}

# --- main ----------------------------------------------------------------------------------

# This script (and curl) run on WRK_CPU too.
taskset -cp "$WRK_CPU" $$ >/dev/null

RESULTS=$(mktemp)
trap 'rm -f "$RESULTS"' EXIT

echo "# perf.sh: DURATION=${DURATION}s WARMUP=${WARMUP}s CONNS=$CONNS THREADS=$THREADS ROUNDS=$ROUNDS wrk@cpu$WRK_CPU server@cpu$SERVER_CPU endpoints='$ENDPOINTS' load=$(cut -d' ' -f1-3 /proc/loadavg)"

if [[ ${1:-} == --compare ]]; then
  shift
  (($# >= 2 && $# % 2 == 0)) || die "usage: $0 --compare BASE_A BASE_B [BASE_A2 BASE_B2 ...]"
  npairs=$(($# / 2))
  read -r -a names <<<"${PAIRS:-}"
  if ((npairs == 1)) && [[ -z ${PAIRS:-} ]]; then
    la=(A) lb=(B) names=("")
  else
    ((${#names[@]} == npairs)) || die "PAIRS must name each of the $npairs pairs"
    la=() lb=()
    for n in "${names[@]}"; do
      [[ $n =~ ^[A-Za-z0-9_]+$ ]] || die "PAIRS names must be letters, digits or _"
      la+=("A_$n") lb+=("B_$n")
    done
  fi
  bases=("${@%/}")
  for ((i = 0; i < npairs; i++)); do
    prepare "${bases[2 * i]}" "${la[i]}"
    tokvar="TOKEN_${la[i]}"
    if ((SAME_TOKEN)); then prepare "${bases[2 * i + 1]}" "${lb[i]}" "${!tokvar}"
    else prepare "${bases[2 * i + 1]}" "${lb[i]}"; fi
  done
  for ((i = 0; i < npairs; i++)); do
    warm "${bases[2 * i]}" "${la[i]}"
    warm "${bases[2 * i + 1]}" "${lb[i]}"
  done
  for ((r = 1; r <= ROUNDS; r++)); do
    for ((i = 0; i < npairs; i++)); do
      for s in A B; do
        if [[ $s == A ]]; then base=${bases[2 * i]} label=${la[i]}
        else base=${bases[2 * i + 1]} label=${lb[i]}; fi
        tokvar="TOKEN_$label"
        for ep in $ENDPOINTS; do
          run_wrk "$label" "$base" "$ep" "${!tokvar}" "$DURATION" 1 | sed "s/^/round=$r /" | tee -a "$RESULTS"
        done
      done
    done
  done
  sed -i 's/^round=[0-9]* //' "$RESULTS"
  for ((i = 0; i < npairs; i++)); do
    summarize "${la[i]}"
    summarize "${lb[i]}"
  done
  # per-round ratios A/B of each pair, then their median (and spread); the ratio of the median p99s
  last_lines=""
  for ((i = 0; i < npairs; i++)); do
    for ep in $ENDPOINTS; do
      ratios=$(paste <(grep "^RUN ${la[i]} $ep " "$RESULTS") <(grep "^RUN ${lb[i]} $ep " "$RESULTS") |
        while IFS=$'\t' read -r l1 l2; do
          awk -v a="$(field "$l1" rps)" -v b="$(field "$l2" rps)" 'BEGIN{printf "%.4f\n", a/b}'
        done)
      med=$(median <<<"$ratios")
      name=${names[i]:+ ${names[i]}}
      echo "# per-round $ep ratios A/B$name: $(echo $ratios)"
      if [[ -z $name ]]; then
        line=$(printf 'ratio %s A/B: %.2f' "$ep" "$med")
      else
        pa="MED_${la[i]}_${ep}_p99" pb="MED_${lb[i]}_${ep}_p99"
        line=$(printf 'ratio %s A/B%s: %.2f p99 A/B: %.2f (%s / %s ms)' "$ep" "$name" "$med" \
          "$(awk -v a="${!pa}" -v b="${!pb}" 'BEGIN{print a/b}')" "${!pa}" "${!pb}")
      fi
      if [[ $ep == protected ]]; then last_lines+="$line"$'\n'; else echo "$line"; fi
    done
  done
  printf '%s' "$last_lines"
else
  [[ $# -eq 1 ]] || die "usage: $0 BASE | $0 --compare BASE_A BASE_B"
  A=${1%/}
  LABEL=${LABEL:-S}
  [[ $LABEL =~ ^[A-Za-z0-9_]+$ ]] || die "LABEL must be letters, digits or _"
  prepare "$A" "$LABEL"
  warm "$A" "$LABEL"
  tokvar="TOKEN_$LABEL"
  for ((r = 1; r <= ROUNDS; r++)); do
    for ep in $ENDPOINTS; do
      run_wrk "$LABEL" "$A" "$ep" "${!tokvar}" "$DURATION" 1 | tee -a "$RESULTS"
    done
  done
  summarize "$LABEL"
  out="result"
  for ep in $ENDPOINTS; do
    v1="MED_${LABEL}_${ep}_rps"; v2="MED_${LABEL}_${ep}_p99"
    out+=" ${ep}_rps=${!v1:-nan} ${ep}_p99_ms=${!v2:-nan}"
  done
  echo "$out"
fi
