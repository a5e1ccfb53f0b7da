// SPDX-License-Identifier: MIT
// The one bounded UDP flooder of the benches (test/bench/h2h.ts, h2h-memory.ts, perf-flood.ts),
// run inside a lab namespace only, sending only to the address it is given (a lab host; the
// lab has no route out, test/lab/lab.ts). Compiled at bench time: gcc -O2 -pthread.
//
//   udp-blast --to ADDR --port N --count N --seconds S [options]
//     --to ADDR          IPv4 or IPv6 destination
//     --port N           UDP destination port
//     --count N          datagrams at most (required; 1..1e9)
//     --seconds S        stop after S seconds whatever --count says (required; 0 < S <= 120)
//     --pps R            at most R datagrams/s in all (default 0: as fast as the kernel takes them)
//     --len MIN-MAX      random payload length range (default 40-159; MAX <= 1472)
//     --prefix HEX       each random payload starts with these bytes (authlike: a valid key
//                        id, random rest: the random length range counts the prefix too)
//     --b64              random bytes drawn from the base64 alphabet (fwknop's wire charset)
//     --payload HEX      the same datagram every time (replay)
//     --payload-file F   hex lines, one datagram each, sent in order, cycled (a list of grants)
//     --seed N           xorshift seed (default 1): a run can be repeated
//     --threads N        1..8 sender threads, each with its own socket, share of --count and
//                        share of --pps (default 1; order across threads is not kept)
//     --batch N          datagrams per sendmmsg call (1..1024, default 256)
//   prints {"sent":N,"errors":E,"ms":M,"pps":R}
//
// Speed: every payload is built once, before the clock starts, in a pool that the hot loop
// only cycles through (no per-packet RNG or copy); each thread owns an mmsghdr ring over that
// pool and hands the kernel a batch per sendmmsg(2) on a connected socket (no per-packet
// route lookup). On veth the receiver's softirq work runs in the sender's context, so the
// receive path, not this loop, bounds the rate (docs/bench.md "The sender").
#define _GNU_SOURCE // sendmmsg
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_PAYLOAD 1472 // 1500-byte MTU - 20 (IPv4) - 8 (UDP); IPv6 senders keep under it too
#define MAX_COUNT 1000000000L
#define MAX_SECONDS 120.0
#define MAX_THREADS 8
#define MAX_BATCH 1024
#define MAX_POOL 65536
#define POOL_BYTES (32L << 20)
#define MAX_LINES 100000
#define SNDBUF (8 << 20)
#define NS 1000000000L

struct pool { uint8_t *bytes; size_t *len; long n, stride; };
struct opts {
  struct sockaddr_storage to; socklen_t tolen;
  long count, batch; double seconds, pps; int threads;
  int min_len, max_len, b64; uint32_t seed;
  uint8_t prefix[MAX_PAYLOAD]; int prefix_len;
  const char *payload_hex, *payload_file;
};
struct worker { pthread_t id; int fd; long count; double pps; long first; long sent, errors; };

static const struct opts *g_opts;
static const struct pool *g_pool;
static long g_deadline_ns, g_start_ns;

static long now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * NS + t.tv_nsec;
}

static uint32_t rng_state;
static uint32_t rng(void) { rng_state ^= rng_state << 13; rng_state ^= rng_state >> 17; rng_state ^= rng_state << 5; return rng_state; }

