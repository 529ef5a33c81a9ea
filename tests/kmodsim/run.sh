#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
#
# The real isboot.ko in a Linux process (tests/kmodsim/README.md).
#
#   run.sh RELEASE [SCENARIO...]   run the scenarios (default: the default set) for FreeBSD
#                                  RELEASE (14 or 15): one line per scenario with its figure,
#                                  then "N passed, M failed"; non-zero exit if any failed
#   run.sh --list                  the scenarios (default set marked with *)
#   run.sh --self-test [RELEASE]   every rule's deliberately wrong caller must make it fire
#   run.sh --rules [RELEASE]       the rules and the FreeBSD source each is written from
#
# Targets (tgtd, istgt, the scripted fake target) listen on 127.0.0.1 only and are stopped by
# PID; the iBFT fixtures are rewritten to them (and the harness
# refuses every connect outside loopback). KMODSIM_KEEP=1 keeps the work directory,
# KMODSIM_VERBOSE=1 logs every KPI call, KMODSIM_FAILMALLOC_SAMPLE=K runs every K-th N only.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
# shellcheck source=tests/kmodsim/targets.sh
. "$here/targets.sh"
fixtures="$top/tests/data/ibft"

# ---- target control, called back by the harness: run.sh --ctl STATEDIR VERB ----
ctl_main() {
	local dir=$1 verb=$2
	# shellcheck source=/dev/null
	. "$dir/tgt.env"
	case "$verb" in
	kill)
		kill -KILL "$TGT_PID" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$TGT_PID" 2>/dev/null || break; sleep 0.1; done
		;;
	restart | restart-lun-late)
		kill -KILL "$TGT_PID" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$TGT_PID" 2>/dev/null || break; sleep 0.1; done
		rm -f "/var/run/tgtd/socket.$TGT_CTL" "/var/run/tgtd/socket.$TGT_CTL.lock"
		local ok=0
		for _ in $(seq 20); do
			if tgtd_start "$dir" "$TGT_HOST" "$TGT_PORT" 2>>"$dir/ctl.log"; then ok=1; break; fi
			sleep 0.5
		done
		[ "$ok" = 1 ] || return 1
		save_tgt "$dir"
		if [ "$verb" = restart ]; then
			replay_targets "$dir"
		else
			# The target and its ACL come back first, its LUN 3 s later: a REPORT LUNS in
			# between sees LUN 0 only.
			while read -r tid iqn file rest; do
				tgt_ctl --op new --mode target --tid "$tid" -T "$iqn"
				tgt_ctl --op bind --mode target --tid "$tid" -I ALL
			done < "$dir/targets"
			( sleep 3
			  while read -r tid iqn file rest; do
				tgt_ctl --op new --mode logicalunit --tid "$tid" --lun 1 -b "$file"
			  done < "$dir/targets" ) >>"$dir/ctl.log" 2>&1 &
		fi
		;;
	nexus)
		tgt_ctl --op show --mode target | grep -c "I_T nexus:" || true
		;;
	*)
		echo "unknown control verb $verb" >&2
		return 2
		;;
	esac
}

# save_tgt DIR: where the harness's control calls find tgtd (its PID changes on restart).
save_tgt() {
	printf 'TGT_PID=%s\nTGT_CTL=%s\nTGT_HOST=%s\nTGT_PORT=%s\n' "$TGT_PID" "$TGT_CTL" "$TGT_HOST" "$TGT_PORT" \
		> "$1/tgt.env"
}

replay_targets() {
	local dir=$1
	while read -r tid iqn file rest; do
		# shellcheck disable=SC2086
		tgt_target "$tid" "$iqn" "$file" $rest
	done < "$dir/targets"
}

if [ "${1:-}" = --ctl ]; then
	ctl_main "$2" "$3"
	exit $?
fi

# ---- scenarios ----

