#!/usr/bin/env bash
# bench/compare.sh: raftlease, etcd and Redis side by side, on one machine,
# in one run, through each system's network API (make bench-compare).
#
# It starts, in a temp dir:
#   - a 3-node leasenode cluster (agents, fsync on, the lan profile);
#   - a 3-node etcd cluster (Debian's etcd-server; installed with apt-get
#     when missing and running as root; skipped with a message otherwise);
#   - redis-server with appendonly yes, appendfsync everysec (the common
#     production setting), and, unless REDIS_ALWAYS=0, a second one with
#     appendfsync always (a disk write per command, as raftlease and etcd do);
# then runs `leasenode bench` against each with the same workloads and
# callers, interleaved (every store for one setting before the next
# setting), and prints one markdown table with ops/s, p50, p99 and the
# ratios. Every process it starts is stopped on exit (trap).
#
# Settings (environment): DURATION (5s), WARMUP (500ms), CALLERS (1,16,64),
# WORKLOADS (acquire-release,renew), REDIS_ALWAYS (1), SKIP_ETCD (0),
# OUT (also write the report to this file), KEEP (1: keep the temp dir),
# GO (go).
set -euo pipefail

cd "$(dirname "$0")/.."
DURATION=${DURATION:-5s}
WARMUP=${WARMUP:-500ms}
CALLERS=${CALLERS:-1,16,64}
WORKLOADS=${WORKLOADS:-acquire-release,renew}
REDIS_ALWAYS=${REDIS_ALWAYS:-1}
SKIP_ETCD=${SKIP_ETCD:-0}
GO=${GO:-go}

work=$(mktemp -d "${TMPDIR:-/tmp}/raftlease-compare.XXXXXX")
pids=()

log() { echo "compare: $*" >&2; }

cleanup() {
	local status=$?
	trap - EXIT
	trap "" INT TERM # finish cleaning up even if interrupted again
	local pid
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		for _ in $(seq 100); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	if [ "${KEEP:-0}" = 1 ]; then
		log "kept $work"
	else
		rm -rf "$work"
	fi
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME CMD ARGS...: runs CMD in the background, output to
# $work/NAME.log, and remembers its pid for cleanup.
start() {
	local name=$1
	shift
	"$@" >"$work/$name.log" 2>&1 &
	pids+=("$!")
}

used_ports=" "
# free_port: a loopback port nothing listens on, not handed out before.
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 40000))
		case $used_ports in *" $p "*) continue ;; esac
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			used_ports+="$p "
			echo "$p"
			return
		fi
	done
}