static int unhex(const char *s, uint8_t *out, size_t cap) {
  size_t n = strlen(s);
  while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r')) n--;
  if (n == 0 || n % 2 != 0 || n / 2 > cap) return -1;
  for (size_t i = 0; i < n; i++) if (!isxdigit((unsigned char)s[i])) return -1;
  for (size_t i = 0; i < n / 2; i++) {
    unsigned v;
    if (sscanf(s + 2 * i, "%2x", &v) != 1) return -1;
    out[i] = (uint8_t)v;
  }
  return (int)(n / 2);
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/** Random payloads: min(MAX_POOL, POOL_BYTES / max_len) of them, each its own length. */
static int pool_random(struct pool *p, const struct opts *o) {
  p->stride = o->max_len > 0 ? o->max_len : 1;
  p->n = POOL_BYTES / p->stride;
  if (p->n > MAX_POOL) p->n = MAX_POOL;
  p->bytes = malloc((size_t)(p->n * p->stride));
  p->len = malloc(sizeof *p->len * (size_t)p->n);
  if (!p->bytes || !p->len) return -1;
  for (long i = 0; i < p->n; i++) {
    uint8_t *b = p->bytes + i * p->stride;
    int len = o->min_len + (int)(rng() % (uint32_t)(o->max_len - o->min_len + 1));
    memcpy(b, o->prefix, (size_t)o->prefix_len);
    for (int k = o->prefix_len; k < len; k++) b[k] = o->b64 ? (uint8_t)B64[rng() % 64] : (uint8_t)rng();
    p->len[i] = (size_t)len;
  }
  return 0;
}

/** Fixed payloads: one (--payload) or the lines of a file (--payload-file). */
static int pool_fixed(struct pool *p, const struct opts *o) {
  p->stride = MAX_PAYLOAD; // untouched lines' pages are never faulted in
  p->bytes = malloc((size_t)MAX_LINES * MAX_PAYLOAD);
  p->len = malloc(sizeof *p->len * MAX_LINES);
  if (!p->bytes || !p->len) return -1;
  if (o->payload_hex) {
    int n = unhex(o->payload_hex, p->bytes, MAX_PAYLOAD);
    if (n < 0) return -1;
    p->len[0] = (size_t)n; p->n = 1;
    return 0;
  }
  FILE *f = fopen(o->payload_file, "r");
  if (!f) return -1;
  static char line[2 * MAX_PAYLOAD + 4];
  while (p->n < MAX_LINES && fgets(line, sizeof line, f)) {
    int n = unhex(line, p->bytes + p->n * p->stride, MAX_PAYLOAD);
    if (n > 0) p->len[p->n++] = (size_t)n;
  }
  fclose(f);
  return p->n > 0 ? 0 : -1;
}

/** A ring of mmsghdrs over the pool, at least two batches long so a batch never wraps early,
 *  and a whole number of pools long so the payloads cycle in order across the wrap. */
static struct mmsghdr *ring(long first, long *size) {
  long pools = (2 * g_opts->batch + g_pool->n - 1) / g_pool->n;
  long m = g_pool->n * (pools > 1 ? pools : 1);
  struct mmsghdr *msgs = calloc((size_t)m, sizeof *msgs);
  struct iovec *iov = calloc((size_t)m, sizeof *iov);
  if (!msgs || !iov) return NULL;
  for (long i = 0; i < m; i++) {
    long k = (first + i) % g_pool->n;
    iov[i] = (struct iovec){ .iov_base = g_pool->bytes + k * g_pool->stride, .iov_len = g_pool->len[k] };
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  *size = m;
  return msgs;
}

static void sleep_until(long t_ns) {
  struct timespec t = { .tv_sec = t_ns / NS, .tv_nsec = t_ns % NS };
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL) == EINTR) {}
}

/** How many may go now: all of a batch at full rate; paced, what is due, in chunks of >= 1 ms
 *  of traffic (sleeps until the next chunk is due: no busy wait). */
static long due(const struct worker *w, long now, long want) {
  if (w->pps <= 0) return want;
  double chunk = w->pps / 1000.0 < 1 ? 1 : w->pps / 1000.0;
  long allowed = (long)((double)(now - g_start_ns) * w->pps / NS) + 1 - w->sent;
  if (allowed >= (long)chunk || allowed >= want) return allowed < want ? allowed : want;
  long at = g_start_ns + (long)((double)(w->sent + (long)chunk) * NS / w->pps);
  sleep_until(at < g_deadline_ns ? at : g_deadline_ns);
  return 0;
}

static void *run(void *arg) {
  struct worker *w = arg;
  long m, off = 0;
  struct mmsghdr *msgs = ring(w->first, &m);
  if (!msgs) { w->errors++; return NULL; }
  while (w->sent < w->count) {
    long now = now_ns();
    if (now >= g_deadline_ns) break;
    long want = w->count - w->sent;
    if (want > g_opts->batch) want = g_opts->batch;
    if (want > m - off) want = m - off;
    long n = due(w, now, want);
    if (n <= 0) continue;
    int r = sendmmsg(w->fd, msgs + off, (unsigned)n, 0);
    if (r < 0) {
      w->errors++;
      // ECONNREFUSED: an ICMP port unreachable came back on the connected socket (nothing
      // listens on a captured port); it is reported once and cleared, so just go on.
      if (errno != ECONNREFUSED && errno != EINTR) sleep_until(now_ns() + 100000);
      continue;
    }
    w->sent += r;
    off = (off + r) % m;
  }
  free(msgs[0].msg_hdr.msg_iov);
  free(msgs);
  return NULL;
}

