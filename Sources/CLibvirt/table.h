// The libvirt functions `machine` calls, as a table filled at the first connection (dlopen),
// not by the dynamic loader at start-up: loading libvirt.so and its ~50 libraries costs a
// process about 11 MB of resident memory, which processes that never reach libvirt (the host
// agent of a machine on this host, which asks it through `machine agent-libvirt` processes;
// --version, --help) should not pay, and a host without libvirt's client library gets a
// message naming the package instead of the loader's error.
// A function Sources/Virt calls is listed here: a call of libvirt's own declaration would not
// link (the module map links nothing).
#ifndef MACHINE_LIBVIRT_TABLE_H
#define MACHINE_LIBVIRT_TABLE_H
#include <dlfcn.h>
#include <stddef.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libvirt/libvirt-qemu.h>

// X(function): every function of libvirt.so.0 used; QEMU(function): of libvirt-qemu.so.0.
#define MACHINE_LIBVIRT_FUNCTIONS(X, QEMU) \
    X(virConnectClose) \
    X(virConnectGetCapabilities) \
    X(virConnectGetLibVersion) \
    X(virConnectGetType) \
    X(virConnectListAllDomains) \
    X(virConnectOpen) \
    X(virCopyLastError) \
    X(virDomainCreate) \
    X(virDomainDefineXML) \
    X(virDomainDestroy) \
    X(virDomainFree) \
    X(virDomainGetMetadata) \
    X(virDomainGetName) \
    X(virDomainGetState) \
    X(virDomainGetUUIDString) \
    X(virDomainGetXMLDesc) \
    X(virDomainHasManagedSaveImage) \
    X(virDomainIsActive) \
    X(virDomainLookupByName) \
    X(virDomainManagedSave) \
    X(virDomainManagedSaveRemove) \
    X(virDomainResume) \
    X(virDomainSetMetadata) \
    X(virDomainShutdown) \
    X(virDomainSuspend) \
    X(virDomainUndefineFlags) \
    X(virResetError) \
    X(virSetErrorFunc) \
    X(virStoragePoolCreate) \
    X(virStoragePoolCreateXML) \
    X(virStoragePoolDefineXML) \
    X(virStoragePoolDestroy) \
    X(virStoragePoolFree) \
    X(virStoragePoolGetName) \
    X(virStoragePoolGetXMLDesc) \
    X(virStoragePoolIsActive) \
    X(virStoragePoolIsPersistent) \
    X(virStoragePoolListAllVolumes) \
    X(virStoragePoolLookupByName) \
    X(virStoragePoolRefresh) \
    X(virStoragePoolSetAutostart) \
    X(virStoragePoolUndefine) \
    X(virStorageVolCreateXML) \
    X(virStorageVolDelete) \
    X(virStorageVolDownload) \
    X(virStorageVolFree) \
    X(virStorageVolGetInfo) \
    X(virStorageVolGetInfoFlags) \
    X(virStorageVolGetName) \
    X(virStorageVolGetPath) \
    X(virStorageVolLookupByName) \
    X(virStorageVolResize) \
    X(virStorageVolUpload) \
    X(virStreamAbort) \
    X(virStreamFinish) \
    X(virStreamFree) \
    X(virStreamNew) \
    X(virStreamRecv) \
    X(virStreamSend) \
    X(virStreamSendHole) \
    QEMU(virDomainQemuMonitorCommand)

#define MACHINE_LIBVIRT_FIELD(name) __typeof__(name) * _Nonnull name;
typedef struct {
    MACHINE_LIBVIRT_FUNCTIONS(MACHINE_LIBVIRT_FIELD, MACHINE_LIBVIRT_FIELD)
} MachineLibvirt;
#undef MACHINE_LIBVIRT_FIELD

/// Opens libvirt's client libraries and fills `table`. Returns NULL, or what failed: the
/// loader's own message for a library it cannot open, the name of a function it lacks.
static inline const char * _Nullable machine_libvirt_load(MachineLibvirt * _Nonnull table) {
    void *virt = dlopen("libvirt.so.0", RTLD_NOW | RTLD_LOCAL);
    if (virt == NULL) return dlerror();
    void *qemu = dlopen("libvirt-qemu.so.0", RTLD_NOW | RTLD_LOCAL);
    if (qemu == NULL) return dlerror();
#define MACHINE_LIBVIRT_FROM(library, name) \
    table->name = (__typeof__(name) *)dlsym(library, #name); \
    if (table->name == NULL) return #name;
#define MACHINE_LIBVIRT_VIRT(name) MACHINE_LIBVIRT_FROM(virt, name)
#define MACHINE_LIBVIRT_QEMU(name) MACHINE_LIBVIRT_FROM(qemu, name)
    MACHINE_LIBVIRT_FUNCTIONS(MACHINE_LIBVIRT_VIRT, MACHINE_LIBVIRT_QEMU)
#undef MACHINE_LIBVIRT_VIRT
#undef MACHINE_LIBVIRT_QEMU
#undef MACHINE_LIBVIRT_FROM
    return NULL;
}
#endif
