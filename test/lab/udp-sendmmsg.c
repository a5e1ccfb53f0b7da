// SPDX-License-Identifier: MIT
// Bounded UDP flooder for the daemon performance measurements (test/bench/perf-flood.ts),
// run inside the lab's attacker namespace only. Compiled at run time with gcc. Batches
// datagrams with sendmmsg so one core reaches the rates issue 9 names (150-200k pps).
//
//   udp-blast DST PORT COUNT MAX_SECONDS PPS MODE SEED
//     DST          IPv4 destination (a lab host)
//     PORT         UDP destination port
//     COUNT        datagrams at most
//     MAX_SECONDS  stop after this long whatever COUNT says
//     PPS          datagrams per second at most (0: as fast as the socket takes them)
//     MODE         "junk": 0..300 random bytes each (seeded xorshift, reproducible);
//                  "keyid:HEX8": that 4-byte key id + 20..200 random bytes (valid id, bad tag);
//                  "packet:HEX": the same datagram every time (a replayed capture)
//     SEED         xorshift seed
//   prints {"sent":N,"ms":M,"pps":R}
#define _GNU_SOURCE // sendmmsg
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define MAX_LEN 1400
#define JUNK_MAX 300
#define KEYID_LEN 4
#define KEYID_MIN_REST 20
#define KEYID_MAX_REST 200
#define MAX_COUNT 100000000L
#define MAX_SECONDS 120.0

static uint32_t rng_state;
static uint32_t rng(void) { rng_state ^= rng_state << 13; rng_state ^= rng_state >> 17; rng_state ^= rng_state << 5; return rng_state; }

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000.0 + t.tv_nsec / 1e6;
}

static int hex_decode(const char *hex, uint8_t *out, size_t max) {
  size_t n = strlen(hex);
  if (n % 2 != 0 || n / 2 > max) return -1;
  for (size_t i = 0; i < n / 2; i++) {
    unsigned v;
    if (sscanf(hex + 2 * i, "%2x", &v) != 1) return -1;
    out[i] = (uint8_t)v;
  }
  return (int)(n / 2);
}

enum mode { JUNK, KEYID, PACKET };

static uint8_t bufs[BATCH][MAX_LEN];

/** Fill datagram `k` of the batch; returns its length. */
static size_t fill(enum mode m, uint8_t *b, const uint8_t *fixed, int fixed_len) {
  if (m == PACKET) return (size_t)fixed_len;
  size_t off = 0, len;
  if (m == KEYID) {
    memcpy(b, fixed, KEYID_LEN);
    off = KEYID_LEN;
    len = KEYID_LEN + KEYID_MIN_REST + rng() % (KEYID_MAX_REST - KEYID_MIN_REST + 1);
  } else {
    len = rng() % (JUNK_MAX + 1);
  }
  for (size_t i = off; i < len; i += 4) {
    uint32_t r = rng();
    memcpy(b + i, &r, len - i < 4 ? len - i : 4);
  }
  return len;
}

int main(int argc, char **argv) {
  if (argc != 8) { fprintf(stderr, "usage: udp-blast DST PORT COUNT MAX_SECONDS PPS MODE SEED\n"); return 2; }
  struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2])) };
  if (inet_pton(AF_INET, argv[1], &to.sin_addr) != 1) { fprintf(stderr, "bad address\n"); return 2; }
  long count = atol(argv[3]);
  double max_ms = atof(argv[4]) * 1000.0;
  double pps = atof(argv[5]);
  if (count < 0 || count > MAX_COUNT || max_ms <= 0 || max_ms > MAX_SECONDS * 1000.0 || pps < 0) { fprintf(stderr, "out of bounds\n"); return 2; }
  rng_state = (uint32_t)atol(argv[7]) | 1;
  enum mode m = JUNK;
  uint8_t fixed[MAX_LEN];
  int fixed_len = 0;
  if (strncmp(argv[6], "keyid:", 6) == 0) { m = KEYID; fixed_len = hex_decode(argv[6] + 6, fixed, MAX_LEN); if (fixed_len != KEYID_LEN) { fprintf(stderr, "bad key id\n"); return 2; } }
  else if (strncmp(argv[6], "packet:", 7) == 0) { m = PACKET; fixed_len = hex_decode(argv[6] + 7, fixed, MAX_LEN); if (fixed_len <= 0) { fprintf(stderr, "bad packet\n"); return 2; } }
  else if (strcmp(argv[6], "junk") != 0) { fprintf(stderr, "bad mode\n"); return 2; }
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) { perror("socket"); return 1; }
  int sndbuf = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  if (connect(fd, (struct sockaddr *)&to, sizeof to) != 0) { perror("connect"); return 1; }
  struct mmsghdr msgs[BATCH];
  struct iovec iov[BATCH];
  memset(msgs, 0, sizeof msgs);
  for (int k = 0; k < BATCH; k++) {
    iov[k].iov_base = m == PACKET ? fixed : bufs[k];
    msgs[k].msg_hdr.msg_iov = &iov[k];
    msgs[k].msg_hdr.msg_iovlen = 1;
  }
  long sent = 0;
  double start = now_ms();
  while (sent < count) {
    double elapsed = now_ms() - start;
    if (elapsed >= max_ms) break;
    long want = count - sent < BATCH ? count - sent : BATCH;
    if (pps > 0) {
      long allowed = (long)(elapsed * pps / 1000.0) + 1 - sent;
      if (allowed <= 0) { usleep(100); continue; }
      if (allowed < want) want = allowed;
    }
    for (long k = 0; k < want; k++) iov[k].iov_len = fill(m, bufs[k], fixed, fixed_len);
    int n = sendmmsg(fd, msgs, (unsigned)want, 0);
    if (n > 0) sent += n;
    else usleep(100); // send queue full: back off a little, stay bounded by MAX_SECONDS
  }
  double ms = now_ms() - start;
  printf("{\"sent\":%ld,\"ms\":%.0f,\"pps\":%.0f}\n", sent, ms, ms > 0 ? sent * 1000.0 / ms : 0);
  return 0;
}
