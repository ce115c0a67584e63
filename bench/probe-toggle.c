// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * bench/probe-toggle.c (bench/probe-cost.ts builds and runs it): loads one program set of a connlat-probe BPF object
 * once, then attaches and detaches it every WINDOW_MS for SECONDS, draining its ring buffer every 50 ms as the tool
 * does, so that a workload running throughout can be compared with and without the programs in windows a fraction of
 * a second apart (the machine's other load then moves both sides of a pair alike). Prints one line per window:
 *   <attached 0|1> <start ns> <end ns>      (CLOCK_MONOTONIC)
 * Usage: probe-toggle OBJECT SECTION_PREFIX WINDOW_MS SECONDS   (SECTION_PREFIX: tp_btf/ or raw_tp/; none/: no
 * program at all, the windows alternating all the same, to show what the method itself reads when nothing changes)
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <bpf/libbpf.h>

#define MAX_PROGS 8

static int on_record(void *ctx, void *data, size_t size)
{
	(void)ctx, (void)data, (void)size;
	return 0;
}

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Drains the ring buffer every 50 ms until `until`. */
static void drain_until(struct ring_buffer *rb, long long until)
{
	for (long long left; (left = until - now_ns()) > 0;)
		ring_buffer__poll(rb, left > 50000000 ? 50 : (int)(left / 1000000) + 1);
	ring_buffer__consume(rb);
}

int main(int argc, char **argv)
{
	struct bpf_object *obj;
	struct bpf_program *prog, *progs[MAX_PROGS];
	struct bpf_link *links[MAX_PROGS];
	struct ring_buffer *rb;
	int n = 0;

	if (argc != 5) {
		fprintf(stderr, "usage: probe-toggle OBJECT SECTION_PREFIX WINDOW_MS SECONDS\n");
		return 2;
	}
	long long window = atoll(argv[3]) * 1000000LL, end;
	obj = bpf_object__open_file(argv[1], NULL);
	if (!obj) {
		fprintf(stderr, "probe-toggle: open %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	bpf_object__for_each_program(prog, obj) {
		int ours = strncmp(bpf_program__section_name(prog), argv[2], strlen(argv[2])) == 0;

		bpf_program__set_autoload(prog, ours);
		if (ours && n < MAX_PROGS)
			progs[n++] = prog;
	}
	if ((!n && strcmp(argv[2], "none/")) || bpf_object__load(obj)) {
		fprintf(stderr, "probe-toggle: no %s programs in %s, or they failed to load\n", argv[2], argv[1]);
		return 1;
	}
	rb = ring_buffer__new(bpf_map__fd(bpf_object__find_map_by_name(obj, "events")), on_record, NULL, NULL);
	if (!rb) {
		fprintf(stderr, "probe-toggle: ring buffer: %s\n", strerror(errno));
		return 1;
	}
	end = now_ns() + atoll(argv[4]) * 1000000000LL;
	for (int attached = 0; now_ns() < end; attached = !attached) {
		long long start;

		for (int i = 0; i < n && attached; i++) {
			links[i] = bpf_program__attach(progs[i]);
			if (!links[i]) {
				fprintf(stderr, "probe-toggle: attach %s: %s\n", bpf_program__name(progs[i]), strerror(errno));
				return 1;
			}
		}
		start = now_ns();
		drain_until(rb, start + window);
		printf("%d %lld %lld\n", attached, start, now_ns());
		for (int i = 0; i < n && attached; i++)
			bpf_link__destroy(links[i]);
	}
	ring_buffer__free(rb);
	bpf_object__close(obj);
	return 0;
}
