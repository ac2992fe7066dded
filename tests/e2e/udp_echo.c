/* A UDP echo server for the e2e tests, built static and run in a busybox container (Debian 12's
 * busybox has no UDP nc). Usage: udp_echo PORT. Each datagram goes back to its sender as it
 * came, prefixed by nothing, so a client can check boundaries and that replies are its own. */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: udp_echo PORT\n");
        return 2;
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[1])), .sin_addr.s_addr = htonl(INADDR_ANY)};
    if (fd < 0 || bind(fd, (struct sockaddr *)&address, sizeof address) != 0) {
        perror("udp_echo: bind");
        return 1;
    }
    fprintf(stderr, "udp_echo: listening on %s\n", argv[1]);
    static char buffer[65536];
    for (;;) {
        struct sockaddr_storage from;
        socklen_t length = sizeof from;
        ssize_t count = recvfrom(fd, buffer, sizeof buffer, 0, (struct sockaddr *)&from, &length);
        if (count < 0) continue;
        sendto(fd, buffer, (size_t)count, 0, (struct sockaddr *)&from, length);
    }
}
