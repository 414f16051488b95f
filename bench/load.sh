#!/usr/bin/env bash
# Load, memory and start-up figures for authd on this machine, as in BENCHMARKS.md.
# The server runs pinned to one core (SERVER_CPU), wrk to the other (WRK_CPU). Loopback only,
# every run bounded in time.
#
#   bench/load.sh [SCENARIO...]     scenarios: protected verify login flood refresh startup forward
#                                   soak revoked algs (default: all but soak, revoked and algs)
# Settings (environment): DURATION=10 (seconds per wrk run), CONNS=64, SOAK_SECS=300, ROUNDS=3
#   (rounds of the side-by-side scenarios), REVOKED=10000 and YARDSTICK_PORT=18001 (revoked),
#   SERVER_CPU=1, WRK_CPU=0, AUTHD_BIN=target/release/authd (built if missing),
#   AXUM_LIMIT=bench/axum_limit/target/release/axum_limit (the yardstick, built if missing).
# Output: one line per scenario, `| scenario | req/s | p50 ms | p99 ms | errors | peak RSS MiB |`.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
SOAK_SECS=${SOAK_SECS:-300}
ROUNDS=${ROUNDS:-3}
SERVER_CPU=${SERVER_CPU:-1}
WRK_CPU=${WRK_CPU:-0}
BIN=${AUTHD_BIN:-target/release/authd}
LUA="$PWD/bench/wrk.lua"

die() { echo "load.sh: $*" >&2; exit 1; }
command -v wrk >/dev/null || die "wrk not found (Debian: apt-get install wrk)"
command -v taskset >/dev/null || die "taskset not found (util-linux)"
[[ -x $BIN ]] || cargo build --release --quiet
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

secret=$(head -c 48 /dev/urandom | base64 -w0)
hash=$(printf 'password' | "$BIN" hash-password)
# The users file in a folder of its own and the databases in another, as the systemd unit in
# contrib/ has them: the users file's folder is watched for changes, and a database beside it would
# wake the watcher on every write.
mkdir -p "$work/etc" "$work/db"
printf 'user:%s\n' "$hash" >"$work/etc/users"

# start_authd NAME [VAR=VALUE...]: starts authd pinned, sets PID and BASE. Every setting is the
# default (the throttle too: concurrent correct logins of one user are not taken for guesses), so
# the figures are what a user gets.
start_authd() {
  local name=$1; shift
  env -i PATH="$PATH" AUTHD_SECRET_KEY="$secret" AUTHD_USERS="$work/etc/users" \
    AUTHD_LISTEN=127.0.0.1:0 AUTHD_DATABASE_URL="sqlite://$work/db/$name.db" RUST_LOG=info "$@" \
    taskset -c "$SERVER_CPU" "$BIN" >"$work/$name.log" 2>&1 &
  PID=$!
  pids+=("$PID")
  local i
  for ((i = 0; i < 500; i++)); do
    BASE=$(grep -o 'listening on http://[0-9.:]*' "$work/$name.log" | sed 's/listening on //' || true)
    [[ -n $BASE ]] && return 0
    sleep 0.01
  done
  cat "$work/$name.log" >&2
  die "authd did not start"
}

stop_authd() { kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; }

peak_rss_mib() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# run_wrk URL SECONDS CONNS [METHOD] [AUTH] [COOKIE] -> RESULT line
run_wrk() {
  WRK_METHOD=${4:-GET} WRK_AUTH=${5:-} WRK_COOKIE=${6:-} taskset -c "$WRK_CPU" \
    wrk -t1 -c"$3" -d"${2}s" --timeout 5s -s "$LUA" "$1" | grep '^RESULT'
}

field() { sed -n "s/.*$2=\([^ ]*\).*/\1/p" <<<"$1"; }

row() { # NAME RESULT RSS
  printf '| %-28s | %9s | %7s | %7s | %6s | %6s |\n' "$1" "$(field "$2" rps)" \
    "$(field "$2" p50_ms)" "$(field "$2" p99_ms)" \
    "$(($(field "$2" errors) + $(field "$2" non2xx)))" "$3"
}

token_for() {
  curl -sS -X POST -u user:password "$1/login" | sed -n 's/.*"token":"\([^"]*\)".*/\1/p'
}

basic() { printf 'Basic %s' "$(printf '%s' "$1" | base64 -w0)"; }