static int parse_to(struct opts *o, const char *addr, const char *port) {
  char *end;
  long p = strtol(port, &end, 10);
  if (*end != '\0' || p < 1 || p > 65535) return -1;
  struct sockaddr_in *v4 = (struct sockaddr_in *)&o->to;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&o->to;
  if (inet_pton(AF_INET, addr, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET; v4->sin_port = htons((uint16_t)p); o->tolen = sizeof *v4;
    return 0;
  }
  if (inet_pton(AF_INET6, addr, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6; v6->sin6_port = htons((uint16_t)p); o->tolen = sizeof *v6;
    return 0;
  }
  return -1;
}

static const struct option LONG_OPTS[] = {
  { "to", required_argument, 0, 't' }, { "port", required_argument, 0, 'p' },
  { "count", required_argument, 0, 'c' }, { "seconds", required_argument, 0, 's' },
  { "pps", required_argument, 0, 'r' }, { "len", required_argument, 0, 'l' },
  { "prefix", required_argument, 0, 'x' }, { "b64", no_argument, 0, 'b' },
  { "payload", required_argument, 0, 'P' }, { "payload-file", required_argument, 0, 'F' },
  { "seed", required_argument, 0, 'S' }, { "threads", required_argument, 0, 'T' },
  { "batch", required_argument, 0, 'B' }, { 0, 0, 0, 0 },
};

/** Reads the options; -1 on anything missing, unknown or out of bounds. */
static int parse(struct opts *o, int argc, char **argv) {
  const char *to = NULL, *port = NULL;
  o->count = -1; o->seconds = -1; o->batch = 256; o->threads = 1; o->seed = 1;
  o->min_len = 40; o->max_len = 159;
  for (int c; (c = getopt_long(argc, argv, "", LONG_OPTS, NULL)) != -1;) {
    switch (c) {
    case 't': to = optarg; break;
    case 'p': port = optarg; break;
    case 'c': o->count = atol(optarg); break;
    case 's': o->seconds = atof(optarg); break;
    case 'r': o->pps = atof(optarg); break;
    case 'l': if (sscanf(optarg, "%d-%d", &o->min_len, &o->max_len) != 2) return -1; break;
    case 'x': if ((o->prefix_len = unhex(optarg, o->prefix, MAX_PAYLOAD)) < 0) return -1; break;
    case 'b': o->b64 = 1; break;
    case 'P': o->payload_hex = optarg; break;
    case 'F': o->payload_file = optarg; break;
    case 'S': o->seed = (uint32_t)strtoul(optarg, NULL, 10); break;
    case 'T': o->threads = atoi(optarg); break;
    case 'B': o->batch = atol(optarg); break;
    default: return -1;
    }
  }
  if (optind != argc || !to || !port || parse_to(o, to, port) != 0) return -1;
  if (o->count < 1 || o->count > MAX_COUNT || !(o->seconds > 0) || o->seconds > MAX_SECONDS) return -1;
  if (!(o->pps >= 0) || o->threads < 1 || o->threads > MAX_THREADS || o->batch < 1 || o->batch > MAX_BATCH) return -1;
  if (o->payload_hex && o->payload_file) return -1;
  int lens_ok = o->min_len >= 0 && o->min_len <= o->max_len && o->max_len <= MAX_PAYLOAD && o->prefix_len <= o->min_len;
  return lens_ok ? 0 : -1;
}

static int open_socket(const struct opts *o) {
  int fd = socket(o->to.ss_family, SOCK_DGRAM, 0);
  if (fd < 0) return -1;
  int sndbuf = SNDBUF;
  // SO_SNDBUFFORCE (root, the lab) passes wmem_max; SO_SNDBUF is the fallback.
  if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof sndbuf) != 0) setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  // Connected: the route is looked up once, not per datagram; ICMP errors are tolerated in run().
  if (connect(fd, (const struct sockaddr *)&o->to, o->tolen) != 0) { close(fd); return -1; }
  return fd;
}

int main(int argc, char **argv) {
  static struct opts o;
  static struct pool pool;
  static struct worker w[MAX_THREADS];
  if (parse(&o, argc, argv) != 0) {
    fprintf(stderr, "usage: udp-blast --to ADDR --port N --count N --seconds S [--pps R] [--len MIN-MAX] [--prefix HEX] [--b64]\n"
                    "                 [--payload HEX | --payload-file F] [--seed N] [--threads N] [--batch N]\n");
    return 2;
  }
  rng_state = o.seed | 1;
  int fixed = o.payload_hex || o.payload_file;
  if ((fixed ? pool_fixed(&pool, &o) : pool_random(&pool, &o)) != 0) { fprintf(stderr, "udp-blast: bad payload\n"); return 2; }
  g_opts = &o; g_pool = &pool;
  for (int t = 0; t < o.threads; t++) {
    w[t].fd = open_socket(&o);
    if (w[t].fd < 0) { perror("udp-blast: socket"); return 1; }
    w[t].count = o.count / o.threads + (t < o.count % o.threads ? 1 : 0);
    w[t].pps = o.pps / o.threads;
    w[t].first = (long)t * pool.n / o.threads;
  }
  g_start_ns = now_ns();
  g_deadline_ns = g_start_ns + (long)(o.seconds * NS);
  for (int t = 0; t < o.threads; t++) {
    if (pthread_create(&w[t].id, NULL, run, &w[t]) != 0) { perror("udp-blast: thread"); return 1; }
  }
  long sent = 0, errors = 0;
  for (int t = 0; t < o.threads; t++) { pthread_join(w[t].id, NULL); sent += w[t].sent; errors += w[t].errors; }
  double ms = (double)(now_ns() - g_start_ns) / 1e6;
  printf("{\"sent\":%ld,\"errors\":%ld,\"ms\":%.0f,\"pps\":%.0f}\n", sent, errors, ms, ms > 0 ? sent * 1000.0 / ms : 0);
  return 0;
}
