# The firewall rules that keep the agent's ways into the guest to the host alone
# (ssh-port-guard), in place before the engine or any container starts. It reads the host's
# ports from the seed.
/usr/lib/machine/ssh-port-guard
