#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
// virDomainQemuMonitorCommand: QEMU's own user-mode network forwards UDP at run time.
#include <libvirt/libvirt-qemu.h>
#include "table.h"
