// SPDX-License-Identifier: MIT
// Bounded raw TCP SYN sender for the knock end-to-end tests (test/e2e/knock.test.ts), run
// inside the lab's attacker namespace only. Compiled at test time with gcc.
//
//   syn-blast DST SRC PORTS COUNT MAX_SECONDS [PPS]
//     DST          IPv4 destination (a lab host)
//     SRC          IPv4 source, or "spoof": packet i comes from 10.(i>>16).(i>>8).(i) + 1
//                  (distinct sources; the lab has rp_filter=0 and no route outside)
//     PORTS        "up" (1..65535), "down" (65535..1), "random:SEED" (a seeded permutation
//                  of 1..65535), or a single port number
//     COUNT        packets at most (sweeps stop after 65535)
//     MAX_SECONDS  stop after this long whatever COUNT says
//     PPS          packets per second at most (default 0: as fast as the socket takes them)
//   prints {"sent":N,"ms":M}
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PORTS 65535

static uint16_t csum(const uint8_t *p, size_t n, uint32_t sum) {
  for (size_t i = 0; i + 1 < n; i += 2) sum += (uint32_t)(p[i] << 8 | p[i + 1]);
  if (n & 1) sum += (uint32_t)(p[n - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return (uint16_t)~sum;
}

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000.0 + t.tv_nsec / 1e6;
}

static uint32_t rng_state;
static uint32_t rng(void) { rng_state ^= rng_state << 13; rng_state ^= rng_state >> 17; rng_state ^= rng_state << 5; return rng_state; }

int main(int argc, char **argv) {
  if (argc != 6 && argc != 7) { fprintf(stderr, "usage: syn-blast DST SRC PORTS COUNT MAX_SECONDS [PPS]\n"); return 2; }
  double pps = argc == 7 ? atof(argv[6]) : 0;
  struct in_addr dst, src;
  int spoof = strcmp(argv[2], "spoof") == 0;
  if (inet_pton(AF_INET, argv[1], &dst) != 1 || (!spoof && inet_pton(AF_INET, argv[2], &src) != 1)) { fprintf(stderr, "bad address\n"); return 2; }
  long count = atol(argv[4]);
  double max_ms = atof(argv[5]) * 1000.0;
  static uint16_t ports[PORTS];
  long nports = PORTS;
  if (strcmp(argv[3], "up") == 0) for (int i = 0; i < PORTS; i++) ports[i] = (uint16_t)(i + 1);
  else if (strcmp(argv[3], "down") == 0) for (int i = 0; i < PORTS; i++) ports[i] = (uint16_t)(PORTS - i);
  else if (strncmp(argv[3], "random:", 7) == 0) {
    rng_state = (uint32_t)atol(argv[3] + 7) | 1;
    for (int i = 0; i < PORTS; i++) ports[i] = (uint16_t)(i + 1);
    for (int i = PORTS - 1; i > 0; i--) { int j = (int)(rng() % (uint32_t)(i + 1)); uint16_t t = ports[i]; ports[i] = ports[j]; ports[j] = t; }
  } else { ports[0] = (uint16_t)atoi(argv[3]); nports = 1; }
  if (nports == PORTS && count > PORTS) count = PORTS;
  int fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
  if (fd < 0) { perror("socket"); return 1; }
  int sndbuf = 4 << 20;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
  struct sockaddr_in to = { .sin_family = AF_INET, .sin_addr = dst };
  uint8_t pkt[40];
  long sent = 0;
  double start = now_ms();
  for (long i = 0; i < count && now_ms() - start < max_ms; i++) {
    while (pps > 0 && i > (now_ms() - start) * pps / 1000.0) usleep(200);
    memset(pkt, 0, sizeof pkt);
    uint32_t s = spoof ? htonl(0x0a000000u + (uint32_t)i + 1) : src.s_addr;
    uint16_t dport = ports[nports == 1 ? 0 : i];
    pkt[0] = 0x45; pkt[2] = 0; pkt[3] = 40; pkt[8] = 64; pkt[9] = IPPROTO_TCP;
    memcpy(pkt + 12, &s, 4); memcpy(pkt + 16, &dst.s_addr, 4);
    uint16_t ic = csum(pkt, 20, 0); pkt[10] = (uint8_t)(ic >> 8); pkt[11] = (uint8_t)ic;
    uint8_t *t = pkt + 20;
    uint16_t sport = (uint16_t)(40000 + (i % 20000));
    t[0] = (uint8_t)(sport >> 8); t[1] = (uint8_t)sport; t[2] = (uint8_t)(dport >> 8); t[3] = (uint8_t)dport;
    t[4] = 0x12; t[5] = 0x34; t[6] = (uint8_t)(i >> 8); t[7] = (uint8_t)i;
    t[12] = 5 << 4; t[13] = 0x02; t[14] = 0xff; t[15] = 0xff;
    uint8_t pseudo[12];
    memcpy(pseudo, &s, 4); memcpy(pseudo + 4, &dst.s_addr, 4); pseudo[8] = 0; pseudo[9] = IPPROTO_TCP; pseudo[10] = 0; pseudo[11] = 20;
    uint32_t sum = 0;
    for (int k = 0; k < 12; k += 2) sum += (uint32_t)(pseudo[k] << 8 | pseudo[k + 1]);
    uint16_t tc = csum(t, 20, sum); t[16] = (uint8_t)(tc >> 8); t[17] = (uint8_t)tc;
    if (sendto(fd, pkt, sizeof pkt, 0, (struct sockaddr *)&to, sizeof to) == sizeof pkt) sent++;
    else usleep(100); // send queue full: back off a little, stay bounded by MAX_SECONDS
  }
  printf("{\"sent\":%ld,\"ms\":%.0f}\n", sent, now_ms() - start);
  return 0;
}
