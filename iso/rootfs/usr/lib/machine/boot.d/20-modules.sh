# virtio disks and network plus the filesystems the next steps mount; the entropy source, the
# balloon (it hands the pages the guest frees back to the host: free page reporting), the
# ACPI power button and what the engine's emulators of other platforms need (binfmt_misc, and
# squashfs on a loop device: provisioning/guest/platforms) load in the background, off the
# path to sshd. Everything else in the
# image loads on demand: the kernel and dockerd call modprobe themselves.
modprobe -a virtio_pci virtio_blk virtio_net isofs ext4 || log "warning: some kernel modules did not load"
modprobe -a virtio_rng virtio_balloon button evdev binfmt_misc squashfs loop &
log "drivers loaded"