# name|default|what it shows
scenarios=(
	"selftest|1|every rule fires on its deliberately wrong caller"
	"boot-nochap|1|iPXE fixture without CHAP, tgtd: login, SIM, probe, da, root released"
	"boot-chap|1|iPXE fixture with CHAP, tgtd"
	"boot-mutual|1|iPXE fixture with mutual CHAP, tgtd"
	"boot-istgt|1|iPXE fixture with mutual CHAP, istgt (LUN 0, enforces mutual CHAP)"
	"boot-bios|1|legacy BIOS boot: the iBFT in base memory, no ACPI table"
	"boot-uefi-nochap|1|iBFT written by iPXE's EFI ROM under OVMF, served by AcpiGetTable, tgtd"
	"boot-uefi-chap|1|the UEFI iPXE fixture with CHAP, tgtd"
	"boot-uefi-mutual|1|the UEFI iPXE fixture with mutual CHAP, tgtd"
	"io|1|256 MiB written and read back at queue depth 16, checked in the backing file"
	"faults|1|target killed and restarted, then TCP resets, during a 128 MiB write loop"
	"twotarget|1|two-target fixture, first target dead: the alternate serves the disk"
	"shutdown-live|1|shutdown_pre_sync/post_sync with a live target: logout at the target"
	"shutdown-dead|1|shutdown with a dead target: the 10 s recovery bound, measured"
	"unload-busy|1|kldunload with root mounted on the disk: EBUSY, nothing changed"
	"unload-idle|1|kldunload without a session: nothing left"
	"unload-attached|1|kldunload with the disk attached, not open: a clean detach"
	"noboot-unload|1|VLAN boot NIC, target refused: unload removes the clone, address, routes"
	"badload|1|MOD_LOAD fails (no kthread) after hw.ibft.* were set: ENOEXEC, hw.ibft.* empty"
	"dump|1|panic dump to the iSCSI disk"
	"lunmap|1|reconnect to a target whose LUN map comes back late: the boot disk stays"
	"epochtrace|1|boot on a kernel built with options EPOCH_TRACE"
	"ipv6-linklocal|1|boot NIC and target on an IPv6 link-local network (fe80::/64)"
	"hostile|1|the scripted misbehaving target of tests/it, one run per fault"
	"tunables-nochap|1|no iBFT: target and NIC (by MAC) from loader tunables, tgtd; secrets out of kenv"
	"tunables-chap|1|no iBFT: tunables with CHAP, the NIC from the loader's boot.netif.*"
	"tunables-mutual|1|no iBFT: tunables with mutual CHAP, the NIC by name (net.isboot.nic_name)"
	"idle|1|neither an iBFT nor net.isboot.root_path: the module loads and stays idle"
	"tunables-bad|1|a wrong tunable: the load fails naming it; the secrets leave kenv all the same"
	"digests-istgt|1|istgt requiring CRC32C digests, the default net.isboot.digests: boots, digests on"
	"digests-forbid|1|the same istgt, net.isboot.digests=forbid: the login fails naming HeaderDigest"
	"dies-after-login|1|a target that rejects every READ: logins work, each connection dies first; said"
	"quiet|1|net.isboot.debug=0, target refusing: milestones print, a repeated failure once per 30 s"
	"noalloc|1|10,000 writes and reads of 4 KiB (and 1 MiB ones): 0 module allocations; copies per byte"
	"failmalloc|1|fail the Nth M_NOWAIT malloc(9) once, for every N of load..unload: panics P of R"
)
# The module offers Offer::default's digests, None,CRC32C (the iBFT has no field for them):
# the fake target of the digest faults picks CRC32C, so the kernel session checks both
# digests and must catch the wrong one.
hostile_faults=(wrong-itt data-in-beyond-buffer data-in-offset-gap oversized-segment
	bad-header-digest bad-data-digest sense-too-long r2t-beyond-transfer reset-mid-transfer
	silence async-logout-request async-drop-connection reject-command dribble)

list() {
	local s name def what
	for s in "${scenarios[@]}"; do
		IFS='|' read -r name def what <<<"$s"
		printf '%s %-16s %s\n' "$([ "$def" = 1 ] && echo '*' || echo ' ')" "$name" "$what"
	done
	echo "(* = default set; hostile runs: ${hostile_faults[*]})"
}

is_scenario() {
	local s
	for s in "${scenarios[@]}"; do [ "${s%%|*}" = "$1" ] && return 0; done
	return 1
}

case "${1:-}" in
--list) list; exit 0 ;;
--self-test)
	rel=${2:-14}
	"$here/build.sh" "$rel"
	exec "${ISBOOT_KMODSIM_DIR:-$top/target/kmodsim}/freebsd$rel/kmodsim" --quiet selftest
	;;
--rules)
	rel=${2:-14}
	"$here/build.sh" "$rel"
	exec "${ISBOOT_KMODSIM_DIR:-$top/target/kmodsim}/freebsd$rel/kmodsim" --quiet rules
	;;
