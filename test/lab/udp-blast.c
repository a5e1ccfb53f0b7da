// SPDX-License-Identifier: MIT
// Bounded UDP sender for the head-to-head benchmark (test/bench/h2h.ts), run inside the lab's
// attacker or client namespace only (destination: a lab host). Compiled at bench time with gcc.
//
//   udp-blast DST PORT MODE COUNT MAX_SECONDS PPS SEED [ARG]
//     DST          IPv4 destination (a lab host)
//     PORT         UDP destination port
//     MODE         junk        random bytes, length 40..159 (no structure at all)
//                  authlike    ARG = hex of a valid packet: its first 4 bytes (postern's key
//                              id) kept, the rest random, same length (valid id, bad tag)
//                  b64         ARG = a length: random base64 characters of that length
//                              (fwknop's wire alphabet: passes a length/charset precheck)
//                  replay      ARG = hex: the same datagram every time
//                  list        ARG = a file of hex lines: each line once, in order
//     COUNT        datagrams at most
//     MAX_SECONDS  stop after this long whatever COUNT says (at most 60)
//     PPS          datagrams per second at most (0: as fast as the socket takes them)
//     SEED         xorshift seed, so a run can be repeated
//   prints {"sent":N,"errors":E,"ms":M}
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_PKT 1500
#define BATCH 32
#define MAX_LIST 20000
#define MAX_SECONDS 60

static uint32_t rng_state;
static uint32_t rng(void) { rng_state ^= rng_state << 13; rng_state ^= rng_state >> 17; rng_state ^= rng_state << 5; return rng_state; }

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000.0 + t.tv_nsec / 1e6;
}

static int unhex(const char *s, uint8_t *out, size_t cap) {
  size_t n = strlen(s);
  while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r')) n--;
  if (n % 2 != 0 || n / 2 > cap) return -1;
  for (size_t i = 0; i < n / 2; i++) {
    unsigned v;
    if (sscanf(s + 2 * i, "%2x", &v) != 1) return -1;
    out[i] = (uint8_t)v;
  }
  return (int)(n / 2);
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

struct source { int mode; uint8_t tmpl[MAX_PKT]; int tlen; uint8_t (*list)[MAX_PKT]; int *lens; long nlist; };
enum { JUNK, AUTHLIKE, B64MODE, REPLAY, LIST };

/** Fills pkt with datagram i; returns its length, or -1 when a list is exhausted. */
static int build(struct source *s, long i, uint8_t *pkt) {
  switch (s->mode) {
  case JUNK: { int n = 40 + (int)(rng() % 120); for (int k = 0; k < n; k++) pkt[k] = (uint8_t)rng(); return n; }
  case AUTHLIKE: memcpy(pkt, s->tmpl, 4); for (int k = 4; k < s->tlen; k++) pkt[k] = (uint8_t)rng(); return s->tlen;
  case B64MODE: for (int k = 0; k < s->tlen; k++) pkt[k] = (uint8_t)B64[rng() % 64]; return s->tlen;
  case REPLAY: memcpy(pkt, s->tmpl, (size_t)s->tlen); return s->tlen;
  default: if (i >= s->nlist) return -1; memcpy(pkt, s->list[i], (size_t)s->lens[i]); return s->lens[i];
  }
}

static int load_list(struct source *s, const char *path) {
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  s->list = malloc(sizeof *s->list * MAX_LIST);
  s->lens = malloc(sizeof *s->lens * MAX_LIST);
  static char line[2 * MAX_PKT + 4];
  while (s->nlist < MAX_LIST && fgets(line, sizeof line, f)) {
    int n = unhex(line, s->list[s->nlist], MAX_PKT);
    if (n > 0) s->lens[s->nlist++] = n;
  }
  fclose(f);
  return 0;
}

static int setup(struct source *s, const char *mode, const char *arg) {
  if (strcmp(mode, "junk") == 0) { s->mode = JUNK; return 0; }
  if (arg == NULL) return -1;
  if (strcmp(mode, "b64") == 0) { s->mode = B64MODE; s->tlen = atoi(arg); return s->tlen > 0 && s->tlen <= MAX_PKT ? 0 : -1; }
  if (strcmp(mode, "list") == 0) { s->mode = LIST; return load_list(s, arg); }
  s->tlen = unhex(arg, s->tmpl, MAX_PKT);
  if (s->tlen < 5) return -1;
  if (strcmp(mode, "authlike") == 0) { s->mode = AUTHLIKE; return 0; }
  if (strcmp(mode, "replay") == 0) { s->mode = REPLAY; return 0; }
  return -1;
}

int main(int argc, char **argv) {
  if (argc != 8 && argc != 9) { fprintf(stderr, "usage: udp-blast DST PORT MODE COUNT MAX_SECONDS PPS SEED [ARG]\n"); return 2; }
  static struct source src;
  struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2])) };
  long count = atol(argv[4]);
  double max_ms = atof(argv[5]) * 1000.0, pps = atof(argv[6]);
  rng_state = (uint32_t)atol(argv[7]) | 1;
  if (inet_pton(AF_INET, argv[1], &to.sin_addr) != 1 || setup(&src, argv[3], argc == 9 ? argv[8] : NULL) != 0
      || count < 0 || !(max_ms > 0) || max_ms > MAX_SECONDS * 1000.0 || pps < 0) {
    fprintf(stderr, "udp-blast: bad arguments\n");
    return 2;
  }
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  // Not connected: a connected socket would fail with ECONNREFUSED after each ICMP port
  // unreachable the router sends back (nothing listens on a captured port).
  if (fd < 0) { perror("socket"); return 1; }
  int sndbuf = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  static uint8_t bufs[BATCH][MAX_PKT];
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  long sent = 0, errors = 0, next = 0;
  double start = now_ms();
  while (next < count && now_ms() - start < max_ms) {
    // Paced: never ahead of PPS * elapsed; the batch shrinks to what is due.
    long due = pps > 0 ? (long)((now_ms() - start) * pps / 1000.0) + 1 - next : BATCH;
    if (due <= 0) { usleep(100); continue; }
    int n = 0;
    for (; n < BATCH && n < due && next + n < count; n++) {
      int len = build(&src, next + n, bufs[n]);
      if (len < 0) { count = next + n; break; }
      iov[n] = (struct iovec){ .iov_base = bufs[n], .iov_len = (size_t)len };
      memset(&msgs[n], 0, sizeof msgs[n]);
      msgs[n].msg_hdr.msg_iov = &iov[n];
      msgs[n].msg_hdr.msg_iovlen = 1;
      msgs[n].msg_hdr.msg_name = &to;
      msgs[n].msg_hdr.msg_namelen = sizeof to;
    }
    if (n == 0) break;
    int r = sendmmsg(fd, msgs, (unsigned)n, 0);
    if (r > 0) sent += r; else { errors++; usleep(100); }
    next += r > 0 ? r : 0;
  }
  printf("{\"sent\":%ld,\"errors\":%ld,\"ms\":%.0f}\n", sent, errors, now_ms() - start);
  return 0;
}
