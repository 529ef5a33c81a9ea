/* SPDX-License-Identifier: BSD-2-Clause */
/*
 * The network configuration KPIs (net/if.c, net/if_clone.c, net/route/route_ctl.c,
 * netinet/in.c, netinet6/in6.c, netinet6/scope6.c) over an emulated stack: Ethernet
 * interfaces the scenario creates, VLAN clones, addresses and routes, recorded so the end of a
 * run can say what the module left behind. Nothing here reaches the host's network.
 */
#include "kpi.h"

#include <netinet6/scope6_var.h>
#include <net/if_vlan_var.h>

static struct vnet vnet0_store = { .vnet_magic_n = VNET_MAGIC_N };
struct vnet *vnet0 = &vnet0_store;

#define NIC_MAX 8
#define ADDR_MAX 16
#define ROUTE_MAX 16

struct knic {
	struct ifnet *ifp;
	unsigned char mac[6];
	int refs;
	int clone;		/* a VLAN created by if_clone_create */
	int initial;		/* existed before the module loaded */
	int pcp;
};

struct kaddr {
	int used, initial;
	int ifindex, family;
	unsigned char addr[16];
	int plen;
};

struct kroute {
	int used, initial;
	int family, host;
	unsigned char dst[16], mask[16], gw[16];
	int has_gw, ifindex;
};

static struct knic nics[NIC_MAX];
static int nnics;
static struct kaddr addrs[ADDR_MAX];
static struct kroute routes[ROUTE_MAX];
static void *net_cv;
static int snapshot_taken;

void
net_init(void)
{
	if (net_cv == NULL)
		net_cv = host_cv_new();
}

static struct knic *
nic_of(struct ifnet *ifp)
{
	int i;

	for (i = 0; i < nnics; i++)
		if (nics[i].ifp == ifp)
			return (&nics[i]);
	return (NULL);
}

static struct knic *
nic_named(const char *name)
{
	int i;

	for (i = 0; i < nnics; i++)
		if (nics[i].ifp != NULL && kstreq(nics[i].ifp->if_xname, name))
			return (&nics[i]);
	return (NULL);
}

static struct knic *
nic_add(const char *name, const unsigned char *mac, int link_up, hu64 baudrate)
{
	struct knic *n;
	struct ifnet *ifp;

	if (nnics == NIC_MAX)
		host_panic("kmodsim: too many interfaces");
	n = &nics[nnics];
	ifp = kmem_alloc(sizeof(*ifp));
	strlcpy(ifp->if_xname, name, sizeof(ifp->if_xname));
	ifp->if_index = (u_short)(nnics + 1);
	ifp->if_type = IFT_ETHER;
	ifp->if_addrlen = 6;	/* ETHER_ADDR_LEN */
	ifp->if_link_state = link_up ? LINK_STATE_UP : LINK_STATE_DOWN;
	ifp->if_baudrate = baudrate;
	ifp->if_flags = IFF_BROADCAST | IFF_SIMPLEX | IFF_MULTICAST;
	host_memcpy(n->mac, mac, 6);
	n->ifp = ifp;
	n->initial = !snapshot_taken;
	nnics++;
	return (n);
}

void
kpi_nic(const char *name, const unsigned char *mac, int link_up, hu64 baudrate)
{
	host_cv_lock(net_cv);
	(void)nic_add(name, mac, link_up, baudrate);
	host_cv_unlock(net_cv);
}

int
net_ifp_index_of(const char *name)
{
	struct knic *n = nic_named(name);

	return (n != NULL ? n->ifp->if_index : 0);
}

static void
need_vnet(const char *what)
{
	if (curthread->td_vnet == NULL)
		rule(R_NEED_VNET, "%s with curvnet NULL (V_ variables dereference it)", what);
}

static void
need_epoch(const char *what)
{
	if (!in_net_epoch())
		rule(R_NEED_EPOCH, "%s outside the network epoch", what);
}

/* ---- interface accessors (net/if.c) ---- */

int
if_gettype(const if_t ifp)
{
	return (((const struct ifnet *)ifp)->if_type);
}

uint8_t
if_getaddrlen(if_t ifp)
{
	return (((struct ifnet *)ifp)->if_addrlen);
}

#if __FreeBSD_version >= 1500000
char *
#else
caddr_t
#endif
if_getlladdr(const if_t ifp)
{
	struct knic *n = nic_of(ifp);

	return (n != NULL ? (char *)n->mac : NULL);
}

const char *
if_name(if_t ifp)
{
	return (((struct ifnet *)ifp)->if_xname);
}

