/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * GEOM as far as a module asks it about disks (geom/geom_subr.c): the topology lock and the
 * providers of the da disks the periph model creates, with access counts that an open or a
 * mount raises (geom/geom_subr.c g_access).
 */
#include "cam.h"

struct sx topology_lock;
static int geom_ready;

static void
geom_init(void)
{
	if (geom_ready)
		return;
	geom_ready = 1;
	kmodsim_sx_init(&topology_lock, "GEOM topology");
}

/* geom/geom_subr.c g_provider_by_name: under the topology lock. */
struct g_provider *
g_provider_by_name(char const *arg)
{
	struct kbus *bus;
	struct g_provider *pp = NULL;
	lun_id_t l;

	stack_probe();
	geom_init();
	if (!kmodsim_sx_owned(&topology_lock))
		rule(R_GEOM_TOPOLOGY, "g_provider_by_name(%s) without the topology lock", arg);
	if (strncmp(arg, "/dev/", 5) == 0)
		arg += 5;
	host_cv_lock(cam_cv);
	bus = cam_first_bus();
	for (l = 0; bus != NULL && l < 256 && pp == NULL; l++) {
		struct kdev *d = cam_dev_find(bus, 0, l, 0);

		if (d != NULL && d->da != NULL && d->da->pp.name != NULL &&
		    kstreq(d->da->pp.name, arg))
			pp = &d->da->pp;
	}
	host_cv_unlock(cam_cv);
	return (pp);
}

void
kmodsim_geom_init(void)
{
	geom_init();
}
