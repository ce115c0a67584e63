/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* connlat-probe: what the BPF side hands user space, one record per finished active connect. */
#ifndef CONNLAT_PROBE_H
#define CONNLAT_PROBE_H

#define TASK_COMM_LEN 16

/* Per-CPU counters of events that could not be reported (index into the `lost` map). */
enum lost_reason {
	LOST_RINGBUF = 0,	/* ring buffer full: the record was dropped */
	LOST_START = 1,		/* the connect ended but its start was never seen (map full, or begun before attach) */
	LOST_NR = 2,
};

struct event {
	__u64 end_ns;		/* bpf_ktime_get_ns() at SYN_SENT -> ESTABLISHED/CLOSE */
	__u64 latency_ns;	/* since CLOSE -> SYN_SENT */
	__u32 tgid;		/* of the task that called connect() */
	__u32 srtt_us;		/* tcp_sock srtt at ESTABLISHED (0: no sample) */
	__s32 error;		/* socket error (positive errno) when it closed; 0: none */
	__u16 retransmits;	/* SYN retransmissions while in SYN_SENT */
	__u16 family;		/* AF_INET / AF_INET6 */
	__u16 sport;		/* host order */
	__u16 dport;		/* host order */
	__u8 established;	/* 1: reached ESTABLISHED */
	__u8 pad[3];
	__u8 saddr[16];
	__u8 daddr[16];
	char comm[TASK_COMM_LEN];
};

#endif /* CONNLAT_PROBE_H */
