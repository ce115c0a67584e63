// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * connlat-probe: one line per active TCP connect with its latency, SYN retransmits, handshake RTT and result.
 * Tracepoints only (see connlat-probe.bpf.c). Output: tcpconnlat's `-t -L` columns, then RETX RTT(ms) RESULT:
 *
 *   TIME(s)   PID    COMM         IP SADDR            LPORT  DADDR            DPORT LAT(ms) RETX RTT(ms) RESULT  # connlat-probe format 1
 *   0.000     4242   curl         4  10.0.0.1         51234  10.0.0.2         80    40.31   0    40.120  ok
 *
 * Lines are written in batches, once per drain of the ring buffer (at most every POLL_MS), so a line reaches a pipe
 * within ~POLL_MS without one write per line. Events that could not be reported go to stderr as
 * "lost N events on CPU #x (why)". SIGINT and SIGTERM drain and flush before exit.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include "connlat-probe.h"
#include "connlat-probe.skel.h"

#define FORMAT_VERSION 1
#define POLL_MS 50
#define LOST_REPORT_NS 1000000000ULL
/* 4 MiB holds ~40k records: two seconds of 20k connects/s even if the reader stalls. */
#define RINGBUF_BYTES (4u * 1024 * 1024)

static volatile sig_atomic_t exiting;
static int verbose;
/* libbpf warnings are not printed while tp_btf is tried (a kernel without it falls back to raw_tp silently) */
static int libbpf_quiet;
static __u64 first_ns;

static const char *const lost_why[LOST_NR] = {
	[LOST_RINGBUF] = "ring buffer full",
	[LOST_START] = "connect start not seen",
};

static void on_signal(int sig)
{
	(void)sig;
	exiting = 1;
}

static int print_libbpf(enum libbpf_print_level level, const char *format, va_list args)
{
	if ((level == LIBBPF_DEBUG || libbpf_quiet) && !verbose)
		return 0;
	return vfprintf(stderr, format, args);
}

/* The fixed result vocabulary; anything else is other:<errno>. */
static const char *result_of(const struct event *e, char *buf, size_t len)
{
	if (e->established)
		return "ok";
	switch (e->error) {
	case 0: return "aborted";
	case ECONNREFUSED: return "refused";
	case ETIMEDOUT: return "timed_out";
	case EHOSTUNREACH: return "host_unreachable";
	case ENETUNREACH: return "net_unreachable";
	}
	snprintf(buf, len, "other:%d", e->error);
	return buf;
}

static int handle_event(void *ctx, void *data, size_t size)
{
	const struct event *e = data;
	char saddr[INET6_ADDRSTRLEN], daddr[INET6_ADDRSTRLEN], rtt[24], result[24];
	int af = e->family == 10 ? AF_INET6 : AF_INET;

	(void)ctx;
	if (size < sizeof(*e))
		return 0;
	if (!inet_ntop(af, e->saddr, saddr, sizeof(saddr)) || !inet_ntop(af, e->daddr, daddr, sizeof(daddr)))
		return 0;
	if (first_ns == 0)
		first_ns = e->end_ns;
	if (e->established && e->srtt_us)
		snprintf(rtt, sizeof(rtt), "%.3f", e->srtt_us / 1000.0);
	else
		strcpy(rtt, "-");
	printf("%-9.3f %-6u %-12.12s %-2d %-16s %-6u %-16s %-5u %-7.2f %-4u %-7s %s\n",
	       (e->end_ns - first_ns) / 1e9, e->tgid, e->comm, af == AF_INET6 ? 6 : 4, saddr, e->sport, daddr,
	       e->dport, e->latency_ns / 1e6, e->retransmits, rtt, result_of(e, result, sizeof(result)));
	return 0;
}

/* Prints what was lost since the last call, per CPU and reason, in the "lost N events on CPU #x" form. */
static void report_lost(int map_fd, __u64 *seen, int ncpus)
{
	__u64 values[ncpus];

	for (__u32 reason = 0; reason < LOST_NR; reason++) {
		if (bpf_map_lookup_elem(map_fd, &reason, values))
			continue;
		for (int cpu = 0; cpu < ncpus; cpu++) {
			__u64 *last = &seen[reason * ncpus + cpu];

			if (values[cpu] > *last)
				fprintf(stderr, "lost %llu events on CPU #%d (%s)\n",
					(unsigned long long)(values[cpu] - *last), cpu, lost_why[reason]);
			*last = values[cpu];
		}
	}
}

/*
 * The kernel skips a BPF program that is entered again on a CPU where it is already running (a softirq interrupting
 * it), and counts that in the program's recursion_misses: those events never reach us. Reported as lost, without a
 * CPU (the kernel does not say which).
 */
