// CConntrack: the C surface rackd needs from libnetfilter_conntrack, to build ctnetlink requests
// (Kernel/ConntrackShifts.swift): an entry's attributes set one by one, encoded by nfct_nlmsg_build into a
// message whose netlink and nfgenmsg headers libmnl puts. Only headers here; no logic lives here.
#ifndef RACKD_CCONNTRACK_SHIM_H
#define RACKD_CCONNTRACK_SHIM_H

#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>  /* before any linux/ header, so linux/libc-compat.h defers to glibc */
#include <arpa/inet.h>
#include <linux/netlink.h>
#include <libmnl/libmnl.h>
/* The kernel's nfnetlink header first: libnetfilter_conntrack includes libnfnetlink's older copy of it, under
   the same include guard, whose enum nfnetlink_groups has fewer members. CNftables sees the kernel's; two
   modules defining the enum differently is an error once a file imports both (a clean build's order). */
#include <linux/netfilter/nfnetlink.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack_tcp.h>

#endif
