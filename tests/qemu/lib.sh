# shellcheck shell=bash
# SPDX-License-Identifier: BSD-2-Clause
# Shell helpers shared by tests/demo.sh, tests/isbootctl/boot-targets.sh and tests/qemu/run.sh:
# bounded waits, the test harness's targets (target_start: tgtd, istgt and LIO are set up in one
# place, tests/it/target.rs), a FreeBSD-style boot disk. Source it; it defines functions only.

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
# this shell dies). $ISBOOT_TARGET is the binary. The Nth target's log goes to DIR/targetN.log
# when it stops (N counts from 0 and is never reused).
TARGET_PIDS=() TARGET_FDS=() TARGET_COUNT=0
target_start() {
	_dir=$1
	shift
	_base="$_dir/target$TARGET_COUNT"
	TARGET_COUNT=$((TARGET_COUNT + 1))
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
	# shellcheck disable=SC2034 # for the caller
	TARGET_PORT=$(sed -n 's/^port=//p' "$_base.out")
	# shellcheck disable=SC2034
	TARGET_IQN=$(sed -n 's/^iqn=//p' "$_base.out")
	# shellcheck disable=SC2034
	TARGET_LUN=$(sed -n 's/^lun=//p' "$_base.out")
	# shellcheck disable=SC2034
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
