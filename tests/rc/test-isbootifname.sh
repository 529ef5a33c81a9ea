#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# Runs contrib/isbootifname against a fake rc.subr, sysctl and ifconfig and checks the exact
# ifconfig calls it makes. Needs only a POSIX sh; runs on Linux and FreeBSD.
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
script="$top/contrib/isbootifname"
sh -n "$script"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM
mkdir -p "$work/bin" "$work/ifs"

# Minimal rc.subr: the functions the script uses, with FreeBSD's semantics for rcvar checks.
cat > "$work/rc.subr" <<'SUBR'
checkyesno() {
	eval _v=\$$1
	case "$_v" in
	[Yy][Ee][Ss]|[Tt][Rr][Uu][Ee]|[Oo][Nn]|1) return 0 ;;
	*) return 1 ;;
	esac
}
load_rc_config() { if [ -r "$FAKE_RCCONF" ]; then . "$FAKE_RCCONF"; fi; }
warn() { echo "$name: WARNING: $*" >&2; }
check_startmsgs() { return 0; }
run_rc_command() {
	_cmd=$1
	case "$_cmd" in
	one*) _cmd=${_cmd#one} ;;
	*) if ! checkyesno "$rcvar"; then return 0; fi ;;
	esac
	case "$_cmd" in
	start) $start_cmd ;;
	stop) $stop_cmd ;;
	*) echo "usage: $name start|stop" >&2; return 1 ;;
	esac
}
SUBR

# Fake sysctl: only net.isboot.nic, from $FAKE_NIC; absent (error) when empty, like a kernel
# without the module.
cat > "$work/bin/sysctl" <<'SYS'
#!/bin/sh
[ "$1" = "-n" ] && [ "$2" = "net.isboot.nic" ] || { echo "fake sysctl: unexpected $*" >&2; exit 2; }
[ -n "${FAKE_NIC:-}" ] || { echo "sysctl: unknown oid 'net.isboot.nic'" >&2; exit 1; }
echo "$FAKE_NIC"
SYS
# Fake ifconfig: interfaces are files in $FAKE_IFS; every call is logged.
cat > "$work/bin/ifconfig" <<'IFC'
#!/bin/sh
echo "ifconfig $*" >> "$FAKE_LOG"
case $# in
1) [ -e "$FAKE_IFS/$1" ] ;;
3) [ "$2" = name ] && [ -e "$FAKE_IFS/$1" ] && [ ! -e "$FAKE_IFS/$3" ] && mv "$FAKE_IFS/$1" "$FAKE_IFS/$3" && echo "$3" ;;
*) echo "fake ifconfig: unexpected $*" >&2; exit 2 ;;
esac
IFC
chmod +x "$work/bin/sysctl" "$work/bin/ifconfig"
sed "s|^\. /etc/rc.subr$|. $work/rc.subr|" "$script" > "$work/isbootifname"
grep -q "^\. $work/rc.subr" "$work/isbootifname" || { echo "FAIL: script does not source /etc/rc.subr"; exit 1; }

export FAKE_LOG="$work/log" FAKE_IFS="$work/ifs" FAKE_RCCONF="$work/rc.conf"
fails=0
# run NAME EXPECTED_STATUS EXPECTED_CALLS(newline separated) EXPECTED_IFS -- ARG
run() {
	tname=$1 want_rc=$2 want_calls=$3 want_ifs=$4 arg=$5
	: > "$FAKE_LOG"
	rc=0
	PATH="$work/bin:$PATH" sh "$work/isbootifname" "$arg" > "$work/out" 2>&1 || rc=$?
	calls=$(cat "$FAKE_LOG")
	ifs=$(ls "$FAKE_IFS" | tr '\n' ' ' | sed 's/ $//')
	if [ "$rc" != "$want_rc" ] || [ "$calls" != "$want_calls" ] || [ "$ifs" != "$want_ifs" ]; then
		echo "FAIL: $tname"
		echo "  status: got $rc want $want_rc"
		echo "  calls:  got [$calls]"
		echo "          want [$want_calls]"
		echo "  ifs:    got [$ifs] want [$want_ifs]"
		sed 's/^/  out: /' "$work/out"
		fails=$((fails + 1))
	else
		echo "ok: $tname"
	fi
}
reset_ifs() { rm -f "$FAKE_IFS"/*; for i in "$@"; do : > "$FAKE_IFS/$i"; done; : > "$FAKE_RCCONF"; }

reset_ifs em0 lo0
export FAKE_NIC=em0
run "start renames the boot NIC to bootnet0 (enabled by default)" 0 \
"ifconfig bootnet0
ifconfig em0 name bootnet0" "bootnet0 lo0" start
grep -q "isboot: em0 renamed to bootnet0" "$work/out" || { echo "FAIL: start message missing"; fails=$((fails + 1)); }

run "a second start sees the rename done and changes nothing" 0 \
"ifconfig bootnet0
ifconfig em0" "bootnet0 lo0" start

run "stop renames bootnet0 back to the driver's name" 0 \
"ifconfig bootnet0
ifconfig bootnet0 name em0" "em0 lo0" stop

run "stop when nothing was renamed does nothing" 0 \
"ifconfig bootnet0" "em0 lo0" stop

reset_ifs em0 lo0
FAKE_NIC=
run "no isboot (sysctl absent): start makes no ifconfig call" 0 "" "em0 lo0" start

reset_ifs em0 lo0
FAKE_NIC=em0
echo 'isbootifname_enable="NO"' > "$FAKE_RCCONF"
run "isbootifname_enable=NO: start does nothing" 0 "" "em0 lo0" start
echo 'isbootifname_enable="NO"' > "$FAKE_RCCONF"
run "isbootifname_enable=NO: onestart still renames" 0 \
"ifconfig bootnet0
ifconfig em0 name bootnet0" "bootnet0 lo0" onestart

reset_ifs bootnet0 em0 lo0
FAKE_NIC=em0
run "bootnet0 taken by another NIC: start refuses and fails" 1 \
"ifconfig bootnet0
ifconfig em0" "bootnet0 em0 lo0" start
grep -q "bootnet0 already exists; not renaming em0" "$work/out" || { echo "FAIL: conflict warning missing"; fails=$((fails + 1)); }

reset_ifs vtnet1 lo0
FAKE_NIC=vtnet1
echo 'isbootifname_name="iscsi0"' > "$FAKE_RCCONF"
run "isbootifname_name overrides the new name" 0 \
"ifconfig iscsi0
ifconfig vtnet1 name iscsi0" "iscsi0 lo0" start
echo 'isbootifname_name="iscsi0"' > "$FAKE_RCCONF"
run "stop honours isbootifname_name" 0 \
"ifconfig iscsi0
ifconfig iscsi0 name vtnet1" "lo0 vtnet1" stop

# The rcorder header is part of the contract (README.md promises to keep it).
for line in "# PROVIDE: isbootifname" "# BEFORE: dhclient netif" "# KEYWORD: nojail"; do
	grep -qx "$line" "$script" || { echo "FAIL: header line missing: $line"; fails=$((fails + 1)); }
done

if [ "$fails" -ne 0 ]; then echo "test-isbootifname: $fails failure(s)"; exit 1; fi
echo "test-isbootifname: all passed"
