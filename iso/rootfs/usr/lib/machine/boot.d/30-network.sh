# QEMU user-mode networking always hands out the same addresses, so no DHCP round trip.
ip link set lo up
if [ -e /sys/class/net/eth0 ]; then
	ip link set eth0 up
	ip addr add 10.0.2.15/24 dev eth0
	ip route add default via 10.0.2.2
	echo "nameserver 10.0.2.3" >/etc/resolv.conf
	log "network up: eth0 10.0.2.15"
else
	log "warning: no network interface"
fi