uint64_t
if_getbaudrate(const if_t ifp)
{
	return (((const struct ifnet *)ifp)->if_baudrate);
}

int
if_getlinkstate(if_t ifp)
{
	return (((struct ifnet *)ifp)->if_link_state);
}

void
if_ref(if_t ifp)
{
	struct knic *n;

	stack_probe();
	host_cv_lock(net_cv);
	n = nic_of(ifp);
	if (n != NULL)
		n->refs++;
	host_cv_unlock(net_cv);
}

void
if_rele(if_t ifp)
{
	struct knic *n;

	stack_probe();
	host_cv_lock(net_cv);
	n = nic_of(ifp);
	if (n != NULL && n->refs-- <= 0)
		rule(R_IFNET_REF, "if_rele of %s without a reference", n->ifp->if_xname);
	host_cv_unlock(net_cv);
}

/* net/if.c if_foreach: NET_EPOCH_ASSERT(), walks V_ifnet. */
int
if_foreach(if_foreach_cb_t cb, void *cb_arg)
{
	int i, error = 0;

	stack_probe();
	need_epoch("if_foreach");
	need_vnet("if_foreach");
	for (i = 0; i < nnics && error == 0; i++)
		if (nics[i].ifp != NULL)
			error = cb(nics[i].ifp, cb_arg);
	return (error);
}

/*
 * net/if.c if_foreach_sleep: copies the matching interfaces (with references) under the
 * ifnet sx lock, then calls cb without any lock; cb may sleep. No epoch needed.
 */
int
if_foreach_sleep(if_foreach_match_t match_cb, void *match_arg, if_foreach_cb_t cb,
    void *cb_arg)
{
	int i, error = 0;

	stack_probe();
	may_sleep("if_foreach_sleep (sx lock, malloc M_WAITOK)");
	need_vnet("if_foreach_sleep");
	for (i = 0; i < nnics && error == 0; i++) {
		if (nics[i].ifp == NULL)
			continue;
		if (match_cb != NULL && !match_cb(nics[i].ifp, match_arg))
			continue;
		error = cb(nics[i].ifp, cb_arg);
	}
	return (error);
}

/* net/if.c ifunit_ref: NET_EPOCH_ENTER inside, reads V_ifnet. */
if_t
ifunit_ref(const char *name)
{
	struct knic *n;

	stack_probe();
	need_vnet("ifunit_ref");
	host_cv_lock(net_cv);
	n = nic_named(name);
	if (n != NULL)
		n->refs++;
	host_cv_unlock(net_cv);
	return (n != NULL ? n->ifp : NULL);
}

int
if_getindex(const if_t ifp)
{
	return (((const struct ifnet *)ifp)->if_index);
}

/* ---- addresses and flags (ifioctl) ---- */

static int
prefix_len(const unsigned char *mask, int bytes)
{
	int i, n = 0;

	for (i = 0; i < bytes; i++) {
		unsigned char b = mask[i];

		while (b & 0x80) {
			n++;
			b <<= 1;
		}
	}
	return (n);
}

static struct kaddr *
addr_find(int ifindex, int family, const unsigned char *a)
{
	int i;

	for (i = 0; i < ADDR_MAX; i++)
		if (addrs[i].used && addrs[i].ifindex == ifindex && addrs[i].family == family &&
		    memcmp(addrs[i].addr, a, family == AF_INET ? 4 : 16) == 0)
			return (&addrs[i]);
	return (NULL);
}

static int
addr_add(int ifindex, int family, const unsigned char *a, int plen)
{
	int i;

	if (addr_find(ifindex, family, a) != NULL)
		return (0);	/* in_aifaddr_ioctl updates an existing address */
	for (i = 0; i < ADDR_MAX; i++)
		if (!addrs[i].used) {
			addrs[i].used = 1;
			addrs[i].initial = !snapshot_taken;
			addrs[i].ifindex = ifindex;
			addrs[i].family = family;
			host_memcpy(addrs[i].addr, a, family == AF_INET ? 4 : 16);
			addrs[i].plen = plen;
			return (0);
		}
	return (ENOBUFS);
}

static int
addr_del(int ifindex, int family, const unsigned char *a)
{
	struct kaddr *ka = addr_find(ifindex, family, a);

	if (ka == NULL)
		return (EADDRNOTAVAIL);
	if (ka->initial)
		rule(R_NET_LEFTOVER, "an address that existed before the module loaded was removed");
	ka->used = 0;
	return (0);
}

