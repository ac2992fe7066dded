/* Times DNS lookups for bench/host_network.py. Built static, it runs on the host and in a
 * busybox container alike.
 *   dns_time getaddrinfo NAME COUNT   the host's own resolution, in process (what getent does)
 *   dns_time query NAME COUNT         one A query at a time over UDP to the first nameserver of
 *                                      /etc/resolv.conf, as a container's resolver sends it
 * Prints one line: "ok COUNT p50_us p99_us", or "fail WHAT". */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int compare(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int query(int fd, const char *name, unsigned short id) {
    unsigned char packet[512] = {id >> 8, id & 0xff, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0};
    size_t at = 12;
    const char *label = name;
    while (*label) {
        const char *dot = strchr(label, '.');
        size_t length = dot ? (size_t)(dot - label) : strlen(label);
        packet[at++] = (unsigned char)length;
        memcpy(packet + at, label, length);
        at += length;
        label += length + (dot ? 1 : 0);
    }
    packet[at++] = 0;
    packet[at++] = 0, packet[at++] = 1, packet[at++] = 0, packet[at++] = 1;
    if (send(fd, packet, at, 0) != (ssize_t)at) return -1;
    unsigned char reply[4096];
    for (;;) {
        ssize_t got = recv(fd, reply, sizeof reply, 0);
        if (got < 12) return -1;
        if (reply[0] == (id >> 8) && reply[1] == (id & 0xff)) return (reply[3] & 0x0f) == 0 && (reply[6] | reply[7]) ? 0 : -1;
    }
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: dns_time getaddrinfo|query NAME COUNT\n");
        return 2;
    }
    int count = atoi(argv[3]);
    double *times = calloc(count, sizeof *times);
    int fd = -1;
    if (strcmp(argv[1], "query") == 0) {
        FILE *conf = fopen("/etc/resolv.conf", "r");
        char line[256], server[64] = "";
        while (conf && fgets(line, sizeof line, conf))
            if (sscanf(line, "nameserver %63s", server) == 1) break;
        struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(53)};
        if (!*server || inet_pton(AF_INET, server, &address.sin_addr) != 1) {
            puts("fail no nameserver");
            return 1;
        }
        fd = socket(AF_INET, SOCK_DGRAM, 0);
        struct timeval wait = {.tv_sec = 5};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
        connect(fd, (struct sockaddr *)&address, sizeof address);
    }
    for (int i = 0; i < count; i++) {
        double start = now_us();
        if (fd >= 0) {
            if (query(fd, argv[2], (unsigned short)(i + 1)) != 0) {
                printf("fail query %d\n", i);
                return 1;
            }
        } else {
            struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_DGRAM}, *result;
            if (getaddrinfo(argv[2], NULL, &hints, &result) != 0) {
                printf("fail getaddrinfo %d\n", i);
                return 1;
            }
            freeaddrinfo(result);
        }
        times[i] = now_us() - start;
    }
    qsort(times, count, sizeof *times, compare);
    printf("ok %d %.0f %.0f\n", count, times[count / 2], times[(int)(0.99 * (count - 1))]);
    return 0;
}