14 | 15) rel=$1; shift ;;
*) echo "usage: run.sh 14|15 [SCENARIO...] | --list | --self-test [R] | --rules [R]" >&2
   exit 2 ;;
esac

want=("$@")
# failmalloc fails every M_NOWAIT allocation, in the default set (CI) too: the module makes few
# (load, bring-up and login allocate M_WAITOK), so the whole sweep takes seconds.
# KMODSIM_FAILMALLOC_SAMPLE=K samples every K-th.
failmalloc_step=1
if [ ${#want[@]} -eq 0 ]; then
	for s in "${scenarios[@]}"; do
		IFS='|' read -r name def _ <<<"$s"
		[ "$def" = 1 ] && want+=("$name")
	done
fi
for w in "${want[@]}"; do
	is_scenario "$w" || { echo "run.sh: unknown scenario $w (see --list)" >&2; exit 2; }
done

for t in tgtd tgtadm istgt python3 ss; do
	command -v $t >/dev/null || { echo "run.sh: $t missing (tests/setup.sh installs it)" >&2; exit 1; }
done
"$here/build.sh" "$rel"
bin="${ISBOOT_KMODSIM_DIR:-$top/target/kmodsim}/freebsd$rel/kmodsim"

work=$(mktemp -d /tmp/kmodsim.XXXXXX)
pids_istgt=()
dirs_tgt=()
fake_pid=""
fake_fd=""
cleanup() {
	teardown 2>/dev/null || true
	if [ -z "${KMODSIM_KEEP:-}" ]; then rm -rf "$work"; else echo "kept $work" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A backing file: 1 MiB of random bytes (checked by the boot scenarios), sparse to 320 MiB.
make_disk() {
	head -c 1048576 /dev/urandom > "$1"
	truncate -s 320M "$1"
}

# tgtd_with DIR TID IQN [USER PASS [OUTUSER OUTPASS]]: tgtd on a free 127.0.0.1 port serving
# DIR/disk.img; TGTD_HOST=::1 puts it on [::1] instead (the harness maps a link-local target
# on the boot NIC's link to the host's ::1).
tgtd_with() {
	local dir=$1 tid=$2 iqn=$3 host=${TGTD_HOST:-127.0.0.1}
	shift 3
	mkdir -p "$dir"
	make_disk "$dir/disk.img"
	tgtd_start "$dir" "$host" "$(free_port "$host")"
	dirs_tgt+=("$dir")
	echo "$tid $iqn $dir/disk.img $*" > "$dir/targets"
	save_tgt "$dir"
	replay_targets "$dir"
}

istgt_with() {
	local dir=$1 iqn=$2 auth=$3
	shift 3
	mkdir -p "$dir"
	make_disk "$dir/disk.img"
	ISTGT_PORT=$(free_port)
	istgt_start "$dir" "$ISTGT_PORT" "$iqn" "$dir/disk.img" "$auth" "$@"
	pids_istgt+=("$ISTGT_PID")
}

rewrite() { python3 "$here/ibft.py" "$@" && [ -s "$2" ]; }

CHAP=(rigin rigin-secret-12)
MUTUAL=(rigin rigin-secret-12 rigout rigout-secret-12)
# The credentials tests/qemu/run.sh gave iPXE when it wrote the UEFI fixtures.
UEFI_CHAP=(qemuin qemuin-secret-12)
UEFI_MUTUAL=(qemuin qemuin-secret-12 qemuout qemuout-secret-12)
UEFI_IQN=iqn.2026-11.org.isboot:tgtd.disk

# setup NAME DIR: starts what the scenario needs and fills ARGS (the harness's options).
setup() {
	local name=$1 d=$2
	ARGS=()
	mkdir -p "$d"
	case "$name" in
	boot-nochap | io | noalloc | faults | shutdown-live | shutdown-dead | unload-busy \
	| unload-attached | dump | lunmap | epochtrace | boot-bios)
		tgtd_with "$d/tgt" 1 iqn.2025-01.test.rig:tgt-nochap
		rewrite "$fixtures/ibft-ipxe-dhcp-nochap.bin" "$d/ibft.bin" --target "0=127.0.0.1:$TGT_PORT"
		ARGS=(--ibft "$d/ibft.bin" --backing "$d/tgt/disk.img" --ctl "$here/run.sh --ctl $d/tgt")
		case "$name" in
		io) ARGS+=(--mib 256 --qd 16) ;;
		noalloc) ARGS+=(--qd 16) ;;
		faults) ARGS+=(--mib 128 --qd 16) ;;
		boot-bios) ARGS+=(--lowmem 0x9e620) ;;
		esac
		;;
	boot-chap)
		tgtd_with "$d/tgt" 1 iqn.2025-01.test.rig:tgt-chap "${CHAP[@]}"
		rewrite "$fixtures/ibft-ipxe-dhcp-chap.bin" "$d/ibft.bin" --target "0=127.0.0.1:$TGT_PORT"
		ARGS=(--ibft "$d/ibft.bin" --backing "$d/tgt/disk.img")
		;;
	boot-mutual)
		tgtd_with "$d/tgt" 1 iqn.2025-01.test.rig:tgt-mutual "${MUTUAL[@]}"
		rewrite "$fixtures/ibft-ipxe-dhcp-mutualchap.bin" "$d/ibft.bin" --target "0=127.0.0.1:$TGT_PORT"
		ARGS=(--ibft "$d/ibft.bin" --backing "$d/tgt/disk.img")
		;;
	boot-uefi-nochap | boot-uefi-chap | boot-uefi-mutual)
		local auth=${name#boot-uefi-} creds=()
		case "$auth" in
		chap) creds=("${UEFI_CHAP[@]}") ;;
		mutual) creds=("${UEFI_MUTUAL[@]}") auth=mutualchap ;;
		esac
		tgtd_with "$d/tgt" 1 "$UEFI_IQN" ${creds[@]+"${creds[@]}"}
		rewrite "$fixtures/ibft-uefi-ipxe-dhcp-$auth.bin" "$d/ibft.bin" --target "0=127.0.0.1:$TGT_PORT"
		ARGS=(--ibft "$d/ibft.bin" --backing "$d/tgt/disk.img")
		;;
	boot-istgt)
		istgt_with "$d/istgt" iqn.2025-01.test.rig:tgt-mutual "CHAP Mutual" "${MUTUAL[@]}"
		rewrite "$fixtures/ibft-ipxe-dhcp-mutualchap.bin" "$d/ibft.bin" \
			--target "0=127.0.0.1:$ISTGT_PORT:0"
		ARGS=(--ibft "$d/ibft.bin" --backing "$d/istgt/disk.img" --lun 0)
		;;
	twotarget)
		istgt_with "$d/istgt" iqn.2025-01.test.rig.istgt:disk-mutual "CHAP Mutual" "${MUTUAL[@]}"
		rewrite "$fixtures/ibft-ipxe-dhcp-two-targets.bin" "$d/ibft.bin" \
			--target "0=127.0.0.1:$(free_port)" --target "1=127.0.0.1:$ISTGT_PORT:0"
		ARGS=(--ibft "$d/ibft.bin" --backing "$d/istgt/disk.img" --lun 0)
		;;
	ipv6-linklocal)
		TGTD_HOST=::1 tgtd_with "$d/tgt" 1 iqn.2025-01.test.rig:tgt-nochap
		rewrite "$fixtures/ibft-ipxe-dhcp-nochap.bin" "$d/ibft.bin" --nic-ip fe80::15/64 \
			--gateway none --target "0=[fe80::2]:$TGT_PORT"
		ARGS=(--ibft "$d/ibft.bin" --backing "$d/tgt/disk.img")
		;;
	digests-istgt | digests-forbid)
		ISTGT_DIGEST="Header Data" istgt_with "$d/istgt" iqn.2025-01.test.rig:tgt-nochap None
		rewrite "$fixtures/ibft-ipxe-dhcp-nochap.bin" "$d/ibft.bin" \
			--target "0=127.0.0.1:$ISTGT_PORT:0"
		ARGS=(--ibft "$d/ibft.bin" --backing "$d/istgt/disk.img" --lun 0 --debug 2)
		if [ "$name" = digests-forbid ]; then ARGS+=(--kenv net.isboot.digests=forbid); fi
		;;
	quiet)
		rewrite "$fixtures/ibft-ipxe-dhcp-nochap.bin" "$d/ibft.bin" --target "0=127.0.0.1:$(free_port)"
		ARGS=(--ibft "$d/ibft.bin" --debug 0)
		;;
	unload-idle)
		rewrite "$fixtures/ibft-ipxe-dhcp-nochap.bin" "$d/ibft.bin" --target "0=127.0.0.1:$(free_port)"
		ARGS=(--ibft "$d/ibft.bin")
		;;
	noboot-unload)
		rewrite "$fixtures/ibft-ipxe-dhcp-nochap.bin" "$d/ibft.bin" \
			--target "0=127.0.0.1:$(free_port)" --vlan 100
		ARGS=(--ibft "$d/ibft.bin")
		;;
	badload)
		rewrite "$fixtures/ibft-ipxe-dhcp-nochap.bin" "$d/ibft.bin" --target "0=127.0.0.1:$(free_port)"
		ARGS=(--ibft "$d/ibft.bin")
		;;
	tunables-bad)
		# A secret of 5 bytes (RFC 7143 wants 12 or more); a good reverse secret beside it.
		ARGS=(--kenv "net.isboot.root_path=iscsi:127.0.0.1::$(free_port):1:iqn.2026-11.org.isboot:bad"
			--kenv net.isboot.initiator_name=iqn.2025-01.test.rig:initiator-tunables
			--kenv net.isboot.nic_name=em0 --kenv net.isboot.nic_address=127.0.0.15
			--kenv net.isboot.nic_prefix=24 --kenv net.isboot.chap_name=rigin
			--kenv net.isboot.chap_secret=sh0rt --kenv net.isboot.reverse_chap_name=rigout
			--kenv net.isboot.reverse_chap_secret=rigout-secret-12)
		;;
	tunables-nochap | tunables-chap | tunables-mutual)
		# The loader's environment alone (no iBFT): bhyveload -e or loader.conf would set it.
		local auth=${name#tunables-} iqn=iqn.2026-11.org.isboot:tunables-${name#tunables-}
		case $auth in
		nochap) tgtd_with "$d/tgt" 1 "$iqn" ;;
		chap) tgtd_with "$d/tgt" 1 "$iqn" "${CHAP[@]}" ;;
		mutual) tgtd_with "$d/tgt" 1 "$iqn" "${MUTUAL[@]}" ;;
		esac
		ARGS=(--backing "$d/tgt/disk.img"
			--kenv "net.isboot.root_path=iscsi:127.0.0.1::$TGT_PORT:1:$iqn"
			--kenv net.isboot.initiator_name=iqn.2025-01.test.rig:initiator-tunables
			--kenv net.isboot.root_wait=99999)
		case $auth in
		nochap)
			ARGS+=(--kenv net.isboot.nic_mac=52:54:00:12:34:56 --kenv net.isboot.nic_address=127.0.0.15
				--kenv net.isboot.nic_prefix=24 --kenv net.isboot.nic_gateway=127.0.0.1) ;;
		chap)
			# What stand/common/dev_net.c exports after a network boot of the loader.
			ARGS+=(--kenv boot.netif.hwaddr=52:54:00:12:34:56 --kenv boot.netif.ip=127.0.0.15
				--kenv boot.netif.netmask=255.255.255.0 --kenv boot.netif.gateway=127.0.0.1
				--kenv "net.isboot.chap_name=${CHAP[0]}" --kenv "net.isboot.chap_secret=${CHAP[1]}") ;;
		mutual)
			ARGS+=(--kenv net.isboot.nic_name=em0 --kenv net.isboot.nic_address=127.0.0.15
				--kenv net.isboot.nic_prefix=255.255.255.0 --kenv net.isboot.nic_gateway=127.0.0.1
				--kenv "net.isboot.chap_name=${MUTUAL[0]}" --kenv "net.isboot.chap_secret=${MUTUAL[1]}"
				--kenv "net.isboot.reverse_chap_name=${MUTUAL[2]}"
				--kenv "net.isboot.reverse_chap_secret=${MUTUAL[3]}") ;;
		esac
		;;
	hostile-* | dies-after-login)
		local fault=${name#hostile-} addr times=1
		if [ "$name" = dies-after-login ]; then fault=reject-command times=1000; fi
		mkdir -p "$d"
		mkfifo "$d/fake.in"
		"$top/target/debug/isboot-fake-target" --fault "$fault" --times "$times" < "$d/fake.in" \
			> "$d/fake.out" 2> "$d/fake.log" &
		fake_pid=$!
		exec {fake_fd}> "$d/fake.in"
		for _ in $(seq 100); do grep -q '^listening ' "$d/fake.out" && break; sleep 0.1; done
		addr=$(sed -n 's/^listening \(.*\)/\1/p' "$d/fake.out")
		[ -n "$addr" ] || { echo "fake target did not start" >&2; return 1; }
		rewrite "$fixtures/ibft-ipxe-dhcp-nochap.bin" "$d/ibft.bin" --target "0=$addr:0"
		ARGS=(--ibft "$d/ibft.bin" --lun 0)
		if [ "$name" = dies-after-login ]; then ARGS+=(--debug 0); fi
		;;
	esac
}

