#!/usr/bin/env bash
# Installs what the jepsen harness's namespace mode needs (iptables; ip
# comes with iproute2) when running as root, and says what it skipped.
# Without them, `jepsen run --mode auto` falls back to the hooks mode.
set -u
if command -v iptables-restore >/dev/null 2>&1 && command -v ip >/dev/null 2>&1; then
	exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
	echo "ensure-jepsen-deps: not root or no apt-get: the harness will partition through the hooks mode" >&2
	exit 0
fi
export DEBIAN_FRONTEND=noninteractive
log=/tmp/raftlease-jepsen-apt.log
if ! apt-get install -y --no-install-recommends iptables iproute2 >"$log" 2>&1; then
	apt-get update >>"$log" 2>&1 || true
	if ! apt-get install -y --no-install-recommends iptables iproute2 >>"$log" 2>&1; then
		echo "ensure-jepsen-deps: apt-get install iptables FAILED (see $log): hooks mode only" >&2
	fi
fi
exit 0