static void report_missed(struct bpf_program *const progs[], int nprogs, __u64 *seen)
{
	__u64 missed = 0;

	for (int i = 0; i < nprogs; i++) {
		struct bpf_prog_info info = {};
		__u32 len = sizeof(info);

		if (!bpf_obj_get_info_by_fd(bpf_program__fd(progs[i]), &info, &len))
			missed += info.recursion_misses;
	}
	if (missed > *seen)
		fprintf(stderr, "lost %llu events (the kernel skipped a BPF program re-entered on its CPU)\n",
			(unsigned long long)(missed - *seen));
	*seen = missed;
}

static __u64 now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: connlat-probe [-v] [-h] [-V] [--attach auto|tp_btf|raw_tp]\n"
		"Traces active TCP connects (tracepoints only): one line per connect with latency, SYN retransmits,\n"
		"handshake RTT and result (ok refused timed_out host_unreachable net_unreachable aborted other:<errno>).\n"
		"Needs CAP_BPF and CAP_PERFMON. Stops on SIGINT or SIGTERM.\n"
		"  -a, --attach    tracepoint program type: tp_btf (direct BTF reads; needs kernel BTF), raw_tp, or auto\n"
		"                  (default: tp_btf, else raw_tp)\n"
		"  -v, --verbose   libbpf debug output on stderr (and why tp_btf was not used)\n"
		"  -V, --version   print the version and output format version\n"
		"  -h, --help      this text\n");
}

/* The two program sets of connlat-probe.bpf.c, in the order of `tracepoints`. */
enum attach_type { ATTACH_TP_BTF, ATTACH_RAW_TP };
static const char *const attach_names[] = { [ATTACH_TP_BTF] = "tp_btf", [ATTACH_RAW_TP] = "raw_tp" };
static const char *const tracepoints[3] = {
	"sock:inet_sock_set_state", "tcp:tcp_retransmit_skb", "sock:inet_sk_error_report",
};

struct probe {
	struct connlat_probe_bpf *skel;
	struct bpf_program *progs[3];
	struct bpf_link *links[3];
};

static void probe_destroy(struct probe *p)
{
	for (int i = 0; i < 3; i++) {
		bpf_link__destroy(p->links[i]); /* NULL-safe */
		p->links[i] = NULL;
	}
	connlat_probe_bpf__destroy(p->skel);
	p->skel = NULL;
}

/*
 * Opens, loads and attaches one program set (the other is not loaded); on failure prints why (unless quiet) and
 * returns a negative errno.
 */
