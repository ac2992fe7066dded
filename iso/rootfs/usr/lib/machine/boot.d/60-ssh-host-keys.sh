# The host key is made once and kept on the data disk. Its public half and fingerprint are
# printed on the console, which only the host reads: the host pins the key from there,
# never from the network.
key=/etc/ssh/keys/ssh_host_ed25519_key
if [ ! -s "$key" ] || [ ! -s "$key.pub" ]; then
	rm -f "$key" "$key.pub"
	ssh-keygen -q -t ed25519 -N '' -C "$(hostname)" -f "$key"
	# A power cut right after first boot must not lose the key the host is about to pin.
	sync
	log "ssh host key generated"
fi
# OpenSSH's SHA256 fingerprint: unpadded base64 of the SHA-256 of the key blob (busybox only:
# running ssh-keygen -l costs ~0.15 s under TCG).
blob=$(cut -d' ' -f2 "$key.pub")
fp=$(echo "$blob" | base64 -d | sha256sum | cut -d' ' -f1 | xxd -r -p | base64 | tr -d '=')
echo "machine-host-key: $(cut -d' ' -f1,2 "$key.pub")" >/dev/console
echo "machine-host-key-fingerprint: SHA256:$fp" >/dev/console