# cookie_for BASE -> `NAME=VALUE` of a session cookie: the sign-in form as a browser sends it
# (the CSRF cookie and field from GET /signin, then POST /signin).
cookie_for() {
  local jar="$work/jar" field
  field=$(curl -sS -c "$jar" "$1/signin" | sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p')
  curl -sS -o /dev/null -b "$jar" -c "$jar" --data-urlencode username=user \
    --data-urlencode password=password --data-urlencode "csrf=$field" "$1/signin"
  awk '$6 ~ /authd_session$/ { print $6 "=" $7 }' "$jar"
}

# Starts the peak-RSS count afresh (Linux: writing 5 to clear_refs resets VmHWM), so that a peak
# is the peak of what follows rather than of start-up or an earlier scenario step.
reset_peak() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null || echo "# (cannot reset the peak RSS of $1)"; }

scenario_protected() {
  start_authd protected
  local tok r
  tok=$(token_for "$BASE")
  # The login's hashing memory (19 MiB) is given back after 2 s without logins; the peak below is
  # that of serving /protected alone.
  sleep 3
  reset_peak "$PID"
  run_wrk "$BASE/protected?token=$tok" 2 "$CONNS" >/dev/null
  r=$(run_wrk "$BASE/protected?token=$tok" "$DURATION" "$CONNS")
  row "GET /protected ($CONNS conns)" "$r" "$(peak_rss_mib "$PID")"
  stop_authd
}

# GET /protected with 10,000 revoked sessions held in memory (issue #14), side by side with the
# bare-axum yardstick (`axum_limit --mode hs256`) on the same core: ROUNDS alternating rounds. The
# revocations table is seeded directly between a first start (which makes the schema) and the
# measured one, which loads them; the token checked is a live one, so each request looks its sid
# up and misses, as a live token does.
scenario_revoked() {
  local n=${REVOKED:-10000} rounds=${ROUNDS:-3} i r y tok ypid
  [[ -x $AXUM_LIMIT ]] || die "no yardstick at $AXUM_LIMIT (build ../shared/bench/axum_limit, see BENCHMARKS.md)"
  start_authd revoked
  stop_authd
  python3 - "$work/db/revoked.db" "$n" <<'PY'
import os, sqlite3, sys, time
db, n = sys.argv[1], int(sys.argv[2])
now = int(time.time())
with sqlite3.connect(db) as c:
    c.executemany("INSERT INTO revocations (sid, revoked_at, until) VALUES (?, ?, ?)",
                  ((os.urandom(16).hex(), now, now + 1830) for _ in range(n)))
PY
  start_authd revoked
  grep -q "revocations loaded revoked_sessions=$n" "$work/revoked.log" ||
    die "authd did not load the $n revocations: $(grep -m1 'revocations loaded' "$work/revoked.log")"
  echo "# $n revoked sessions held in memory; RSS after start $(rss_kib "$PID") KiB"
  tok=$(token_for "$BASE")
  sleep 3
  reset_peak "$PID"
  local yport=${YARDSTICK_PORT:-18001} ybase
  ybase=http://127.0.0.1:$yport
  SECRET_KEY=$secret PORT=$yport taskset -c "$SERVER_CPU" "$AXUM_LIMIT" --mode hs256 >"$work/yardstick.log" 2>&1 &
  ypid=$!
  pids+=("$ypid")
  for ((i = 0; i < 500; i++)); do grep -q listening "$work/yardstick.log" && break; sleep 0.01; done
  grep -q listening "$work/yardstick.log" || die "the yardstick did not start: $(cat "$work/yardstick.log")"
  run_wrk "$BASE/protected?token=$tok" 2 "$CONNS" >/dev/null
  run_wrk "$ybase/protected?token=$tok" 2 "$CONNS" >/dev/null
  for ((i = 1; i <= rounds; i++)); do
    r=$(run_wrk "$BASE/protected?token=$tok" "$DURATION" "$CONNS")
    y=$(run_wrk "$ybase/protected?token=$tok" "$DURATION" "$CONNS")
    row "/protected, $n revoked (r$i)" "$r" "$(peak_rss_mib "$PID")"
    row "yardstick (r$i)" "$y" "-"
    echo "# round $i: authd / yardstick = $(awk -v a="$(field "$r" rps)" -v b="$(field "$y" rps)" 'BEGIN{printf "%.2f", a / b}')"
  done
  kill "$ypid" 2>/dev/null || true
  stop_authd
}

