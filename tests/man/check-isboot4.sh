#!/bin/sh
# SPDX-License-Identifier: BSD-2-Clause
# Checks contrib/isboot.4 (and contrib/isbootctl/isbootctl.8): clean under mandoc -Tlint (every level, except cross-references to pages
# this host does not have, which depends on the machine, not on the page), and documents every
# user-visible name of the driver's contract.
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
for sec in "LOADER TUNABLES" "SYSCTL VARIABLES" "RC.CONF SETTINGS" FIREWALL EXAMPLES DIAGNOSTICS "SEE ALSO"; do
	printf '%s\n' "$text" | grep -qx "$sec" || { echo "FAIL: section $sec missing"; fails=$((fails + 1)); }
done
if [ "$fails" -ne 0 ]; then echo "check-isboot4: $fails failure(s)"; exit 1; fi
echo "check-isboot4: ok"
