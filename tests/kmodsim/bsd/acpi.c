/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * Firmware tables: ACPI (contrib/dev/acpica tbxface.c AcpiGetTable/AcpiPutTable) and, for a
 * legacy BIOS boot, base memory (amd64 pmap_mapbios/pmap_unmapdev over a 1 MiB image), plus
 * efi_boot (machine/md_var.h) and maxphys.
 */
#include "kpi.h"

#define ACPI_MAX 4

bool efi_boot;
u_long maxphys = 1024 * 1024;

static struct {
	char sig[4];
	unsigned char *table;
	hsize_t len;
	int refs;		/* validation references taken by AcpiGetTable */
	int gets;
} tables[ACPI_MAX];
static int ntables;
static unsigned char *lowmem;		/* 0 .. 1 MiB */
static int maps;

void
kpi_acpi_table(const char *sig, const void *table, hsize_t len)
{
	if (ntables == ACPI_MAX)
		host_panic("kmodsim: too many ACPI tables");
	host_memcpy(tables[ntables].sig, sig, 4);
	tables[ntables].table = host_alloc(16, len);
	host_memcpy(tables[ntables].table, table, len);
	tables[ntables].len = len;
	ntables++;
}

/* A table in base memory at pa: a legacy BIOS boot (no ACPI table, efi_boot false). */
void
kpi_lowmem_table(hu64 pa, const void *table, hsize_t len)
{
	if (lowmem == NULL) {
		lowmem = host_alloc(4096, 1024 * 1024);
		host_memset(lowmem, 0, 1024 * 1024);
	}
	if (pa + len > 1024 * 1024)
		host_panic("kmodsim: low-memory table beyond 1 MiB");
	host_memcpy(lowmem + pa, table, len);
	efi_boot = false;
}

void
kpi_efi_boot(int yes)
{
	efi_boot = yes != 0;
}

ACPI_STATUS
AcpiGetTable(ACPI_STRING Signature, UINT32 Instance, ACPI_TABLE_HEADER **OutTable)
{
	UINT32 seen = 0;
	int i;

	stack_probe();
	for (i = 0; i < ntables; i++)
		if (memcmp(tables[i].sig, Signature, 4) == 0 && ++seen == Instance) {
			tables[i].refs++;
			tables[i].gets++;
			*OutTable = (ACPI_TABLE_HEADER *)tables[i].table;
			kpi_log("AcpiGetTable(\"%.4s\", %u)", Signature, Instance);
			return (AE_OK);
		}
	return (0x0005);	/* AE_NOT_FOUND */
}

void
AcpiPutTable(ACPI_TABLE_HEADER *Table)
{
	int i;

	stack_probe();
	for (i = 0; i < ntables; i++)
		if ((ACPI_TABLE_HEADER *)tables[i].table == Table) {
			if (tables[i].refs-- <= 0)
				rule(R_ACPI_BALANCE, "AcpiPutTable(%.4s) without a reference",
				    tables[i].sig);
			return;
		}
	rule(R_ACPI_BALANCE, "AcpiPutTable of %p, not a table AcpiGetTable returned", Table);
}

void *
pmap_mapbios(vm_paddr_t pa, vm_size_t size)
{
	stack_probe();
	if (lowmem == NULL || pa + size > 1024 * 1024)
		return (NULL);
	maps++;
	return (lowmem + pa);
}

void
pmap_unmapdev(void *va, vm_size_t size __unused)
{
	stack_probe();
	if (lowmem == NULL || (unsigned char *)va < lowmem ||
	    (unsigned char *)va >= lowmem + 1024 * 1024)
		rule(R_ACPI_BALANCE, "pmap_unmapdev of %p, not a pmap_mapbios mapping", va);
	else
		maps--;
}

void
acpi_final_checks(int unloaded)
{
	int i;

	for (i = 0; i < ntables; i++)
		if (tables[i].refs != 0)
			rule(R_ACPI_BALANCE, "ACPI table %.4s: %d references not put", tables[i].sig,
			    tables[i].refs);
	if (maps != 0 && unloaded)
		rule(R_ACPI_BALANCE, "%d pmap_mapbios mappings not unmapped", maps);
}