# GET /verify with a session cookie against the same with a Bearer token, side by side (issue
# 14: the cookie at least 0.8 times the token): Bearer, cookie, Bearer again.
scenario_verify() {
  start_authd verify
  local tok cookie rb1 rc rb2
  tok=$(token_for "$BASE")
  cookie=$(cookie_for "$BASE")
  [[ -n $cookie ]] || die "no session cookie from /signin"
  sleep 3
  run_wrk "$BASE/verify" 2 "$CONNS" GET "Bearer $tok" >/dev/null
  rb1=$(run_wrk "$BASE/verify" "$DURATION" "$CONNS" GET "Bearer $tok")
  row "GET /verify, Bearer ($CONNS)" "$rb1" "$(peak_rss_mib "$PID")"
  rc=$(run_wrk "$BASE/verify" "$DURATION" "$CONNS" GET "" "$cookie")
  row "GET /verify, cookie ($CONNS)" "$rc" "$(peak_rss_mib "$PID")"
  rb2=$(run_wrk "$BASE/verify" "$DURATION" "$CONNS" GET "Bearer $tok")
  row "GET /verify, Bearer again" "$rb2" "$(peak_rss_mib "$PID")"
  echo "# cookie / Bearer: $(awk -v c="$(field "$rc" rps)" -v a="$(field "$rb1" rps)" -v b="$(field "$rb2" rps)" 'BEGIN{printf "%.2f", 2 * c / (a + b)}') (issue 14 asks >= 0.8)"
  stop_authd
}

# The yardstick for /login: argon2id at authd's setting in a loop with its memory preallocated,
# on the server's core (`axum_limit --bench-tokens`).
AXUM_LIMIT=${AXUM_LIMIT:-bench/axum_limit/target/release/axum_limit}
if [[ $AXUM_LIMIT == bench/axum_limit/target/release/axum_limit && ! -x $AXUM_LIMIT ]]; then
  cargo build --release --quiet --manifest-path bench/axum_limit/Cargo.toml
fi