/*
 * net/if.c ifioctl: may sleep (sx locks, M_WAITOK); sets curvnet from the socket itself. The
 * requests the module makes: flags, VLAN PCP, IPv4/IPv6 addresses (add and delete).
 */
int
ifioctl(struct socket *so, u_long cmd, caddr_t data, struct thread *td __unused)
{
	struct ifreq *ifr = (struct ifreq *)data;
	struct knic *n;
	int error = 0;

	stack_probe();
	may_sleep("ifioctl");
	if (so == NULL)
		return (EINVAL);
	host_cv_lock(net_cv);
	n = nic_named(ifr->ifr_name);
	if (n == NULL) {
		host_cv_unlock(net_cv);
		return (ENXIO);
	}
	switch (cmd) {
	case SIOCGIFFLAGS:
		ifr->ifr_flags = n->ifp->if_flags & 0xffff;
		ifr->ifr_flagshigh = n->ifp->if_flags >> 16;
		break;
	case SIOCSIFFLAGS:
		n->ifp->if_flags = (ifr->ifr_flags & 0xffff) | (ifr->ifr_flagshigh << 16);
		kpi_log("ifioctl(%s, SIOCSIFFLAGS %#x)", n->ifp->if_xname, n->ifp->if_flags);
		break;
	case SIOCSLANPCP:
		if (!n->clone)
			error = EINVAL;
		else
			n->pcp = ifr->ifr_lan_pcp;
		break;
	case SIOCAIFADDR: {
		struct in_aliasreq *ifra = (struct in_aliasreq *)data;

		error = addr_add(n->ifp->if_index, AF_INET,
		    (unsigned char *)&ifra->ifra_addr.sin_addr,
		    prefix_len((unsigned char *)&ifra->ifra_mask.sin_addr, 4));
		kpi_log("ifioctl(%s, SIOCAIFADDR): %d", n->ifp->if_xname, error);
		break;
	}
	case SIOCDIFADDR:
		error = addr_del(n->ifp->if_index, AF_INET,
		    (unsigned char *)&((struct sockaddr_in *)&ifr->ifr_addr)->sin_addr);
		kpi_log("ifioctl(%s, SIOCDIFADDR): %d", n->ifp->if_xname, error);
		break;
	case SIOCAIFADDR_IN6: {
		struct in6_aliasreq *ifra = (struct in6_aliasreq *)data;

		error = addr_add(n->ifp->if_index, AF_INET6, ifra->ifra_addr.sin6_addr.s6_addr,
		    prefix_len(ifra->ifra_prefixmask.sin6_addr.s6_addr, 16));
		kpi_log("ifioctl(%s, SIOCAIFADDR_IN6): %d", n->ifp->if_xname, error);
		break;
	}
	case SIOCDIFADDR_IN6: {
		struct in6_ifreq *ifr6 = (struct in6_ifreq *)data;

		error = addr_del(n->ifp->if_index, AF_INET6, ifr6->ifr_addr.sin6_addr.s6_addr);
		kpi_log("ifioctl(%s, SIOCDIFADDR_IN6): %d", n->ifp->if_xname, error);
		break;
	}
	default:
		error = EOPNOTSUPP;
		break;
	}
	host_cv_unlock(net_cv);
	return (error);
}

