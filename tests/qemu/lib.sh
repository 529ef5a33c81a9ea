# shellcheck shell=bash
# SPDX-License-Identifier: BSD-2-Clause
# Shell helpers shared by tests/demo.sh, tests/isbootctl/boot-targets.sh and tests/qemu/run.sh:
# bounded waits, the test harness's targets (target_start), a FreeBSD-style boot disk. Source it;
# it defines functions only.
#
# tgtd ignores SIGTERM and keeps its control socket in /var/run/tgtd/socket.N, shared by every
# network namespace, so each instance gets its own random control channel (-C) and is stopped
# through it, with SIGKILL as the bounded fallback.

# wait_until SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.2 s, fails after SECONDS.
wait_until() {
	_secs=$1 _what=$2
	shift 2
	_tries=$((_secs * 5))
	while [ "$_tries" -gt 0 ]; do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.2
		_tries=$((_tries - 1))
	done
	echo "timed out after ${_secs}s waiting for: $_what" >&2
	return 1
}

# target_start DIR ARGS...: starts `isboot-target ARGS...` (tests/target/main.rs: a target set up
# by the Rust test harness, as the integration tests use it) in the background, inside the network
# namespace $TARGET_NETNS when that is set, and waits until it serves. Sets TARGET_PORT,
# TARGET_IQN, TARGET_LUN and TARGET_DISK. The target lives while this shell holds its input
# open; target_stop_all stops every target started so far (and the target stops by itself when
# this shell dies). $ISBOOT_TARGET is the binary. Its log goes to DIR/targetN.log.
TARGET_PIDS=() TARGET_FDS=()
target_start() {
	_dir=$1
	shift
	_n=${#TARGET_PIDS[@]}
	_base="$_dir/target$_n"
	rm -f "$_base.in"
	mkfifo "$_base.in"
	${TARGET_NETNS:+ip netns exec "$TARGET_NETNS"} "$ISBOOT_TARGET" "$@" --log "$_base.log" \
		< "$_base.in" > "$_base.out" 2> "$_base.err" &
	TARGET_PIDS+=("$!")
	# Opening the write end waits for the target to open the read end, which it has done
	# before it runs.
	exec {_fd}> "$_base.in"
	TARGET_FDS+=("$_fd")
	# A cold LIO image build downloads a kernel package; a guest boot takes seconds under TCG.
	wait_until 900 "isboot-target $1 ready" sh -c "grep -qx ready '$_base.out' || ! kill -0 $!"
	if ! grep -qx ready "$_base.out"; then
		echo "isboot-target $* did not start:" >&2
		cat "$_base.err" >&2
		return 1
	fi
	TARGET_PORT=$(sed -n 's/^port=//p' "$_base.out")
	TARGET_IQN=$(sed -n 's/^iqn=//p' "$_base.out")
	TARGET_LUN=$(sed -n 's/^lun=//p' "$_base.out")
	TARGET_DISK=$(sed -n 's/^disk=//p' "$_base.out")
}

# target_stop_all: closes every target's input, waits up to 30 s for each to stop, then kills.
target_stop_all() {
	for _fd in ${TARGET_FDS[@]+"${TARGET_FDS[@]}"}; do exec {_fd}>&-; done
	for _pid in ${TARGET_PIDS[@]+"${TARGET_PIDS[@]}"}; do
		_tries=150
		while [ "$_tries" -gt 0 ] && kill -0 "$_pid" 2>/dev/null; do
			sleep 0.2
			_tries=$((_tries - 1))
		done
		kill -KILL "$_pid" 2>/dev/null || true
		wait "$_pid" 2>/dev/null || true
	done
	TARGET_PIDS=() TARGET_FDS=()
}

# tgt_start DIR PORT [NETNS]: starts tgtd on 127.0.0.1:PORT (inside NETNS when given).
# Sets TGT_CTL, TGT_PID, TGT_NSEXEC. Retries other control channels when one is taken.
tgt_start() {
	_dir=$1 _port=$2 _ns=${3:-}
	TGT_NSEXEC=""
	if [ -n "$_ns" ]; then TGT_NSEXEC="ip netns exec $_ns"; fi
	_attempt=0
	while [ "$_attempt" -lt 8 ]; do
		_attempt=$((_attempt + 1))
		TGT_CTL=$(( (($$ * 7 + _attempt * 131 + $(date +%N | sed 's/^0*//;s/^$/0/')) % 20000) + 10000 ))
		if [ -e "/var/run/tgtd/socket.$TGT_CTL" ]; then continue; fi
		$TGT_NSEXEC tgtd -f -C "$TGT_CTL" --iscsi "portal=127.0.0.1:$_port" >>"$_dir/tgtd.log" 2>&1 &
		TGT_PID=$!
		if wait_until 20 "tgtd control channel $TGT_CTL" tgt_adm --op show --mode sys; then
			if wait_until 10 "tgtd listening on 127.0.0.1:$_port" tgt_listening "$_port"; then
				return 0
			fi
		fi
		tgt_stop
	done
	echo "tgtd did not start; its log:" >&2
	cat "$_dir/tgtd.log" >&2
	return 1
}

tgt_listening() {
	$TGT_NSEXEC ss -Hltn "sport = :$1" | grep -q "127.0.0.1:$1"
}

tgt_adm() {
	timeout 20 tgtadm -C "$TGT_CTL" --lld iscsi "$@"
}

# tgt_add TID IQN BACKING_FILE [USER PASS [MUTUAL_USER MUTUAL_PASS]]: a target whose LUN 1 is
# BACKING_FILE (LUN 0 is tgt's controller), open to every initiator, with optional (mutual) CHAP.
tgt_add() {
	_tid=$1 _iqn=$2 _file=$3
	tgt_adm --op new --mode target --tid "$_tid" -T "$_iqn" &&
		tgt_adm --op new --mode logicalunit --tid "$_tid" --lun 1 -b "$_file" &&
		tgt_adm --op bind --mode target --tid "$_tid" -I ALL || return 1
	if [ $# -ge 5 ]; then
		tgt_account "$4" "$5" && tgt_adm --op bind --mode account --tid "$_tid" --user "$4" || return 1
	fi
	if [ $# -ge 7 ]; then
		tgt_account "$6" "$7" && tgt_adm --op bind --mode account --tid "$_tid" --user "$6" --outgoing || return 1
	fi
}

# tgt_account USER PASS: accounts are global to a tgtd; several targets may share one.
tgt_account() {
	if tgt_adm --op show --mode account | grep -qx "[[:space:]]*$1"; then return 0; fi
	tgt_adm --op new --mode account --user "$1" --password "$2"
}

# tgt_stop: deletes every target and stops tgtd; SIGKILL if it is still there after 10 s.
tgt_stop() {
	[ -n "${TGT_PID:-}" ] || return 0
	if kill -0 "$TGT_PID" 2>/dev/null; then
		for _t in $(tgt_adm --op show --mode target 2>/dev/null | sed -n 's/^Target \([0-9]*\):.*/\1/p'); do
			tgt_adm --op delete --mode target --tid "$_t" --force >/dev/null 2>&1 || true
		done
		tgt_adm --op delete --mode system >/dev/null 2>&1 || true
		_tries=50
		while [ "$_tries" -gt 0 ] && kill -0 "$TGT_PID" 2>/dev/null; do
			sleep 0.2
			_tries=$((_tries - 1))
		done
		kill -KILL "$TGT_PID" 2>/dev/null || true
	fi
	wait "$TGT_PID" 2>/dev/null || true
	TGT_PID=""
}

# free_port: a TCP port on 127.0.0.1 that nothing listens on right now.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# make_freebsd_disk DIR OUT: a 64 MiB disk laid out like a FreeBSD install: GPT with freebsd-boot
# (gptboot0) and freebsd-ufs (rootfs) partitions, the UFS file system built by makefs with the
# files an isboot machine needs (/boot/loader.conf, /etc/fstab, /etc/rc.conf). Uses DIR for scratch.
make_freebsd_disk() {
	_dir=$1 _out=$2
	_stage="$_dir/root"
	mkdir -p "$_stage/boot/kernel" "$_stage/etc" "$_stage/root"
	cat > "$_stage/boot/loader.conf" <<'CONF'
# Load the iSCSI boot driver; it reads the iBFT the firmware left and attaches the disk as daN.
isboot_load="YES"
vfs.root.mountfrom="ufs:/dev/gpt/rootfs"
CONF
	cat > "$_stage/etc/fstab" <<'FSTAB'
# Device		Mountpoint	FStype	Options	Dump	Pass#
/dev/gpt/rootfs		/		ufs	rw	1	1
FSTAB
	cat > "$_stage/etc/rc.conf" <<'RC'
hostname="diskless1"
# contrib/isbootifname renames the boot NIC to bootnet0; keep netif and dhclient off it.
ifconfig_bootnet0="NOAUTO"
RC
	echo "isboot-rs test disk" > "$_stage/root/README"
	makefs -t ffs -o version=2 -s 56m "$_dir/ufs.img" "$_stage" > "$_dir/makefs.log"
	rm -f "$_out"
	truncate -s 64M "$_out"
	# -a 8: 4 KiB alignment like FreeBSD's installer; sgdisk -q would silently write nothing.
	sgdisk -a 8 -n 1:40:+512K -t 1:a501 -c 1:gptboot0 -n 2:0:0 -t 2:a503 -c 2:rootfs "$_out" > /dev/null
	_start=$(sgdisk -i 2 "$_out" | sed -n 's/^First sector: \([0-9]*\).*/\1/p')
	[ -n "$_start" ] || { echo "make_freebsd_disk: sgdisk made no partition 2" >&2; return 1; }
	dd if="$_dir/ufs.img" of="$_out" bs=512 seek="$_start" conv=notrunc status=none
	rm -f "$_dir/ufs.img"
}

# istgt_start DIR PORT IQN DISK AUTH [USER SECRET [TARGET_USER TARGET_SECRET]]: istgt serving DISK
# as LUN 0 of target IQN on 127.0.0.1:PORT; AUTH is None, CHAP or "CHAP Mutual" (istgt enforces
# mutual CHAP, unlike tgtd). Sets ISTGT_PID; istgt_stop kills it (it keeps no state we need).
istgt_start() {
	_dir=$1 _port=$2 _iqn=$3 _disk=$4 _auth=$5
	_line=""
	if [ $# -ge 9 ]; then _line="  Auth \"$6\" \"$7\" \"$8\" \"$9\""; elif [ $# -ge 7 ]; then _line="  Auth \"$6\" \"$7\""; fi
	cat > "$_dir/istgt-auth.conf" <<AUTH
[AuthGroup1]
$_line
[AuthGroup10000]
  Auth "nobody" "unusable-secret-0"
AUTH
	# istgt prefixes NodeBase to names without a colon; give it the IQN's prefix.
	cat > "$_dir/istgt.conf" <<CONF
[Global]
  NodeBase "${_iqn%%:*}"
  PidFile $_dir/istgt.pid
  AuthFile $_dir/istgt-auth.conf
  MediaDirectory $_dir
  LogFacility "local7"
  Timeout 30
  NopInInterval 20
  DiscoveryAuthMethod None
  MaxSessions 16
  MaxConnections 4
[UnitControl]
  AuthMethod CHAP Mutual
  AuthGroup AuthGroup10000
[PortalGroup1]
  Portal DA1 127.0.0.1:$_port
[InitiatorGroup1]
  InitiatorName "ALL"
  Netmask 127.0.0.0/8
[LogicalUnit1]
  TargetName ${_iqn#*:}
  Mapping PortalGroup1 InitiatorGroup1
  AuthMethod $_auth
  AuthGroup AuthGroup1
  UseDigest Auto
  UnitType Disk
  QueueDepth 32
  LUN0 Storage $_disk Auto
CONF
	istgt -c "$_dir/istgt.conf" -D >> "$_dir/istgt.log" 2>&1 &
	ISTGT_PID=$!
	if ! wait_until 20 "istgt listening on 127.0.0.1:$_port" sh -c "ss -Hltn 'sport = :$_port' | grep -q 127.0.0.1:$_port"; then
		cat "$_dir/istgt.log" >&2
		istgt_stop
		return 1
	fi
}

istgt_stop() {
	[ -n "${ISTGT_PID:-}" ] || return 0
	kill -KILL "$ISTGT_PID" 2>/dev/null || true
	wait "$ISTGT_PID" 2>/dev/null || true
	ISTGT_PID=""
}