# GET /protected per signing algorithm (issue 15): for each of HS256, EdDSA and ES256, authd
# (`--demo`, the algorithm's key) and the yardstick checking the same algorithm with the same key
# (`axum_limit --mode hs256|eddsa|es256`), all six on the server's core, measured by
# bench/perf.sh --compare in ROUNDS rounds of HS256 authd, HS256 yardstick, EdDSA authd, ... Both
# servers of a pair are sent the same token, authd's (SAME_TOKEN=1).
scenario_algs() {
  local alg lower port=${ALGS_PORT:-18101} args=() names=() i
  [[ -x $AXUM_LIMIT ]] || die "no yardstick at $AXUM_LIMIT"
  for alg in HS256 EdDSA ES256; do
    lower=${alg,,}
    local env_alg=(AUTHD_SECRET_KEY="$secret") env_y=(SECRET_KEY="$secret")
    if [[ $alg != HS256 ]]; then
      "$BIN" keys generate --alg "$alg" --output "$work/$lower.pem"
      env_alg=(AUTHD_SIGNING_ALG="$alg" AUTHD_SIGNING_KEY_FILE="$work/$lower.pem")
      env_y=(KEY_FILE="$work/$lower.pem")
    fi
    env -i PATH="$PATH" "${env_alg[@]}" AUTHD_LISTEN="127.0.0.1:$port" RUST_LOG=info \
      taskset -c "$SERVER_CPU" "$BIN" --demo >"$work/authd-$lower.log" 2>&1 &
    pids+=("$!")
    env -i PATH="$PATH" "${env_y[@]}" PORT="$((port + 1))" \
      taskset -c "$SERVER_CPU" "$AXUM_LIMIT" --mode "$lower" >"$work/yardstick-$lower.log" 2>&1 &
    pids+=("$!")
    args+=("http://127.0.0.1:$port" "http://127.0.0.1:$((port + 1))")
    names+=("$alg")
    port=$((port + 2))
  done
  for ((i = 0; i < 500; i++)); do
    [[ $(cat "$work"/authd-*.log | grep -c 'listening on') == 3 &&
      $(cat "$work"/yardstick-*.log | grep -c listening) == 3 ]] && break
    sleep 0.01
  done
  ((i < 500)) || { tail -n 3 "$work"/*.log >&2; die "the servers did not all start"; }
  ENDPOINTS=protected SAME_TOKEN=1 PAIRS="${names[*]}" ROUNDS="$ROUNDS" DURATION="$DURATION" \
    CONNS="$CONNS" SERVER_CPU="$SERVER_CPU" WRK_CPU="$WRK_CPU" bench/perf.sh --compare "${args[@]}"
}

scenario_login() {
  local hashes c r ok i ratios
  [[ -x $AXUM_LIMIT ]] || die "no yardstick at $AXUM_LIMIT (build ../shared/bench/axum_limit, see BENCHMARKS.md)"
  start_authd login
  # Side by side, ROUNDS times for each connection count: the yardstick (argon2id alone, on the
  # server's core, just before), then authd's /login; the ratio of each pair, and their median.
  for c in 16 64; do
    ratios=""
    run_wrk "$BASE/login" 2 "$c" POST "$(basic user:password)" >/dev/null
    for ((i = 1; i <= ROUNDS; i++)); do
      hashes=$(taskset -c "$SERVER_CPU" "$AXUM_LIMIT" --bench-tokens 2>&1 |
        awk '/argon2id_m19456_t2_p1_ms/ { printf "%.1f", 1000 / $2 }')
      r=$(run_wrk "$BASE/login" "$DURATION" "$c" POST "$(basic user:password)")
      row "POST /login ($c conns, round $i)" "$r" "$(peak_rss_mib "$PID")"
      # Only answers 200 count: a 429 or 503 is no login.
      ok=$(awk -v n="$(field "$r" requests)" -v bad="$(field "$r" non2xx)" -v d="$DURATION" 'BEGIN{printf "%.1f", (n - bad) / d}')
      ratios+="$(awk -v a="$ok" -v h="$hashes" 'BEGIN{printf "%.2f", a / h}') "
      echo "# round $i: argon2id alone on cpu$SERVER_CPU $hashes hashes/s; successful logins $ok/s"
    done
    echo "# /login at $c conns against argon2id alone, per round: $ratios-> median $(tr ' ' '\n' <<<"$ratios" | grep . | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')"
  done
  stop_authd
}

scenario_flood() {
  start_authd flood
  local tok base_r r login_r
  tok=$(token_for "$BASE")
  run_wrk "$BASE/protected?token=$tok" 2 16 >/dev/null
  base_r=$(run_wrk "$BASE/protected?token=$tok" "$DURATION" 16)
  row "GET /protected alone (16)" "$base_r" "$(peak_rss_mib "$PID")"
  # A login flood with valid credentials (so that it is not throttled) keeps hashing saturated.
  run_wrk "$BASE/login" "$((DURATION + 2))" 128 POST "$(basic user:password)" >"$work/flood.out" &
  local wpid=$!
  sleep 1
  r=$(run_wrk "$BASE/protected?token=$tok" "$DURATION" 16)
  wait "$wpid" || true
  login_r=$(grep RESULT "$work/flood.out")
  row "GET /protected during flood" "$r" "$(peak_rss_mib "$PID")"
  row "POST /login flood (128)" "$login_r" "$(peak_rss_mib "$PID")"
  echo "# /protected under flood keeps $(awk -v a="$(field "$r" rps)" -v b="$(field "$base_r" rps)" 'BEGIN{printf "%.0f", 100 * a / b}')% of its throughput; p99 $(field "$r" p99_ms) ms; login answers: $(field "$login_r" non2xx) non-2xx (503 Server busy) of $(field "$login_r" requests)"
  stop_authd
}

# POST /refresh on the default SQLite file and on PostgreSQL (when one answers at 127.0.0.1:5432).
scenario_refresh() {
  local r
  start_authd refresh_sqlite AUTHD_DATABASE_URL="sqlite://$work/db/authd.db"
  r=$(taskset -c "$WRK_CPU" python3 bench/refresh_load.py "$BASE" 16 "$DURATION")
  row "POST /refresh (SQLite, 16)" "$r" "$(peak_rss_mib "$PID")"
  stop_authd
  if command -v psql >/dev/null && psql -h 127.0.0.1 -U postgres -d test -qc 'select 1' >/dev/null 2>&1; then
    psql -h 127.0.0.1 -U postgres -d test -qc 'DROP DATABASE IF EXISTS authd_bench' >/dev/null
    psql -h 127.0.0.1 -U postgres -d test -qc 'CREATE DATABASE authd_bench' >/dev/null
    start_authd refresh_pg AUTHD_DATABASE_URL=postgres://postgres@127.0.0.1:5432/authd_bench
    r=$(taskset -c "$WRK_CPU" python3 bench/refresh_load.py "$BASE" 16 "$DURATION")
    row "POST /refresh (PostgreSQL, 16)" "$r" "$(peak_rss_mib "$PID")"
    stop_authd
  else
    echo "# no PostgreSQL at 127.0.0.1:5432: refresh on PostgreSQL not measured"
  fi
}

scenario_startup() {
  local i
  for ((i = 0; i < 1000; i++)); do printf 'user%d:%s\n' "$i" "$hash"; done >"$work/users1000"
  local port=18555 best=999999 t
  for i in 1 2 3 4 5; do
    t=$(python3 - "$BIN" "$port" "$work/users1000" "$secret" "$SERVER_CPU" <<'PY'
import os, socket, subprocess, sys, time
binary, port, users, secret, cpu = sys.argv[1:]
env = {"PATH": os.environ["PATH"], "AUTHD_SECRET_KEY": secret, "AUTHD_USERS": users,
       "AUTHD_LISTEN": "127.0.0.1:" + port, "RUST_LOG": "warn",
       "AUTHD_DATABASE_URL": "sqlite://" + os.path.dirname(users) + "/startup.db"}
t0 = time.perf_counter()
p = subprocess.Popen(["taskset", "-c", cpu, binary], env=env, stdout=subprocess.DEVNULL)
try:
    deadline = t0 + 5
    while time.perf_counter() < deadline:
        try:
            s = socket.create_connection(("127.0.0.1", int(port)), timeout=1)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if s.recv(64).startswith(b"HTTP/1.1 200"):
                print("%.1f" % ((time.perf_counter() - t0) * 1000))
                break
        except OSError:
            time.sleep(0.0005)
finally:
    p.terminate(); p.wait()
PY
)
    [[ -n $t ]] && best=$(awk -v a="$best" -v b="$t" 'BEGIN{print (b < a) ? b : a}')
  done
  echo "# start-up to first /healthz 200 with 1,000 users: best of 5 = $best ms"
}

scenario_soak() {
  start_authd soak
  local tok start_rss end_rss i samples=()
  tok=$(token_for "$BASE")
  run_wrk "$BASE/protected?token=$tok" 5 "$CONNS" >/dev/null
  run_wrk "$BASE/protected?token=$tok" "$SOAK_SECS" "$CONNS" >"$work/soak-p.out" &
  local w1=$!
  run_wrk "$BASE/login" "$SOAK_SECS" 2 POST "$(basic user:password)" >"$work/soak-l.out" &
  local w2=$!
  # Warm-up is the first 10 s of the mixed load (the hashing thread's 19 MiB is taken by the
  # first login and kept while logins keep coming); growth is measured from there.
  for ((i = 0; i < SOAK_SECS / 10; i++)); do sleep 10; samples+=("$(rss_kib "$PID")"); done
  start_rss=${samples[0]}
  wait "$w1" "$w2" || true
  end_rss=$(rss_kib "$PID")
  row "soak /protected (${SOAK_SECS}s)" "$(grep RESULT "$work/soak-p.out")" "$(peak_rss_mib "$PID")"
  row "soak /login (2 conns)" "$(grep RESULT "$work/soak-l.out")" "$(peak_rss_mib "$PID")"
  echo "# soak RSS KiB every 10 s: ${samples[*]}"
  echo "# soak RSS growth after warm-up: $start_rss -> $end_rss KiB ($(awk -v a="$start_rss" -v b="$end_rss" 'BEGIN{printf "%+.1f", 100 * (b - a) / a}')%)"
  stop_authd
}

# Forward auth as the README configures it: nginx (one worker) and authd together on the server's
# core, wrk on the other. The same nginx also serves a copy of the README's site whose auth
# locations answer `return 200` themselves: the zero-cost auth server, the limit of this setup.
# Rounds alternate zero-cost, authd without a rule (`/`), authd with `allowed_groups` (`/admin/`);
# the medians and their ratios are printed.
scenario_forward() {
  local nginx_bin front zero app block zero_block r i kind
  nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
  [[ -x $nginx_bin ]] || die "nginx not found (Debian: apt-get install nginx)"
  printf 'admins: user\n' >"$work/etc/groups"
  start_authd forward AUTHD_GROUPS="$work/etc/groups"
  local tok
  tok=$(token_for "$BASE")
  front=18611 zero=18612 app=18613
  block=$(awk '/<!-- tested: nginx-groups -->/ { on = 1; next } on && /^```nginx/ { inb = 1; next }
               inb && /^```/ { exit } inb { print }' README.md)
  [[ -n $block ]] || die "no nginx-groups block in README.md"
  block=${block//server 127.0.0.1:5000;/server ${BASE#http://};}
  block=${block//proxy_pass http:\/\/127.0.0.1:8080;/proxy_pass http:\/\/127.0.0.1:$app;}
  # The zero-cost copy: no upstream for authd, each auth location answers 200 itself.
  zero_block=$(sed -e '/^upstream authd {/,/^}/d' -e 's#proxy_pass http://authd/verify[^;]*;#return 200;#' <<<"$block")
  block=${block//listen 80;/listen 127.0.0.1:$front;}
  zero_block=${zero_block//listen 80;/listen 127.0.0.1:$zero;}
  mkdir -p "$work/nginx"
  cat >"$work/nginx/nginx.conf" <<CONF
daemon off; master_process off; worker_processes 1; pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $work/nginx/cb; proxy_temp_path $work/nginx/px;
  fastcgi_temp_path $work/nginx/fc; uwsgi_temp_path $work/nginx/uw; scgi_temp_path $work/nginx/sc;
$block
$zero_block
  server { listen 127.0.0.1:$app; access_log off; location / { return 200 "app\n"; } }
}
CONF
  taskset -c "$SERVER_CPU" "$nginx_bin" -p "$work/nginx" -c "$work/nginx/nginx.conf" \
    -e "$work/nginx/error.log" >/dev/null 2>&1 &
  pids+=("$!")
  for ((i = 0; i < 100; i++)); do
    curl -s -o /dev/null "http://127.0.0.1:$zero/" && break
    sleep 0.05
  done
  local auth="Bearer $tok"
  for url in "http://127.0.0.1:$zero/admin/" "http://127.0.0.1:$front/" "http://127.0.0.1:$front/admin/"; do
    [[ $(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: $auth" "$url") == 200 ]] ||
      { cat "$work/nginx/error.log" >&2; die "forward auth: $url did not answer 200"; }
  done
  if [[ -n ${FORWARD_HOLD:-} ]]; then
    # For profiling: keep both running and print where they are.
    echo "# holding: zero http://127.0.0.1:$zero/admin/ plain http://127.0.0.1:$front/ groups http://127.0.0.1:$front/admin/ authd pid $PID; token in $work/token"
    printf '%s' "$tok" >"$work/token"
    sleep "$FORWARD_HOLD"
  fi
  declare -A rps p99
  for ((i = 0; i < ROUNDS; i++)); do
    for kind in zero plain groups; do
      case $kind in
        zero) url="http://127.0.0.1:$zero/admin/" ;;
        plain) url="http://127.0.0.1:$front/" ;;
        groups) url="http://127.0.0.1:$front/admin/" ;;
      esac
      r=$(run_wrk "$url" "$DURATION" "$CONNS" GET "$auth")
      row "forward auth: $kind (round $((i + 1)))" "$r" "$(peak_rss_mib "$PID")"
      rps[$kind]+="$(field "$r" rps) "
      p99[$kind]+="$(field "$r" p99_ms) "
    done
  done
  median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
  local z zp
  z=$(median "${rps[zero]}") zp=$(median "${p99[zero]}")
  for kind in plain groups; do
    echo "# forward auth $kind: median $(median "${rps[$kind]}") req/s against zero-cost $z: $(awk -v a="$(median "${rps[$kind]}")" -v b="$z" 'BEGIN{printf "%.2f", a / b}')x; p99 $(median "${p99[$kind]}") ms against $zp: $(awk -v a="$(median "${p99[$kind]}")" -v b="$zp" 'BEGIN{printf "%.2f", a / b}')x"
  done
  stop_authd
}

scenarios=("$@")
[[ ${#scenarios[@]} -gt 0 ]] || scenarios=(protected verify login flood refresh startup forward)
echo "# authd $("$BIN" --version) on $(nproc) cores; server on cpu$SERVER_CPU, wrk on cpu$WRK_CPU; ${DURATION}s runs; load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '| %-28s | %9s | %7s | %7s | %6s | %6s |\n' scenario "req/s" "p50 ms" "p99 ms" errors "RSS MiB"
for s in "${scenarios[@]}"; do "scenario_$s"; done
