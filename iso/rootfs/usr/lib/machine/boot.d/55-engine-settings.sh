# The engine's settings (daemon.json, its environment) as the host wrote them in the seed, in
# place before the engine first starts: otherwise provisioning would change them under a
# running engine and restart it. With them, the TLS endpoint's certificates and key (0600).
mkdir -p "$ENGINE_HOME"
for f in daemon.json engine.env tls-ca.pem tls-cert.pem tls-key.pem; do
	[ -f "$SEED/$f" ] || continue
	cmp -s "$SEED/$f" "$ENGINE_HOME/$f" || { cp "$SEED/$f" "$ENGINE_HOME/$f" && chmod 0600 "$ENGINE_HOME/$f"; }
done