# wait_for WHAT SECONDS CMD...: polls CMD until it succeeds.
wait_for() {
	local what=$1 secs=$2
	shift 2
	local deadline=$((SECONDS + secs))
	until "$@" >/dev/null 2>&1; do
		if [ "$SECONDS" -ge "$deadline" ]; then
			log "timed out waiting for $what; its logs are in $work (set KEEP=1 to keep them)"
			tail -n 20 "$work"/*.log >&2 || true
			return 1
		fi
		sleep 0.2
	done
}

# ---- leasenode ----
log "building leasenode"
LN=$work/leasenode
"$GO" build -o "$LN" ./cmd/leasenode

ln_http=()
ln_raft=()
for i in 0 1 2; do
	ln_http+=("127.0.0.1:$(free_port)")
	ln_raft+=("127.0.0.1:$(free_port)")
done
for i in 0 1 2; do
	args=(agent --id "n$i" --data-dir "$work/leasenode-n$i" --raft-addr "${ln_raft[$i]}" --http-addr "${ln_http[$i]}" --log-level warn)
	if [ "$i" = 0 ]; then
		args+=(--bootstrap)
	else
		args+=(--join "${ln_http[0]}")
	fi
	start "leasenode-n$i" "$LN" "${args[@]}"
	if [ "$i" = 0 ]; then
		wait_for "leasenode n0" 60 "$LN" status --addr "${ln_http[0]}" --timeout 2s
	fi
done
LN_ADDR=$(IFS=,; echo "${ln_http[*]}")
ln_ready() {
	local out
	out=$("$LN" status --addr "$LN_ADDR" -o json --timeout 2s) || return 1
	[ "$(grep -o '"raft_addr"' <<<"$out" | wc -l)" -eq 3 ] && grep -q '"leader":{' <<<"$out"
}
wait_for "a 3-node leasenode cluster" 90 ln_ready
log "leasenode: 3 agents at $LN_ADDR"

# ---- Redis ----
REDIS=$(command -v redis-server || true)
redis_labels=()
redis_addrs=()
if [ -z "$REDIS" ]; then
	log "SKIPPING Redis: redis-server not found (apt-get install redis-server)"
else
	modes=(everysec)
	[ "$REDIS_ALWAYS" = 1 ] && modes+=(always)
	for mode in "${modes[@]}"; do
		port=$(free_port)
		mkdir -p "$work/redis-$mode"
		start "redis-$mode" "$REDIS" --port "$port" --bind 127.0.0.1 --dir "$work/redis-$mode" \
			--appendonly yes --appendfsync "$mode" --save "" --daemonize no --maxmemory-policy noeviction
		redis_ping() { [ "$(printf 'PING\r\n' | timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1; cat >&3; head -c 5 <&3")" = "+PONG" ]; }
		wait_for "redis-server ($mode)" 30 redis_ping "$port"
		label=redis
		[ "$mode" = always ] && label=redis-always
		redis_labels+=("$label")
		redis_addrs+=("redis://127.0.0.1:$port")
		log "redis ($label): appendonly yes, appendfsync $mode on port $port"
	done
fi

# ---- etcd ----
ETCD=$(command -v etcd || true)
ETCD_ADDR=
if [ "$SKIP_ETCD" = 1 ]; then
	log "SKIPPING etcd: SKIP_ETCD=1"
	ETCD=
elif [ -z "$ETCD" ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		log "etcd not found: apt-get install -y etcd-server (Debian's package may also start its own etcd service on 2379; this script uses its own processes)"
		if ! DEBIAN_FRONTEND=noninteractive apt-get install -y etcd-server >"$work/apt.log" 2>&1; then
			apt-get update >>"$work/apt.log" 2>&1 || true
			DEBIAN_FRONTEND=noninteractive apt-get install -y etcd-server >>"$work/apt.log" 2>&1 || true
		fi
		ETCD=$(command -v etcd || true)
		[ -z "$ETCD" ] && log "SKIPPING etcd: apt-get install etcd-server failed: $(tail -n 3 "$work/apt.log" | tr '\n' ' ')"
	else
		log "SKIPPING etcd: no etcd binary, and not root with apt-get to install Debian's etcd-server"
	fi
fi
if [ -n "$ETCD" ]; then
	etcd_client=()
	etcd_peer=()
	for i in 0 1 2; do
		etcd_client+=("127.0.0.1:$(free_port)")
		etcd_peer+=("127.0.0.1:$(free_port)")
	done
	cluster="e0=http://${etcd_peer[0]},e1=http://${etcd_peer[1]},e2=http://${etcd_peer[2]}"
	for i in 0 1 2; do
		start "etcd-e$i" "$ETCD" --name "e$i" --data-dir "$work/etcd-e$i" \
			--listen-client-urls "http://${etcd_client[$i]}" --advertise-client-urls "http://${etcd_client[$i]}" \
			--listen-peer-urls "http://${etcd_peer[$i]}" --initial-advertise-peer-urls "http://${etcd_peer[$i]}" \
			--initial-cluster "$cluster" --initial-cluster-token raftlease-compare --initial-cluster-state new \
			--logger zap --log-level warn
	done
	etcd_ready() {
		local i
		for i in 0 1 2; do
			curl -sf "http://${etcd_client[$i]}/health" | grep -q '"health":"true"' || return 1
		done
	}
	wait_for "a 3-node etcd cluster" 60 etcd_ready
	ETCD_ADDR="etcd://${etcd_client[0]},etcd://${etcd_client[1]},etcd://${etcd_client[2]}"
	log "etcd: $("$ETCD" --version | head -n 1), 3 members at $ETCD_ADDR (fsync on, the default)"
fi

# ---- runs ----
labels=(raftlease)
addrs=("$LN_ADDR")
if [ -n "$ETCD_ADDR" ]; then
	labels+=(etcd)
	addrs+=("$ETCD_ADDR")
fi
labels+=("${redis_labels[@]}")
addrs+=("${redis_addrs[@]}")

results=$work/results.jsonl
: >"$results"
load_before=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
IFS=, read -r -a wl <<<"$WORKLOADS"
IFS=, read -r -a cs <<<"$CALLERS"
for w in "${wl[@]}"; do
	for c in "${cs[@]}"; do
		for k in "${!labels[@]}"; do
			log "${labels[$k]}: $w, $c callers, $DURATION"
			# In the background and waited for, so that Ctrl-C or SIGTERM
			# interrupts the wait and the trap runs at once.
			"$LN" bench --addr "${addrs[$k]}" --label "${labels[$k]}" --workload "$w" --callers "$c" \
				--duration "$DURATION" --warmup "$WARMUP" -o json >>"$results" &
			pids+=("$!")
			wait "$!"
		done
	done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")

# ---- report ----
report() {
	echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') by bench/compare.sh (DURATION=$DURATION, WARMUP=$WARMUP per setting, closed loop)."
	echo
	echo "- machine: $(uname -srm), $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | sed 's/^ *//')), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo 2>/dev/null); load average $load_before before, $load_after after"
	echo "- raftlease: 3 leasenode agents ($(git rev-parse --short HEAD 2>/dev/null || echo "?")), fsync on, one disk, $("$GO" version | cut -d' ' -f3)"
	[ -n "$ETCD_ADDR" ] && echo "- etcd: $("$ETCD" --version | head -n 1 | sed 's/etcd Version: //'), 3 members, fsync on, through its v3 JSON gateway"
	[ -n "$REDIS" ] && echo "- redis: $("$REDIS" --version | cut -d' ' -f3 | sed 's/v=//'), one server, appendonly yes; redis = appendfsync everysec, redis-always = appendfsync always"
	echo "- all on loopback, every process on the same machine; ratios are of ops/s (above 1: raftlease does more)"
	echo
	awk -v labels="${labels[*]}" '
	function field(line, key,   re, v) {
		re = "\"" key "\":(\"[^\"]*\"|[-0-9.eE+]+)"
		if (!match(line, re)) return ""
		v = substr(line, RSTART + length(key) + 3, RLENGTH - length(key) - 3)
		gsub(/"/, "", v)
		return v
	}
	function fmt(v) { return v == "" ? "–" : sprintf("%.0f", v) }
	function ms(v) { return v == "" ? "–" : sprintf("%.2f ms", v) }
	function ratio(a, b) { return (a == "" || b == "" || b + 0 == 0) ? "–" : sprintf("%.2f×", a / b) }
	{
		key = field($0, "workload") SUBSEP field($0, "callers") SUBSEP field($0, "store")
		ops[key] = field($0, "ops_per_sec"); p50[key] = field($0, "p50_ms"); p99[key] = field($0, "p99_ms")
		errs[key] = field($0, "errors")
		rk = field($0, "workload") SUBSEP field($0, "callers")
		if (!(rk in seen)) { seen[rk] = 1; order[++rows] = rk }
	}
	END {
		n = split(labels, st, " ")
		head = "| workload | callers |"; sep = "|---|---:|"
		for (i = 1; i <= n; i++) { head = head " " st[i] " ops/s | p50 | p99 |"; sep = sep "---:|---:|---:|" }
		for (i = 2; i <= n; i++) { head = head " raftlease/" st[i] " |"; sep = sep "---:|" }
		print head; print sep
		for (r = 1; r <= rows; r++) {
			split(order[r], wc, SUBSEP)
			line = "| " wc[1] " | " wc[2] " |"
			for (i = 1; i <= n; i++) {
				k = order[r] SUBSEP st[i]
				note = (errs[k] != "" && errs[k] + 0 > 0) ? " (" errs[k] " errors)" : ""
				line = line " " fmt(ops[k]) note " | " ms(p50[k]) " | " ms(p99[k]) " |"
			}
			base = ops[order[r] SUBSEP "raftlease"]
			for (i = 2; i <= n; i++) line = line " " ratio(base, ops[order[r] SUBSEP st[i]]) " |"
			print line
		}
	}' "$results"
	echo
	echo "acquire-release: one op is an acquire and a release of the caller's own name (two replicated, fsynced writes on raftlease and etcd; two Lua scripts on Redis)."
	echo "renew: one op is one renewal of the caller's held lease; on raftlease a replicated, fsynced write; on etcd a lease keepalive, which the etcd leader answers from memory (not replicated through Raft, not fsynced); on Redis a Lua script."
}
if [ -n "${OUT:-}" ]; then
	report | tee "$OUT"
else
	report
fi
