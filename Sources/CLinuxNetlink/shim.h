// CLinuxNetlink: the kernel UAPI headers rackd needs for sock_diag and rtnetlink. Headers only; links nothing.
// Only constants Swift cannot import; no logic lives here.
#ifndef RACKD_CLINUXNETLINK_SHIM_H
#define RACKD_CLINUXNETLINK_SHIM_H

#include <stdint.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <netinet/in.h>  /* before any linux/ header, so linux/libc-compat.h defers to glibc */
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/inet_diag.h>
#include <linux/sock_diag.h>

/* The kernel's struct tcp_info, under the name clnl_tcp_info. Swift's Glibc module already includes
 * <netinet/tcp.h>, whose struct tcp_info is an older, shorter copy (no tcpi_bytes_acked) and whose other
 * tags clash with <linux/tcp.h>'s too; two different definitions of one tag in two modules is a clang
 * error. So every tag both headers declare is renamed while <linux/tcp.h> is read. */
#define tcp_info clnl_tcp_info
#define tcphdr clnl_tcphdr
#define tcp_md5sig clnl_tcp_md5sig
#define tcp_repair_opt clnl_tcp_repair_opt
#define tcp_repair_window clnl_tcp_repair_window
#define tcp_zerocopy_receive clnl_tcp_zerocopy_receive
#define tcp_ca_state clnl_tcp_ca_state
#include <linux/tcp.h>
#undef tcp_info
#undef tcphdr
#undef tcp_md5sig
#undef tcp_repair_opt
#undef tcp_repair_window
#undef tcp_zerocopy_receive
#undef tcp_ca_state

/// The socket types, which glibc declares in a header Swift's Glibc module includes only textually: in
/// rackd, whose other C modules include it too, Swift does not see them from files that import this one.
/// IPPROTO_TCP: glibc's and the kernel's in.h both declare it, and release (whole-module) builds then see neither.
static const int CLNL_IPPROTO_TCP = 6;
static const int CLNL_SOCK_RAW = SOCK_RAW;
static const int CLNL_SOCK_STREAM = SOCK_STREAM;
static const int CLNL_SOCK_DGRAM = SOCK_DGRAM;
static const int CLNL_SOCK_CLOEXEC = SOCK_CLOEXEC;
static const int CLNL_SOCK_NONBLOCK = SOCK_NONBLOCK;
/// MSG_DONTWAIT, which glibc declares only in a form Swift does not import.
static const int CLNL_MSG_DONTWAIT = 0x40;
/// MSG_TRUNC, likewise.
static const int CLNL_MSG_TRUNC = 0x20;
/// NLA_TYPE_MASK, whose definition Swift cannot import: an attribute type without its flag bits.
static const uint16_t CLNL_NLA_TYPE_MASK = (uint16_t)~(NLA_F_NESTED | NLA_F_NET_BYTEORDER);
/// The kernel's struct ucred (SO_PEERCRED), which glibc declares only under _GNU_SOURCE.
struct clnl_ucred {
    int32_t pid;
    uint32_t uid;
    uint32_t gid;
};
/// MSG_NOSIGNAL, which glibc declares only in a form Swift does not import.
static const int CLNL_MSG_NOSIGNAL = 0x4000;

#endif
