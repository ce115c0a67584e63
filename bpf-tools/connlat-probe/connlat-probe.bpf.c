// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * connlat-probe (BPF side): one record per active TCP connect, from raw tracepoints only (no kprobes, no fentry):
 *   sock:inet_sock_set_state   CLOSE -> SYN_SENT starts a connect (runs in the connecting task: pid/comm);
 *                              SYN_SENT -> ESTABLISHED / CLOSE ends it (often in softirq: pid/comm not used)
 *   tcp:tcp_retransmit_skb     while SYN_SENT: a SYN retransmission (one sent: a failed one is not counted)
 *   sock:inet_sk_error_report  the socket error (ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH, ...)
 * Raw tracepoints hand us the struct sock itself, so nothing needs tracefs, and fields are read with CO-RE. Every
 * program is built twice from one body (`btf` is a constant, so each copy keeps only its own branch):
 *   tp_btf  (preferred) the socket is a BTF pointer, read with plain loads
 *   raw_tp  (fallback: kernels where tp_btf cannot load, e.g. without kernel BTF) every read a probe read
 * The loader loads one set. bench/probe-cost.ts measures them (BENCHMARKS.md, "connlat-probe's own cost").
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "connlat-probe.h"

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
/* include/net/tcp_states.h */
#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_SYN_RECV 3
#define TCP_CLOSE 7
#define IS_CONNECTING(state) ((state) == TCP_SYN_SENT || (state) == TCP_SYN_RECV)
/* include/uapi/linux/errqueue.h */
#define SO_EE_ORIGIN_ICMP 2
#define SO_EE_ORIGIN_ICMP6 3

/* A field of the socket: a direct (BTF) load for tp_btf, a CO-RE probe read for raw_tp. */
#define SK_READ(btf, ptr, field) ((btf) ? (ptr)->field : BPF_CORE_READ(ptr, field))

/*
 * bench/probe-cost.ts builds the programs with CONNLAT_PROBE_EMPTY: attached to the same tracepoints, doing nothing,
 * they measure what the tracepoints cost before any of our work (the floor).
 */
#ifdef CONNLAT_PROBE_EMPTY
#define RETURN_IF_EMPTY() return 0
#else
#define RETURN_IF_EMPTY() do { } while (0)
#endif

/* Wake the reader early once this much is queued; otherwise it drains every poll interval (batched output). */
#define WAKEUP_BYTES (256 * 1024)

struct start {
	__u64 ts_ns;
	__u32 tgid;
	__u32 retransmits;
	__s32 error;
	char comm[TASK_COMM_LEN];
};

/*
 * Connects in flight at once. LRU: the kernel may skip our program for an end (re-entered on its CPU; counted in
 * recursion_misses, which the loader reports), and that socket's entry must not stay forever; a connect evicted while
 * still in flight is counted as LOST_START when it ends. (Measured and not used, BENCHMARKS.md: the socket's own
 * storage, BPF_MAP_TYPE_SK_STORAGE, costs an allocation per connect and was slower; a plain hash or a per-CPU LRU
 * were a little faster but can fill with entries of missed ends, or evict early on a CPU with many connects.)
 */
#define MAX_CONNECTING 65536
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_CONNECTING);
	__type(key, __u64); /* struct sock * */
	__type(value, struct start);
} connecting SEC(".maps");

/* Sized by the loader (bpf_map__set_max_entries) before load. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 * 1024 * 1024);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LOST_NR);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

static __always_inline void count_lost(__u32 reason)
{
	__u64 *n = bpf_map_lookup_elem(&lost, &reason);

	if (n)
		*n += 1; /* per-CPU slot: no atomics needed */
}

/* The start of this socket's connect in flight, or NULL. */
static __always_inline struct start *start_of(struct sock *sk)
{
	__u64 key = (__u64)sk;

	return bpf_map_lookup_elem(&connecting, &key);
}

static __always_inline void forget_start(struct sock *sk)
{
	__u64 key = (__u64)sk;

	bpf_map_delete_elem(&connecting, &key);
}

/*
 * The errno of the ICMP error last queued on the socket's error queue (IP_RECVERR), or 0. An ICMP unreachable that
 * arrives while connect() holds the socket only sets sk_err_soft and queues this; the app is woken, takes
 * sk_err_soft with SO_ERROR (which clears it) and closes the socket: this is what is left of the reason then.
 * Failures only: probe reads in both program sets.
 */
