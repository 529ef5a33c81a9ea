# SPDX-License-Identifier: BSD-2-Clause
# shellcheck shell=bash
# tgtd and istgt for tests/kmodsim/run.sh, on loopback only. Sourced; defines functions only.
#
# The harness keeps its own small copy instead of the Rust harness's targets (tests/it/target.rs,
# isboot-target) because its scenarios steer tgtd while the module is logged in: kill -9 and a
# restart on the same port (faults), a LUN map that comes back after the target (lunmap), the
# I_T nexus count (shutdown-live), an IPv6 portal on ::1 (ipv6-linklocal). The harness calls back
# into run.sh (--ctl) for those, so the target has to be a tgtd this shell controls.
#
# tgtd ignores SIGTERM and its control sockets (/var/run/tgtd/socket.N) are global: each tgtd
# gets its own control channel (-C), is stopped through it, and SIGKILL is the bounded fallback.

# wait_until SECONDS WHAT COMMAND...: COMMAND every 0.2 s until it succeeds, at most SECONDS.
wait_until() {
	local secs=$1 what=$2 tries
	shift 2
	tries=$((secs * 5))
	while [ "$tries" -gt 0 ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.2
		tries=$((tries - 1))
	done
	echo "timed out after ${secs}s waiting for $what" >&2
	return 1
}

# free_port [HOST]: a TCP port nothing listens on right now, on 127.0.0.1 or ::1.
free_port() {
	python3 - "${1:-127.0.0.1}" <<'PY'
import socket, sys
host = sys.argv[1]
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
s.bind((host, 0))
print(s.getsockname()[1])
PY
}

tgt_ctl() {
	timeout 20 tgtadm -C "$TGT_CTL" --lld iscsi "$@"
}

# tgt_listening HOST PORT
tgt_listening() {
	local h=$1
	[ "$h" = "::1" ] && h="\[::1\]"
	ss -Hltn "sport = :$2" | grep -q "$h:$2"
}

# tgtd_start DIR HOST PORT: tgtd with a portal on HOST (127.0.0.1 or ::1) port PORT, its log in
# DIR/tgtd.log. Sets TGT_PID, TGT_CTL, TGT_HOST, TGT_PORT. Tries other control channels when
# one is taken (another tgtd, or a stale socket of a killed one).
tgtd_start() {
	local dir=$1 host=$2 port=$3 portal attempt
	portal="$host:$port"
	[ "$host" = "::1" ] && portal="[::1]:$port"
	# shellcheck disable=SC2034 # for the caller (run.sh saves them for --ctl restart)
	TGT_HOST=$host TGT_PORT=$port
	for attempt in 1 2 3 4 5 6 7 8; do
		TGT_CTL=$(( (RANDOM * 32768 + RANDOM + attempt) % 20000 + 10000 ))
		[ -e "/var/run/tgtd/socket.$TGT_CTL" ] && continue
		tgtd -f -C "$TGT_CTL" --iscsi "portal=$portal" >> "$dir/tgtd.log" 2>&1 &
		TGT_PID=$!
		if wait_until 20 "tgtd control channel $TGT_CTL" tgt_ctl --op show --mode sys &&
			wait_until 10 "tgtd on $portal" tgt_listening "$host" "$port"; then
			return 0
		fi
		tgtd_stop
	done
	echo "tgtd did not start; its log:" >&2
	cat "$dir/tgtd.log" >&2
	return 1
}

# tgtd_stop: deletes every target, stops tgtd; SIGKILL when it is still there after 10 s.
tgtd_stop() {
	local t tries=50
	[ -n "${TGT_PID:-}" ] || return 0
	if kill -0 "$TGT_PID" 2>/dev/null; then
		for t in $(tgt_ctl --op show --mode target 2>/dev/null | sed -n 's/^Target \([0-9]*\):.*/\1/p'); do
			tgt_ctl --op delete --mode target --tid "$t" --force >/dev/null 2>&1 || true
		done
		tgt_ctl --op delete --mode system >/dev/null 2>&1 || true
		while [ "$tries" -gt 0 ] && kill -0 "$TGT_PID" 2>/dev/null; do
			sleep 0.2
			tries=$((tries - 1))
		done
		kill -KILL "$TGT_PID" 2>/dev/null || true
	fi
	wait "$TGT_PID" 2>/dev/null || true
	TGT_PID=""
}

# tgt_account USER PASS: accounts belong to the tgtd, not to a target; create each once.
tgt_account() {
	tgt_ctl --op show --mode account | grep -qx "[[:space:]]*$1" && return 0
	tgt_ctl --op new --mode account --user "$1" --password "$2"
}

# tgt_target TID IQN FILE [USER PASS [TARGET_USER TARGET_PASS]]: target IQN with FILE as LUN 1
# (LUN 0 is tgt's controller, so the module finds its boot LUN by number), open to every
# initiator, with CHAP and mutual CHAP when the credentials are given.
tgt_target() {
	local tid=$1 iqn=$2 file=$3
	tgt_ctl --op new --mode target --tid "$tid" -T "$iqn" &&
		tgt_ctl --op new --mode logicalunit --tid "$tid" --lun 1 -b "$file" &&
		tgt_ctl --op bind --mode target --tid "$tid" -I ALL || return 1
	if [ $# -ge 5 ]; then
		tgt_account "$4" "$5" &&
			tgt_ctl --op bind --mode account --tid "$tid" --user "$4" || return 1
	fi
	if [ $# -ge 7 ]; then
		tgt_account "$6" "$7" &&
			tgt_ctl --op bind --mode account --tid "$tid" --user "$6" --outgoing || return 1
	fi
}

# istgt_start DIR PORT IQN DISK AUTH [USER SECRET [TARGET_USER TARGET_SECRET]]: istgt serving
# DISK as LUN 0 of IQN on 127.0.0.1:PORT. AUTH is None, CHAP or "CHAP Mutual"; unlike tgtd,
# istgt refuses a login that skips the mutual step. ISTGT_DIGEST (default Auto) is istgt's
# UseDigest: "Header Data" makes it require CRC32C digests. Sets ISTGT_PID; stop it with SIGKILL (it
# keeps no state the scenarios need).
istgt_start() {
	local dir=$1 port=$2 iqn=$3 disk=$4 auth=$5 cred=""
	if [ $# -ge 9 ]; then
		cred="  Auth \"$6\" \"$7\" \"$8\" \"$9\""
	elif [ $# -ge 7 ]; then
		cred="  Auth \"$6\" \"$7\""
	fi
	printf '[AuthGroup1]\n%s\n[AuthGroup2]\n  Auth "nobody" "unused-secret-000"\n' "$cred" \
		> "$dir/istgt-auth.conf"
	# istgt puts NodeBase before a TargetName without a colon: split the IQN at its colon.
	cat > "$dir/istgt.conf" <<CONF
[Global]
  NodeBase "${iqn%%:*}"
  PidFile $dir/istgt.pid
  AuthFile $dir/istgt-auth.conf
  MediaDirectory $dir
  LogFacility "local7"
  Timeout 30
  NopInInterval 20
  DiscoveryAuthMethod None
  MaxSessions 16
  MaxConnections 4
[UnitControl]
  AuthMethod CHAP Mutual
  AuthGroup AuthGroup2
[PortalGroup1]
  Portal DA1 127.0.0.1:$port
[InitiatorGroup1]
  InitiatorName "ALL"
  Netmask 127.0.0.0/8
[LogicalUnit1]
  TargetName ${iqn#*:}
  Mapping PortalGroup1 InitiatorGroup1
  AuthMethod $auth
  AuthGroup AuthGroup1
  UseDigest ${ISTGT_DIGEST:-Auto}
  UnitType Disk
  QueueDepth 32
  LUN0 Storage $disk Auto
CONF
	istgt -c "$dir/istgt.conf" -D >> "$dir/istgt.log" 2>&1 &
	ISTGT_PID=$!
	if ! wait_until 20 "istgt on 127.0.0.1:$port" tgt_listening 127.0.0.1 "$port"; then
		cat "$dir/istgt.log" >&2
		kill -KILL "$ISTGT_PID" 2>/dev/null || true
		wait "$ISTGT_PID" 2>/dev/null || true
		return 1
	fi
}