teardown() {
	local d
	for d in ${dirs_tgt[@]+"${dirs_tgt[@]}"}; do
		if [ -f "$d/tgt.env" ]; then
			# shellcheck source=/dev/null
			. "$d/tgt.env"
			tgtd_stop || true
		fi
	done
	dirs_tgt=()
	for p in ${pids_istgt[@]+"${pids_istgt[@]}"}; do
		kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true
	done
	pids_istgt=()
	if [ -n "$fake_pid" ]; then
		# Closing its stdin makes the fake target print what it saw and exit.
		exec {fake_fd}>&-
		for _ in $(seq 50); do kill -0 "$fake_pid" 2>/dev/null || break; sleep 0.1; done
		kill -TERM "$fake_pid" 2>/dev/null || true; wait "$fake_pid" 2>/dev/null || true
		fake_pid=""
	fi
}

passed=0 failedn=0
report() { # name result-line
	local name=$1 line=$2
	case "$line" in
	OK*) passed=$((passed + 1)); printf '%-30s ok    %s\n' "$name" "${line#OK }" ;;
	*) failedn=$((failedn + 1)); printf '%-30s FAIL  %s\n' "$name" "${line#FAIL }" ;;
	esac
}

run_one() { # scenario-name harness-scenario dir
	local name=$1 sc=$2 d=$3 line rc=0 verbose=()
	[ -n "${KMODSIM_VERBOSE:-}" ] && verbose=(--verbose)
	if ! setup "$name" "$d" > "$d.setup.log" 2>&1; then
		report "$name" "FAIL target setup failed: $(tail -n 3 "$d.setup.log" | tr '\n' ' ')"
		teardown
		return
	fi
	# KMODSIM_CALLGRIND=PREFIX: the scenario under callgrind (PREFIX.SCENARIO), which counts
	# instructions per function: CPU per I/O compared without the shared machine's noise.
	local wrap=()
	[ -n "${KMODSIM_CALLGRIND:-}" ] &&
		wrap=(valgrind --tool=callgrind "--callgrind-out-file=$KMODSIM_CALLGRIND.$name")
	line=$(timeout 300 ${wrap[@]+"${wrap[@]}"} "$bin" "${verbose[@]}" "${ARGS[@]}" "$sc" 2> "$d.log" | tail -n 1) || rc=$?
	[ -n "$line" ] || line="FAIL no result (exit $rc); log: $d.log"
	if [ "$rc" = 124 ]; then line="FAIL timed out after 300 s"; fi
	case "$line" in
	PANIC*) line="FAIL kernel panic: ${line#PANIC }" ;;
	esac
	# bash reports the SIGKILLed daemons it reaps; that is the point of stopping them.
	teardown 2>/dev/null
	if [ "$sc" = hostile ]; then
		# The fault must have happened, and the initiator must not have broken the protocol.
		local seen
		seen=$(sed -n 's/^stats .* faults \([0-9]*\) violations \([0-9]*\)/\1 \2/p' "$d/fake.out")
		case "$seen" in
		"0 "*) line="FAIL the fault never fired: ${line#* }" ;;
		*" 0") line="$line, fault fired ${seen% *}x" ;;
		*) line="FAIL the initiator broke the protocol ($(grep -m1 '^violation' "$d/fake.out")): ${line#* }" ;;
		esac
	fi
	report "$name" "$line"
	if [ "${line%% *}" != OK ] && [ -n "${KMODSIM_SHOWLOG:-}" ]; then tail -n 40 "$d.log" >&2; fi
}