static __always_inline __s32 queued_icmp_error(struct sock *sk)
{
	void *head = (void *)sk + bpf_core_field_offset(struct sock, sk_error_queue);
	struct sk_buff *skb = BPF_CORE_READ(sk, sk_error_queue.prev);
	struct sock_exterr_skb *serr;
	__u8 origin;

	if (!skb || (void *)skb == head)
		return 0;
	serr = (struct sock_exterr_skb *)((void *)skb + bpf_core_field_offset(struct sk_buff, cb));
	origin = BPF_CORE_READ(serr, ee.ee_origin);
	if (origin != SO_EE_ORIGIN_ICMP && origin != SO_EE_ORIGIN_ICMP6)
		return 0;
	return BPF_CORE_READ(serr, ee.ee_errno);
}

/* The socket's error: hard (sk_err), else soft (sk_err_soft: ICMP while locked), else a queued ICMP error. */
static __always_inline __s32 socket_error(struct sock *sk)
{
	__s32 error = BPF_CORE_READ(sk, sk_err);

	if (!error)
		error = BPF_CORE_READ(sk, sk_err_soft);
	return error ? error : queued_icmp_error(sk);
}

static __always_inline int on_start(struct sock *sk)
{
	__u64 key = (__u64)sk;
	struct start s = {};

	s.ts_ns = bpf_ktime_get_ns();
	s.tgid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(s.comm, sizeof(s.comm));
	/* evicts the least recently used entry when full: that connect is counted as LOST_START when it ends */
	bpf_map_update_elem(&connecting, &key, &s, BPF_ANY);
	return 0;
}