static int probe_attach(struct probe *p, enum attach_type type, int quiet)
{
	struct connlat_probe_bpf *skel;
	struct bpf_program *btf_progs[3], *raw_progs[3];
	int btf = type == ATTACH_TP_BTF, err;

	p->skel = skel = connlat_probe_bpf__open();
	if (!skel) {
		err = -errno;
		if (!quiet)
			fprintf(stderr, "failed to open BPF object: %s\n", strerror(-err));
		return err;
	}
	btf_progs[0] = skel->progs.tp_set_state;
	btf_progs[1] = skel->progs.tp_retransmit;
	btf_progs[2] = skel->progs.tp_error_report;
	raw_progs[0] = skel->progs.on_set_state;
	raw_progs[1] = skel->progs.on_retransmit;
	raw_progs[2] = skel->progs.on_error_report;
	for (int i = 0; i < 3; i++) {
		bpf_program__set_autoload(btf_progs[i], btf);
		bpf_program__set_autoload(raw_progs[i], !btf);
		p->progs[i] = btf ? btf_progs[i] : raw_progs[i];
	}
	err = bpf_map__set_max_entries(skel->maps.events, RINGBUF_BYTES);
	if (!err)
		err = connlat_probe_bpf__load(skel);
	if (err) {
		if (!quiet)
			fprintf(stderr, "failed to load BPF object: %d (%s)\n", err, strerror(-err));
		return err;
	}
	/* attached one by one so that a failure names the tracepoint */
	for (int i = 0; i < 3; i++) {
		p->links[i] = bpf_program__attach(p->progs[i]);
		if (!p->links[i]) {
			err = -errno;
			if (!quiet)
				fprintf(stderr, "failed to attach BPF program to %s (%s): %s\n", tracepoints[i],
					attach_names[type], strerror(-err));
			return err;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "attach", required_argument, NULL, 'a' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct probe probe = {};
	struct ring_buffer *rb = NULL;
	int attach = -1; /* auto */
	struct sigaction sa = { .sa_handler = on_signal };
	__u64 *lost_seen = NULL, missed_seen = 0, last_report;
	int ncpus, opt, err = 0, status = 1;

	while ((opt = getopt_long(argc, argv, "a:vVh", options, NULL)) != -1) {
		switch (opt) {
		case 'a':
			if (!strcmp(optarg, "tp_btf"))
				attach = ATTACH_TP_BTF;
			else if (!strcmp(optarg, "raw_tp"))
				attach = ATTACH_RAW_TP;
			else if (strcmp(optarg, "auto")) {
				fprintf(stderr, "connlat-probe: --attach '%s': expected auto, tp_btf or raw_tp\n", optarg);
				return 2;
			}
			break;
		case 'v': verbose = 1; break;
		case 'V': printf("connlat-probe %s (output format %d)\n", CONNLAT_PROBE_VERSION, FORMAT_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "connlat-probe: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}

	libbpf_set_print(print_libbpf);
	/* no SA_RESTART: a signal interrupts the ring-buffer poll */
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGINT, &sa, NULL) || sigaction(SIGTERM, &sa, NULL)) {
		fprintf(stderr, "connlat-probe: can't set signal handlers: %s\n", strerror(errno));
		return 1;
	}
	signal(SIGPIPE, SIG_IGN); /* a closed stdout shows up as a write error, reported below */

	ncpus = libbpf_num_possible_cpus();
	if (ncpus <= 0) {
		fprintf(stderr, "connlat-probe: failed to count possible CPUs: %s\n", strerror(-ncpus));
		return 1;
	}
	lost_seen = calloc((size_t)ncpus * LOST_NR, sizeof(*lost_seen));
	if (!lost_seen) {
		fprintf(stderr, "connlat-probe: out of memory\n");
		return 1;
	}

	if (attach < 0) {
		libbpf_quiet = 1;
		err = probe_attach(&probe, ATTACH_TP_BTF, !verbose);
		libbpf_quiet = 0;
		if (err) {
			if (verbose)
				fprintf(stderr, "connlat-probe: tp_btf unavailable (%s), using raw_tp\n", strerror(-err));
			probe_destroy(&probe);
			attach = ATTACH_RAW_TP;
		} else {
			attach = ATTACH_TP_BTF;
		}
	} else {
		err = -1;
	}
	if (err && probe_attach(&probe, attach, 0))
		goto out;
	if (verbose)
		fprintf(stderr, "connlat-probe: attached as %s\n", attach_names[attach]);

	rb = ring_buffer__new(bpf_map__fd(probe.skel->maps.events), handle_event, NULL, NULL);
	if (!rb) {
		fprintf(stderr, "failed to create ring buffer: %s\n", strerror(errno));
		goto out;
	}

	/* full buffering: one write per drain, not per line */
	setvbuf(stdout, NULL, _IOFBF, 1 << 16);
	printf("%-9s %-6s %-12s %-2s %-16s %-6s %-16s %-5s %-7s %-4s %-7s %s  # connlat-probe format %d\n", "TIME(s)",
	       "PID", "COMM", "IP", "SADDR", "LPORT", "DADDR", "DPORT", "LAT(ms)", "RETX", "RTT(ms)", "RESULT",
	       FORMAT_VERSION);
	fflush(stdout);

	last_report = now_ns();
	while (!exiting) {
		err = ring_buffer__poll(rb, POLL_MS);
		if (err < 0 && err != -EINTR) {
			fprintf(stderr, "error polling ring buffer: %s\n", strerror(-err));
			break;
		}
		/* records submitted without a wakeup are only seen by consuming */
		ring_buffer__consume(rb);
		if (fflush(stdout)) {
			fprintf(stderr, "connlat-probe: writing stdout: %s\n", strerror(errno));
			break;
		}
		if (now_ns() - last_report >= LOST_REPORT_NS) {
			report_lost(bpf_map__fd(probe.skel->maps.lost), lost_seen, ncpus);
			report_missed(probe.progs, 3, &missed_seen);
			last_report = now_ns();
		}
	}
	if (exiting) {
		/* drain what is already queued, then report and leave */
		ring_buffer__consume(rb);
		status = fflush(stdout) ? 1 : 0;
		if (status)
			fprintf(stderr, "connlat-probe: writing stdout: %s\n", strerror(errno));
		report_lost(bpf_map__fd(probe.skel->maps.lost), lost_seen, ncpus);
		report_missed(probe.progs, 3, &missed_seen);
	}
out:
	ring_buffer__free(rb); /* NULL-safe */
	probe_destroy(&probe);
	free(lost_seen);
	return status;
}
