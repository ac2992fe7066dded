# What the engine trusts, as the host does (HostTrust.swift), in place before it starts: the
# host's CA bundle where Go programs (dockerd) look for the system's roots, and the host's
# ~/.docker/certs.d where dockerd looks for a registry's CA and client certificates. Both come
# with the seed, so a CA the host gained shows at the next boot.
if [ -s "$SEED/ca-certificates.crt" ]; then
	mkdir -p /etc/ssl/certs
	cp "$SEED/ca-certificates.crt" /etc/ssl/certs/ca-certificates.crt
	chmod 0644 /etc/ssl/certs/ca-certificates.crt
fi
if [ -d "$SEED/certs.d" ]; then
	mkdir -p /etc/docker
	rm -rf /etc/docker/certs.d
	cp -R "$SEED/certs.d" /etc/docker/certs.d
	chmod -R go-rwx /etc/docker/certs.d
fi
log "host trust: $(cat /etc/ssl/certs/ca-certificates.crt 2>/dev/null | grep -c 'BEGIN CERTIFICATE') CA certificates, $(ls /etc/docker/certs.d 2>/dev/null | wc -l) registries in certs.d"
