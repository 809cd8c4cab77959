// CNftables: the C surface rackd needs from libnftnl and libmnl.
// Only static inline wrappers for macros; no logic lives here.
#ifndef RACKD_CNFTABLES_SHIM_H
#define RACKD_CNFTABLES_SHIM_H

#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>  /* before any linux/ header, so linux/libc-compat.h defers to glibc */
#include <linux/netlink.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nf_tables.h>
#include <libmnl/libmnl.h>
#include <libnftnl/table.h>
#include <libnftnl/chain.h>
#include <libnftnl/rule.h>
#include <libnftnl/set.h>
#include <libnftnl/expr.h>
#include <libnftnl/batch.h>
#include <libnftnl/udata.h>
#include <libnftnl/common.h>

/// MSG_DONTWAIT, which glibc declares only in a form Swift does not import.
static const int CNFT_MSG_DONTWAIT = 0x40;

static inline int cnft_socket_buffer_size(void) { return MNL_SOCKET_BUFFER_SIZE; }

static inline void *cnft_batch_buffer(struct mnl_nlmsg_batch *b) { return mnl_nlmsg_batch_head(b); }

#endif
