// SPDX-License-Identifier: MIT OR Apache-2.0
//
// The XDP program of lvs-dataplane's AF_XDP backend (src/afxdp.rs): it redirects to the
// AF_XDP socket of the receiving queue only the frames a director must see, and passes
// everything else (ARP, neighbour discovery, management traffic, DR replies the host routes)
// to the kernel untouched.
//
// A frame is the director's when its IPv4 or IPv6 header and transport ports match an entry of
// `lvs_matches`, which user space fills from the director's services (lvs_dataplane::filter):
// by destination (a VIP, with its protocol and port, or any port or protocol) or by source (a
// NAT real server's replies), except frames to the host's own addresses. The same decision as
// Filter::wants in filter.rs. Built by lvs-dataplane's build.rs with clang -target bpf.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

// One match: see filter.rs, `Match::key`, which writes the same 20 bytes.
struct lvs_match {
	__u8 addr[16];  // IPv4 as ::ffff:a.b.c.d
	__be16 port;    // 0: any port
	__u8 proto;     // 0: any protocol
	__u8 dir;       // 0: destination, 1: source, 2: the host's own destination
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} lvs_xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, struct lvs_match);
	__type(value, __u8);
} lvs_matches SEC(".maps");

// Whether (addr, proto, port) is in the map for direction `dir`, trying the exact entry, then
// any port, then any protocol.
static __always_inline int lookup(struct lvs_match *k, __u8 proto, __be16 port)
{
	k->proto = proto;
	k->port = port;
	if (port && bpf_map_lookup_elem(&lvs_matches, k))
		return 1;
	k->port = 0;
	if (bpf_map_lookup_elem(&lvs_matches, k))
		return 1;
	k->proto = 0;
	return bpf_map_lookup_elem(&lvs_matches, k) != 0;
}

SEC("xdp")
int lvs_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct lvs_match dst = {}, src = {};
	__be16 *ports = 0;
	__u8 proto;
	void *l4;

	if ((void *)(eth + 1) > end)
		return XDP_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end || ip->ihl < 5)
			return XDP_PASS;
		// Later fragments carry no ports: the kernel reassembles them.
		if (ip->frag_off & bpf_htons(0x1fff))
			return XDP_PASS;
		proto = ip->protocol;
		dst.addr[10] = dst.addr[11] = 0xff;
		src.addr[10] = src.addr[11] = 0xff;
		__builtin_memcpy(&dst.addr[12], &ip->daddr, 4);
		__builtin_memcpy(&src.addr[12], &ip->saddr, 4);
		l4 = (void *)ip + ip->ihl * 4;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end)
			return XDP_PASS;
		proto = ip6->nexthdr;
		__builtin_memcpy(dst.addr, &ip6->daddr, 16);
		__builtin_memcpy(src.addr, &ip6->saddr, 16);
		l4 = ip6 + 1;
	} else {
		return XDP_PASS;
	}
	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP) {
		ports = l4;
		if ((void *)(ports + 2) > end)
			return XDP_PASS;
	}
	if (lookup(&dst, proto, ports ? ports[1] : 0))
		return bpf_redirect_map(&lvs_xsks, ctx->rx_queue_index, XDP_PASS);
	// To the host's own address (a health check's answer): the kernel's, whoever sends it.
	dst.dir = 2;
	dst.proto = 0;
	dst.port = 0;
	if (bpf_map_lookup_elem(&lvs_matches, &dst))
		return XDP_PASS;
	src.dir = 1;
	if (lookup(&src, proto, ports ? ports[0] : 0))
		return bpf_redirect_map(&lvs_xsks, ctx->rx_queue_index, XDP_PASS);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "MIT";