static __always_inline int on_end(struct sock *sk, int oldstate, int newstate, bool btf)
{
	struct start *s = start_of(sk);
	struct event *e;
	__u64 now;
	__s32 error;
	long avail;

	if (!s) {
		/* passive opens pass SYN_RECV -> ESTABLISHED without ever being ours */
		if (oldstate == TCP_SYN_SENT)
			count_lost(LOST_START);
		return 0;
	}
	/* simultaneous open: SYN_SENT -> SYN_RECV, the connect ends at the next transition */
	if (newstate == TCP_SYN_RECV)
		return 0;

	now = bpf_ktime_get_ns();
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_lost(LOST_RINGBUF);
		forget_start(sk);
		return 0;
	}
	e->end_ns = now;
	e->latency_ns = now - s->ts_ns;
	e->tgid = s->tgid;
	e->retransmits = s->retransmits > 0xffff ? 0xffff : s->retransmits;
	__builtin_memcpy(e->comm, s->comm, sizeof(e->comm));
	e->established = newstate == TCP_ESTABLISHED;
	/*
	 * sk_err is set before tcp_done() moves the socket to CLOSE. A soft error (an ICMP that arrived while the
	 * connecting task held the socket) is what the app gets from SO_ERROR, and what the kernel reports when it
	 * gives up: without either, the app closed the socket on its own (aborted).
	 */
	error = s->error;
	if (!error && !e->established)
		error = socket_error(sk);
	e->error = error;
	/*
	 * srtt_us is 8 times the smoothed RTT in us; set from the SYN-ACK before the move to ESTABLISHED. inet_sport,
	 * not skc_num: moving to CLOSE releases the bound port (skc_num = 0) before the tracepoint. Both lie beyond
	 * struct sock: the verifier lets a BTF pointer reach them only as the tcp_sock the kernel's cast returns.
	 */
	if (btf) {
		struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);

		if (tp) {
			e->srtt_us = e->established ? tp->srtt_us >> 3 : 0;
			e->sport = __builtin_bswap16(tp->inet_conn.icsk_inet.inet_sport);
		} else {
			e->srtt_us = 0;
			e->sport = 0;
		}
	} else {
		e->srtt_us = e->established ? BPF_CORE_READ((struct tcp_sock *)sk, srtt_us) >> 3 : 0;
		e->sport = __builtin_bswap16(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	}
	e->family = SK_READ(btf, sk, __sk_common.skc_family);
	e->dport = __builtin_bswap16(SK_READ(btf, sk, __sk_common.skc_dport));
	if (e->family == AF_INET) {
		if (btf) {
			*(__u32 *)e->saddr = sk->__sk_common.skc_rcv_saddr;
			*(__u32 *)e->daddr = sk->__sk_common.skc_daddr;
		} else {
			bpf_core_read(e->saddr, 4, &sk->__sk_common.skc_rcv_saddr);
			bpf_core_read(e->daddr, 4, &sk->__sk_common.skc_daddr);
		}
	} else {
		bpf_core_read(e->saddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(e->daddr, 16, &sk->__sk_common.skc_v6_daddr);
	}
	forget_start(sk);

	avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
	bpf_ringbuf_submit(e, avail >= WAKEUP_BYTES ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
	return 0;
}

static __always_inline int set_state(struct sock *sk, int oldstate, int newstate, bool btf)
{
	RETURN_IF_EMPTY();
	/*
	 * Cheap checks first: this fires for every state change of every TCP socket. A connect is made of
	 * CLOSE -> SYN_SENT and SYN_SENT -> anything (SYN_RECV -> anything after a simultaneous open); the rest (LISTEN,
	 * FIN_*, the server side's transitions) returns here.
	 */
	if (newstate == TCP_SYN_SENT) {
		if (oldstate != TCP_CLOSE)
			return 0;
	} else if (oldstate == TCP_SYN_RECV) {
		/*
		 * A passive open's child leaves SYN_RECV before accept() gives it a struct socket; a simultaneous
		 * open is a connect() with one. So the server side's SYN_RECV -> ESTABLISHED needs no lookup.
		 */
		if (!SK_READ(btf, sk, sk_socket))
			return 0;
	} else if (oldstate != TCP_SYN_SENT) {
		return 0;
	}
	if ((btf ? BPF_CORE_READ_BITFIELD(sk, sk_protocol) : BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol)) != IPPROTO_TCP)
		return 0;
	if (newstate == TCP_SYN_SENT)
		return on_start(sk);
	return on_end(sk, oldstate, newstate, btf);
}

/*
 * Since Linux 6.17 tcp_retransmit_skb also fires for a retransmission that never left this host, with its error as a
 * third argument (-EBUSY: the first copy still queued here; -EHOSTUNREACH: no route; -EPERM: a local firewall drop);
 * before, it fired only for one sent. RETX counts SYNs sent again, the same on every kernel, so a failed one is not
 * counted. The check is a CO-RE relocation: on a kernel without `err` the branch is dead code and the third argument
 * (which it does not have) is never read.
 */
static __always_inline bool retransmit_failed(unsigned long long *ctx)
{
	if (bpf_core_field_exists(struct trace_event_raw_tcp_retransmit_skb, err))
		return (int)ctx[2] != 0;
	return false;
}

static __always_inline int retransmit(unsigned long long *ctx, struct sock *sk, bool btf)
{
	struct start *s;

	RETURN_IF_EMPTY();
	if (SK_READ(btf, sk, __sk_common.skc_state) != TCP_SYN_SENT)
		return 0;
	if (retransmit_failed(ctx))
		return 0;
	s = start_of(sk);
	if (s)
		__sync_fetch_and_add(&s->retransmits, 1);
	return 0;
}

static __always_inline int error_report(struct sock *sk, bool btf)
{
	struct start *s;

	RETURN_IF_EMPTY();
	/* a connect in flight is in SYN_SENT (or SYN_RECV after a simultaneous open): other sockets are never ours */
	if (!IS_CONNECTING(SK_READ(btf, sk, __sk_common.skc_state)))
		return 0;
	s = start_of(sk);
	/*
	 * The app may read (and so clear) the error before the socket reaches CLOSE: keep it now. A report with
	 * sk_err 0 wakes the app for a soft error (ICMP unreachable while connect() held the socket), which SO_ERROR
	 * then hands out, and the app closes the socket.
	 */
	if (s) {
		__s32 error = socket_error(sk);

		if (error)
			s->error = error;
	}
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(tp_set_state, struct sock *sk, int oldstate, int newstate)
{
	return set_state(sk, oldstate, newstate, true);
}

SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(tp_retransmit, struct sock *sk)
{
	return retransmit(ctx, sk, true);
}

SEC("tp_btf/inet_sk_error_report")
int BPF_PROG(tp_error_report, struct sock *sk)
{
	return error_report(sk, true);
}

SEC("raw_tp/inet_sock_set_state")
int BPF_PROG(on_set_state, struct sock *sk, int oldstate, int newstate)
{
	return set_state(sk, oldstate, newstate, false);
}

SEC("raw_tp/tcp_retransmit_skb")
int BPF_PROG(on_retransmit, struct sock *sk)
{
	return retransmit(ctx, sk, false);
}

SEC("raw_tp/inet_sk_error_report")
int BPF_PROG(on_error_report, struct sock *sk)
{
	return error_report(sk, false);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