/* net/if.c ifa_ifwithaddr_check: enters the epoch itself; V_ lookups need curvnet. */
int
ifa_ifwithaddr_check(const struct sockaddr *sa)
{
	unsigned char a[16];
	int i, family = 0, found = 0;

	stack_probe();
	need_vnet("ifa_ifwithaddr_check");
	host_memset(a, 0, sizeof(a));
	if (sa->sa_family == AF_INET) {
		family = AF_INET;
		host_memcpy(a, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6) {
		family = AF_INET6;
		host_memcpy(a, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
	}
	host_cv_lock(net_cv);
	for (i = 0; i < ADDR_MAX; i++)
		if (addrs[i].used && addrs[i].family == family &&
		    memcmp(addrs[i].addr, a, family == AF_INET ? 4 : 16) == 0)
			found = 1;
	host_cv_unlock(net_cv);
	return (found);
}

/* netinet6/scope6.c in6_setscope: a link-local address gets the interface index embedded. */
int
in6_setscope(struct in6_addr *in6, struct ifnet *ifp, u_int32_t *ret_id)
{
	stack_probe();
	if (IN6_IS_SCOPE_LINKLOCAL(in6)) {
		in6->s6_addr16[1] = htons(ifp->if_index);
		if (ret_id != NULL)
			*ret_id = ifp->if_index;
	} else if (ret_id != NULL)
		*ret_id = 0;
	return (0);
}

/* ---- VLAN clones (net/if_clone.c, net/if_vlan.c) ---- */

int
if_clone_create(char *name, size_t len __unused, caddr_t params __unused)
{
	char parent[IFNAMSIZ];
	struct knic *p, *n;
	const char *dot = NULL, *s;
	int error = 0;

	stack_probe();
	may_sleep("if_clone_create");
	need_vnet("if_clone_create");
	for (s = name; *s != '\0'; s++)
		if (*s == '.')
			dot = s;
	if (dot == NULL || dot - name >= IFNAMSIZ)
		return (EINVAL);
	host_memcpy(parent, name, dot - name);
	parent[dot - name] = '\0';
	host_cv_lock(net_cv);
	p = nic_named(parent);
	if (p == NULL)
		error = ENXIO;
	else if (nic_named(name) != NULL)
		error = EEXIST;
	else {
		n = nic_add(name, p->mac, p->ifp->if_link_state == LINK_STATE_UP,
		    p->ifp->if_baudrate);
		n->ifp->if_type = IFT_L2VLAN;
		n->clone = 1;
	}
	host_cv_unlock(net_cv);
	kpi_log("if_clone_create(%s): %d", name, error);
	return (error);
}

int
if_clone_destroy(const char *name)
{
	struct knic *n;
	int error = 0;

	stack_probe();
	may_sleep("if_clone_destroy");
	need_vnet("if_clone_destroy");
	host_cv_lock(net_cv);
	n = nic_named(name);
	if (n == NULL || !n->clone)
		error = n == NULL ? ENXIO : EINVAL;
	else if (n->refs > 0)
		rule(R_IFNET_REF, "%s destroyed with %d references left", name, n->refs);
	if (error == 0 && n != NULL) {
		int i;

		for (i = 0; i < ADDR_MAX; i++)
			if (addrs[i].used && addrs[i].ifindex == n->ifp->if_index)
				addrs[i].used = 0;
		n->ifp = NULL;
	}
	host_cv_unlock(net_cv);
	kpi_log("if_clone_destroy(%s): %d", name, error);
	return (error);
}

/* ---- routes (net/route/route_ctl.c rib_action: "Needs to be run in network epoch") ---- */

static void
sa_bytes(const struct sockaddr *sa, int *family, unsigned char *out)
{
	host_memset(out, 0, 16);
	if (sa == NULL)
		return;
	*family = sa->sa_family;
	if (sa->sa_family == AF_INET)
		host_memcpy(out, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	else if (sa->sa_family == AF_INET6)
		host_memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
}

static struct kroute *
route_find(int family, const unsigned char *dst, const unsigned char *mask, int host)
{
	int i;

	for (i = 0; i < ROUTE_MAX; i++)
		if (routes[i].used && routes[i].family == family && routes[i].host == host &&
		    memcmp(routes[i].dst, dst, 16) == 0 &&
		    (host || memcmp(routes[i].mask, mask, 16) == 0))
			return (&routes[i]);
	return (NULL);
}

int
rib_action(uint32_t fibnum, int action, struct rt_addrinfo *info, struct rib_cmd_info *rc)
{
	unsigned char dst[16], mask[16], gw[16];
	int family = 0, f2 = 0, host, error = 0, i;
	struct kroute *r;

	stack_probe();
	need_epoch("rib_action");
	need_vnet("rib_action");
	if (fibnum != 0)
		return (EINVAL);
	sa_bytes(info->rti_info[RTAX_DST], &family, dst);
	sa_bytes(info->rti_info[RTAX_NETMASK], &f2, mask);
	sa_bytes(info->rti_info[RTAX_GATEWAY], &f2, gw);
	host = (info->rti_flags & RTF_HOST) != 0 || info->rti_info[RTAX_NETMASK] == NULL;
	host_cv_lock(net_cv);
	r = route_find(family, dst, mask, host);
	switch (action) {
	case RTM_ADD:
		if (r != NULL) {
			error = EEXIST;
			break;
		}
		for (i = 0; i < ROUTE_MAX && routes[i].used; i++)
			;
		if (i == ROUTE_MAX) {
			error = ENOBUFS;
			break;
		}
		r = &routes[i];
		host_memset(r, 0, sizeof(*r));
		r->used = 1;
		r->initial = !snapshot_taken;
		r->family = family;
		r->host = host;
		host_memcpy(r->dst, dst, 16);
		host_memcpy(r->mask, mask, 16);
		host_memcpy(r->gw, gw, 16);
		r->has_gw = info->rti_info[RTAX_GATEWAY] != NULL;
		r->ifindex = info->rti_ifp != NULL ? info->rti_ifp->if_index : 0;
		break;
	case RTM_DELETE:
		if (r == NULL)
			error = ESRCH;
		else {
			if (r->initial)
				rule(R_NET_LEFTOVER, "a route that existed before the module loaded "
				    "was removed");
			r->used = 0;
		}
		break;
	default:
		error = EOPNOTSUPP;
	}
	host_cv_unlock(net_cv);
	if (rc != NULL)
		host_memset(rc, 0, sizeof(*rc));
	kpi_log("rib_action(%s, family %d, %s): %d", action == RTM_ADD ? "RTM_ADD" :
	    "RTM_DELETE", family, host ? "host" : "net", error);
	return (error);
}

/* The state before MOD_LOAD: what the final check compares against. */
void
net_snapshot(void)
{
	snapshot_taken = 1;
}

static void
fmt_addr(char *buf, hsize_t len, int family, const unsigned char *a)
{
	if (family == AF_INET)
		kappend(buf, len, "%u.%u.%u.%u", a[0], a[1], a[2], a[3]);
	else {
		int i;

		for (i = 0; i < 16; i += 2)
			kappend(buf, len, "%s%x", i > 0 ? ":" : "", (a[i] << 8) | a[i + 1]);
	}
}

int
net_routes_text(char *buf, hsize_t len)
{
	int i, n = 0;

	buf[0] = '\0';
	host_cv_lock(net_cv);
	for (i = 0; i < nnics; i++)
		if (nics[i].ifp != NULL && nics[i].clone)
			kappend(buf, len, "%sclone %s", n++ > 0 ? "; " : "", nics[i].ifp->if_xname);
	for (i = 0; i < ADDR_MAX; i++)
		if (addrs[i].used) {
			kappend(buf, len, "%saddr ", n++ > 0 ? "; " : "");
			fmt_addr(buf, len, addrs[i].family, addrs[i].addr);
			kappend(buf, len, "/%d", addrs[i].plen);
		}
	for (i = 0; i < ROUTE_MAX; i++)
		if (routes[i].used) {
			kappend(buf, len, "%sroute ", n++ > 0 ? "; " : "");
			fmt_addr(buf, len, routes[i].family, routes[i].dst);
			kappend(buf, len, "%s", routes[i].host ? " host" : " net");
			if (routes[i].has_gw) {
				kappend(buf, len, " via ");
				fmt_addr(buf, len, routes[i].family, routes[i].gw);
			}
		}
	host_cv_unlock(net_cv);
	return (n);
}

int
kpi_net_routes(char *buf, hsize_t len)
{
	return (net_routes_text(buf, len));
}

void
net_final_checks(int unloaded)
{
	int i;

	host_cv_lock(net_cv);
	for (i = 0; i < nnics; i++)
		if (nics[i].ifp != NULL && nics[i].refs != 0 && unloaded)
			rule(R_IFNET_REF, "%s: %d references left after unload",
			    nics[i].ifp->if_xname, nics[i].refs);
	host_cv_unlock(net_cv);
	if (!unloaded)
		return;
	host_cv_lock(net_cv);
	for (i = 0; i < nnics; i++)
		if (nics[i].ifp != NULL && !nics[i].initial)
			rule(R_NET_LEFTOVER, "interface %s created by the module left at unload",
			    nics[i].ifp->if_xname);
	for (i = 0; i < ADDR_MAX; i++)
		if (addrs[i].used && !addrs[i].initial)
			rule(R_NET_LEFTOVER, "an address the module added is left at unload");
	for (i = 0; i < ROUTE_MAX; i++)
		if (routes[i].used && !routes[i].initial)
			rule(R_NET_LEFTOVER, "a route the module added is left at unload");
	host_cv_unlock(net_cv);
}

/* Whether a connect to this IPv6 address needs a zone: link-local. */
int
net_v6_linklocal(const unsigned char *a)
{
	return (a[0] == 0xfe && (a[1] & 0xc0) == 0x80);
}

/* The interface index of a zone, 0 if none exists. */
int
net_zone_valid(int zone)
{
	int ok;

	host_cv_lock(net_cv);
	ok = zone > 0 && zone <= nnics && nics[zone - 1].ifp != NULL;
	host_cv_unlock(net_cv);
	return (ok);
}
