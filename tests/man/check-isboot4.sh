#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# Checks contrib/isboot.4 and contrib/isbootctl/isbootctl.8: clean under mandoc -Tlint (every
# level, except cross-references to pages this host does not have, which depends on the machine,
# not on the page); isboot.4 documents every user-visible name of the driver's contract and
# every tunable the core reads (driver/core/src/bootcfg: loader.rs, tunables.rs); both
# refer to each other and to iscsi(4), ctld(8) and ctl.conf(5); isboot.4's DIAGNOSTICS match the
# messages in the code (tests/man/check-diagnostics.py, which also proves it can fail).
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
page="$top/contrib/isboot.4"
command -v mandoc >/dev/null || { echo "check-isboot4: mandoc not installed (Debian package mandoc)"; exit 1; }

fails=0
for p in "$page" "$top/contrib/isbootctl/isbootctl.8"; do
	out=$(mandoc -Tlint "$p" 2>&1 | grep -v -e 'STYLE: referenced manual not found' -e 'outdated mandoc.db' || true)
	if [ -n "$out" ]; then
		echo "FAIL: mandoc -Tlint $p:"
		echo "$out"
		fails=$((fails + 1))
	fi
done

text=$(mandoc -Tascii "$page" 2>/dev/null | col -b 2>/dev/null || mandoc -Tascii "$page" | sed 's/.\x08//g')
for name in isboot_load hw.ibft.acpi_table hw.ibft.verbose net.isboot.debug net.isboot.nic \
	net.isboot.version hw.ibft.initiator_name hw.ibft.initiator_address hw.ibft.target_name \
	hw.ibft.target_address hw.ibft.target_port hw.ibft.target_lun hw.ibft.nic_prefix \
	hw.ibft.nic_gateway 'ifconfig_bootnet0="NOAUTO"' isbootifname bootnet0 3260 ipfw da0; do
	case "$text" in
	*"$name"*) ;;
	*) echo "FAIL: isboot.4 does not mention $name"; fails=$((fails + 1)) ;;
	esac
done
# Every tunable the module reads (the core's names: the boot configuration without an iBFT and
# the timeouts) and the sysctls added with them.
for name in $(grep -oh '"\(net\.isboot\|boot\.netif\)\.[a-z_]*"' "$top/driver/core/src/bootcfg/loader.rs" \
	"$top/driver/core/src/bootcfg/tunables.rs" | tr -d '"' | sort -u) net.isboot.device; do
	case "$text" in
	*"$name"*) ;;
	*) echo "FAIL: isboot.4 does not mention $name"; fails=$((fails + 1)) ;;
	esac
done
for sec in "LOADER TUNABLES" "SYSCTL VARIABLES" "RC.CONF SETTINGS" FIREWALL EXAMPLES DIAGNOSTICS "SEE ALSO"; do
	printf '%s\n' "$text" | grep -qx "$sec" || { echo "FAIL: section $sec missing"; fails=$((fails + 1)); }
done
see_also() { # page -> the "name(section)" references of its SEE ALSO section
	awk '/^\.Sh /{ in_sa = ($0 == ".Sh SEE ALSO") } in_sa && /^\.Xr /{ print $2 "(" $3 ")" }' "$1"
}
ctl="$top/contrib/isbootctl/isbootctl.8"
for want in "iscsi(4)" "ctld(8)" "ctl.conf(5)" "isbootctl(8)"; do
	see_also "$page" | grep -qxF "$want" || { echo "FAIL: isboot.4's SEE ALSO lacks $want"; fails=$((fails + 1)); }
done
for want in "isboot(4)" "iscsi(4)" "ctld(8)" "ctl.conf(5)"; do
	see_also "$ctl" | grep -qxF "$want" || { echo "FAIL: isbootctl.8's SEE ALSO lacks $want"; fails=$((fails + 1)); }
done
python3 "$top/tests/man/check-diagnostics.py" || fails=$((fails + 1))
python3 "$top/tests/man/check-diagnostics.py" --self-test || fails=$((fails + 1))
if [ "$fails" -ne 0 ]; then echo "check-isboot4: $fails failure(s)"; exit 1; fi
echo "check-isboot4: ok"