# failmalloc: a count run, then one process per N. Each run reports the call site of the
# failed allocation (or, for a panic, of the panic), resolved by symbolize.py against the
# harness binary and the unstripped link kmod-check keeps (isboot.full.ko: line tables).
run_failmalloc() {
	local d=$1 total all n line panics=0 unlogged=0 runs=0
	local step=${KMODSIM_FAILMALLOC_SAMPLE:-$failmalloc_step}
	local sites="$1.sites" fullko="${ISBOOT_KMOD_DIR:-$top/target/kmod}/freebsd$rel/isboot.full.ko" ko=()
	[ -f "$fullko" ] && ko=(--ko "$fullko")
	setup boot-nochap "$d" > "$d.setup.log" 2>&1
	line=$("$bin" --quiet "${ARGS[@]}" failmalloc 2>"$d.count.log" | tail -n 1)
	# N counts the M_NOWAIT calls (M_WAITOK cannot fail): every one of them is failed once.
	all=$(sed -n 's/^COUNT calls \([0-9]*\).*/\1/p' <<<"$line")
	total=$(sed -n 's/^COUNT calls [0-9]* nowait \([0-9]*\).*/\1/p' <<<"$line")
	[ -n "$total" ] || { report failmalloc "FAIL count run: $line"; teardown 2>/dev/null; return; }
	: > "$sites"
	for ((n = 0; n < total; n += step)); do
		local bt site outcome
		runs=$((runs + 1))
		line=$(timeout 120 "$bin" "${ARGS[@]}" --fail-nth "$n" failmalloc \
			2>"$d.$n.log" | tail -n 1) || true
		case "$line" in
		SURVIVED*)
			# The failure must be reported once (ENOMEM: errno 12), not lost or repeated.
			local logged
			logged=$(grep -c -E -i 'error 12|ENOMEM|out of memory|memory is short' "$d.$n.log" || true)
			if [ "$logged" = 1 ]; then
				outcome=survived
			else
				outcome="survived, logged $logged times"
				unlogged=$((unlogged + 1))
			fi
			bt=$(sed -n 's/.* site //p' <<<"$line")
			;;
		*)
			panics=$((panics + 1))
			outcome="PANIC: $(sed 's/^PANIC //; s/isboot: panicked at //' <<<"$line" | cut -c1-120)"
			bt=$(sed -n 's/^PANIC-BACKTRACE://p' "$d.$n.log" | head -n 1)
			;;
		esac
		# shellcheck disable=SC2086
		site=$(python3 "$here/symbolize.py" "$bin" ${ko[@]+"${ko[@]}"} --first-module $bt 2>/dev/null || true)
		printf 'N=%s %s | %s\n' "$n" "$outcome" "${site:-?}" >> "$sites"
	done
	teardown 2>/dev/null
	local sample=""
	[ "$step" -gt 1 ] && sample=", every ${step}th"
	local l="panics $panics of $runs runs, $unlogged not logged exactly once ($total M_NOWAIT allocations of $all reached in load, login, I/O, reconnect, shutdown, unload$sample; the rest M_WAITOK in sleepable contexts)"
	if [ "$panics" = 0 ] && [ "$unlogged" = 0 ]; then report failmalloc "OK $l"; return; fi
	local keep="KMODSIM_KEEP=1 keeps every run's backtrace"
	[ -n "${KMODSIM_KEEP:-}" ] && keep="every run's backtrace: $sites"
	report failmalloc "FAIL $l; the call sites below ($keep)"
	python3 "$here/symbolize.py" --summary "$sites"
	if [ -n "${KMODSIM_SHOWSITES:-}" ]; then cat "$sites"; fi
}

t0=$SECONDS
echo "kmodsim: FreeBSD $rel, isboot.ko from ${ISBOOT_KMOD_DIR:-$top/target/kmod}/freebsd$rel (work $work)"
for w in "${want[@]}"; do
	case "$w" in
	hostile)
		# Always: cargo rebuilds it when the fake target's sources changed, else does nothing.
		(cd "$top" && cargo build -q -p isboot-tests --bin isboot-fake-target) ||
			{ report hostile "FAIL isboot-fake-target did not build"; continue; }
		for f in "${hostile_faults[@]}"; do
			run_one "hostile-$f" hostile "$work/hostile-$f"
		done
		;;
	failmalloc) run_failmalloc "$work/failmalloc" ;;
	selftest)
		line=$("$bin" --quiet selftest 2> "$work/selftest.log" | tail -n 1) || true
		report selftest "$line"
		;;
	boot-* | ipv6-linklocal) run_one "$w" boot "$work/$w" ;;
	tunables-nochap | tunables-chap | tunables-mutual) run_one "$w" tunables "$work/$w" ;;
	*) run_one "$w" "$w" "$work/$w" ;;
	esac
done
echo "$passed passed, $failedn failed ($((SECONDS - t0)) s)"
[ "$failedn" = 0 ]
