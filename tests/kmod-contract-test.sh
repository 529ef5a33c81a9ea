#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-2-Clause
#
# Tests tests/kmod-contract.py itself against tiny modules compiled with the FreeBSD 14 headers
# (tests/kmod-headers.sh must have run): the contract's module metadata passes, and a module that
# depends on icl, lacks a dependency, or was built for another kernel version fails.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out="${ISBOOT_KMOD_DIR:-$top/target/kmod}"
# shellcheck source=/dev/null
source "$out/freebsd14/env"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
inc=()
for d in "${INCLUDES[@]}"; do inc+=(-isystem "$d"); done

module() { # name, extra C lines
  cat > "$work/$1.c" <<C
#include <sys/param.h>
#include <sys/systm.h>
#include <sys/kernel.h>
#include <sys/module.h>
#include <sys/sysctl.h>
static int h(module_t m, int w, void *a) { return (0); }
static moduledata_t md = { "isboot", h, NULL };
DECLARE_MODULE(isboot, md, SI_SUB_ROOT_CONF - 1, SI_ORDER_ANY);
MODULE_VERSION(isboot, 1);
SYSCTL_NODE(_hw, OID_AUTO, ibft, CTLFLAG_RD, 0, "");
static char s[8];
#define S(p, n) SYSCTL_STRING(p, OID_AUTO, n, CTLFLAG_RD, s, sizeof(s), "")
S(_hw_ibft, initiator_name); S(_hw_ibft, initiator_address); S(_hw_ibft, target_name);
S(_hw_ibft, target_address); S(_hw_ibft, target_port); S(_hw_ibft, target_lun);
S(_hw_ibft, nic_prefix); S(_hw_ibft, nic_gateway); S(_hw_ibft, acpi_table); S(_hw_ibft, verbose);
SYSCTL_NODE(_net, OID_AUTO, isboot, CTLFLAG_RD, 0, "");
S(_net_isboot, version); S(_net_isboot, nic); S(_net_isboot, device); S(_net_isboot, debug);
S(_net_isboot, connect_timeout); S(_net_isboot, login_timeout); S(_net_isboot, nop_interval);
S(_net_isboot, nop_timeout); S(_net_isboot, command_timeout); S(_net_isboot, root_wait);
SYSCTL_NODE(_net_isboot, OID_AUTO, session, CTLFLAG_RD, 0, "");
S(_net_isboot_session, state); S(_net_isboot_session, reconnects);
S(_net_isboot_session, commands); S(_net_isboot_session, bytes_in);
S(_net_isboot_session, bytes_out); S(_net_isboot_session, last_error);
$2
C
  compile "$1"
}

compile() {
  "$ZIG" cc -target x86_64-freebsd -mcpu=x86_64-sse-sse2-mmx -D_KERNEL -DKLD_MODULE -nostdinc \
    "${inc[@]}" -include opt_global.h -U__FreeBSD_version "-D__FreeBSD_version=$FREEBSD_VERSION" \
    -O2 -ffreestanding -mcmodel=kernel -mno-red-zone -msoft-float -g0 -w -c "$work/$1.c" -o "$work/$1.o"
}

fails=0
expect() { # name, version, exit, text
  local out rc=0
  out=$(python3 "$top/tests/kmod-contract.py" "$work/$1.o" "$2" 2>&1) || rc=$?
  if [ "$rc" -ne "$3" ] || ! grep -qF -- "$4" <<<"$out"; then
    echo "kmod-contract-test: $1: expected exit $3 and '$4', got exit $rc:" >&2
    echo "$out" >&2
    fails=$((fails + 1))
  fi
}

good='MODULE_DEPEND(isboot, cam, 1, 1, 1); MODULE_DEPEND(isboot, ether, 1, 1, 1); MODULE_DEPEND(isboot, acpi, 1, 1, 1);'
module good "$good"
expect good "$FREEBSD_VERSION" 0 "depends on acpi, cam, ether"
expect good 1500068 1 "kernel dependency"
module icl "$good MODULE_DEPEND(isboot, icl, 1, 1, 1);"
expect icl "$FREEBSD_VERSION" 1 "depends on icl"
module nocam 'MODULE_DEPEND(isboot, ether, 1, 1, 1); MODULE_DEPEND(isboot, acpi, 1, 1, 1);'
expect nocam "$FREEBSD_VERSION" 1 "module dependencies"
module nonic "$good"
sed -i 's/S(_net_isboot, version); S(_net_isboot, nic);/S(_net_isboot, version);/' "$work/nonic.c"
compile nonic
expect nonic "$FREEBSD_VERSION" 1 "sysctl name 'nic'"
[ "$fails" -eq 0 ] || { echo "kmod-contract-test: $fails case(s) failed" >&2; exit 1; }
echo "kmod-contract-test: ok (contract module passes; wrong kernel, icl, missing dependency, missing sysctl fail)"
