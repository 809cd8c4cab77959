// CNFQ: the C surface rackd needs from libnetfilter_queue's mnl-based API.
// Only static inline wrappers for macros and for things Swift cannot express; no logic lives here.
#ifndef RACKD_CNFQ_SHIM_H
#define RACKD_CNFQ_SHIM_H

#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include <sys/types.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <sys/socket.h>
#include <netinet/in.h>  /* before any linux/ header, so linux/libc-compat.h defers to glibc */
#include <arpa/inet.h>
#include <linux/netlink.h>
#include <linux/netfilter.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nfnetlink.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

/// The buffer size that holds the largest netlink message the queue can deliver
/// (a 64 KiB GSO packet plus attributes), as libnetfilter_queue's examples size it.
static inline size_t cnfq_socket_buffer_size(void) {
    return 0xffff + (MNL_SOCKET_BUFFER_SIZE / 2);
}

static inline struct nlmsghdr *cnfq_nlmsg_next(const struct nlmsghdr *nlh, int *len) {
    return mnl_nlmsg_next(nlh, len);
}

static inline int cnfq_nlmsg_ok(const struct nlmsghdr *nlh, int len) {
    return mnl_nlmsg_ok(nlh, len);
}

/// Attribute table size for nfq_nlmsg_parse.
static inline int cnfq_attr_max(void) { return NFQA_MAX; }

static inline uint32_t cnfq_ntohl(uint32_t v) { return ntohl(v); }
static inline uint16_t cnfq_ntohs(uint16_t v) { return ntohs(v); }

/// recvmmsg(2) and its vector entry, which glibc declares only under _GNU_SOURCE (not set for Swift).
struct cnfq_mmsghdr {
    struct msghdr msg_hdr;
    unsigned int msg_len;
};

static inline int cnfq_recvmmsg(int fd, struct cnfq_mmsghdr *vector, unsigned int count, int flags) {
    return (int)syscall(SYS_recvmmsg, fd, vector, count, flags, (void *)0);
}

static const int CNFQ_MSG_DONTWAIT = 0x40;

#endif
