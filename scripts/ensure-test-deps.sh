#!/usr/bin/env bash
# Installs what the tests need when it can, and says clearly what it skipped
# when it cannot. Called by `make test`.
#
# Needed: redis-server (the Redis bridge tests run against a real server).
set -u

need_apt=()
if ! command -v redis-server >/dev/null 2>&1; then
	need_apt+=(redis-server)
fi

if [ ${#need_apt[@]} -eq 0 ]; then
	exit 0
fi

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
	echo "ensure-test-deps: installing ${need_apt[*]} with apt-get"
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get install -y --no-install-recommends "${need_apt[@]}" >/tmp/raftlease-apt.log 2>&1; then
		# The package lists may be missing on a fresh machine.
		apt-get update >>/tmp/raftlease-apt.log 2>&1 || true
		if ! apt-get install -y --no-install-recommends "${need_apt[@]}" >>/tmp/raftlease-apt.log 2>&1; then
			echo "ensure-test-deps: apt-get install ${need_apt[*]} FAILED; see /tmp/raftlease-apt.log" >&2
			tail -20 /tmp/raftlease-apt.log >&2
		fi
	fi
fi

for bin in "${need_apt[@]}"; do
	if ! command -v "$bin" >/dev/null 2>&1; then
		echo "ensure-test-deps: SKIPPED: $bin is not installed and could not be installed" \
			"(not root, or no apt-get). Tests that need it skip with a message;" \
			"with CI set they fail instead." >&2
	fi
done
exit 0
