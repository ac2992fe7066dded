# The host as containers see it, before the engine or any container starts:
# - its names: host.docker.internal (Docker Desktop's), gateway.docker.internal and
#   host.machine.internal are QEMU's gateway 10.0.2.2, which is the host's loopback;
# - its DNS: every query for QEMU's 10.0.2.3 (the guest's nameserver, copied by Docker into
#   containers on the default bridge, and where its embedded DNS forwards for user networks)
#   goes to the host agent's resolver (HostResolver.swift), which answers as the host would;
# - UDP forwards QEMU adds at run time for ports published on the guest's loopback arrive at
#   the loopback alias 10.0.2.16 and are turned to 127.0.0.1, where docker-proxy listens;
# - the door: with host access off, no container opens anything to 10.0.2.2, containers
#   resolve through QEMU's 10.0.2.3 (no host names), and the guest itself still reaches the
#   host (the engine pulls from a registry there).
# Seed files: host-access (on or off) and host-resolver-port (the resolver's port on the
# host's loopback; absent for a machine on a remote libvirt host, whose loopback is not ours).
host_addr=10.0.2.2
qemu_dns=10.0.2.3
loopback_alias=10.0.2.16
access=$(cat "$SEED/host-access" 2>/dev/null)
[ "$access" = off ] || access=on
resolver_port=$(cat "$SEED/host-resolver-port" 2>/dev/null)
case $resolver_port in
'' | *[!0-9]*) resolver_port= ;;
esac

# The guest's own /etc/hosts always names the host: the engine's pulls and pushes go there.
printf '%s host.docker.internal gateway.docker.internal host.machine.internal\n' "$host_addr" >>/etc/hosts

ip addr add "$loopback_alias/32" dev eth0 2>/dev/null
echo 1 >/proc/sys/net/ipv4/conf/eth0/route_localnet

{
	echo "*nat"
	echo "-I PREROUTING 1 -i eth0 -d $loopback_alias -p udp -j DNAT --to-destination 127.0.0.1"
	if [ -n "$resolver_port" ]; then
		for proto in udp tcp; do
			echo "-A OUTPUT -d $qemu_dns -p $proto --dport 53 -j DNAT --to-destination $host_addr:$resolver_port"
			[ "$access" = on ] && echo "-I PREROUTING 1 ! -i eth0 -d $qemu_dns -p $proto --dport 53 -j DNAT --to-destination $host_addr:$resolver_port"
		done
	fi
	echo "COMMIT"
	if [ "$access" = off ]; then
		# PREROUTING sees what containers send (from a bridge) and never what the guest sends
		# itself. New flows only: replies to what the host sent in (UDP forwards come from
		# 10.0.2.2) must pass. mangle, after conntrack and before nat; Docker does not touch it.
		echo "*mangle"
		echo "-A PREROUTING ! -i eth0 -d $host_addr -m conntrack --ctstate NEW -j DROP"
		echo "COMMIT"
	fi
} | iptables-restore -w --noflush || log "warning: the host network rules did not apply"
if [ -n "$resolver_port" ]; then
	log "host network: access $access, DNS from the host agent's resolver (host port $resolver_port)"
else
	log "host network: access $access, DNS from QEMU's relay"
fi
