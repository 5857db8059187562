/*
 * A driver that misuses spin locks on purpose: the negative controls of the
 * rig's Verifier checks (tests/misuse.rs). Each IOCTL commits one misuse;
 * the rig must fail-stop the driver host with Verifier's bugcheck code.
 * Built with mingw-w64 by xtask at test time; never shipped.
 */
#include <ntddk.h>

#define MISUSE_IOCTL(n) CTL_CODE(FILE_DEVICE_UNKNOWN, 0x900 + (n), METHOD_BUFFERED, FILE_ANY_ACCESS)
#define MISUSE_AT_DPC_LEVEL_AT_PASSIVE     MISUSE_IOCTL(0) /* 0xC4 / 0x40 */
#define MISUSE_RELEASE_FROM_DPC_LEVEL      MISUSE_IOCTL(1) /* 0xC9 / 0x05 */
#define MISUSE_COMPLETE_HOLDING_LOCK       MISUSE_IOCTL(2) /* 0xC4, SpinLockSafe */

static KSPIN_LOCK lock;
static UNICODE_STRING device_name = RTL_CONSTANT_STRING(L"\\Device\\DpclockMisuse");
static UNICODE_STRING link_name = RTL_CONSTANT_STRING(L"\\DosDevices\\DpclockMisuse");

static NTSTATUS complete(IRP *irp, NTSTATUS status)
{
    irp->IoStatus.Status = status;
    irp->IoStatus.Information = 0;
    IoCompleteRequest(irp, IO_NO_INCREMENT);
    return status;
}

static NTSTATUS WINAPI create_close(DEVICE_OBJECT *device, IRP *irp)
{
    (void)device;
    return complete(irp, STATUS_SUCCESS);
}

static NTSTATUS WINAPI device_control(DEVICE_OBJECT *device, IRP *irp)
{
    IO_STACK_LOCATION *stack = IoGetCurrentIrpStackLocation(irp);
    KIRQL old;

    (void)device;
    DbgPrint("misuse: IOCTL %#lx\n", stack->Parameters.DeviceIoControl.IoControlCode);
    switch (stack->Parameters.DeviceIoControl.IoControlCode)
    {
    case MISUSE_AT_DPC_LEVEL_AT_PASSIVE:
        KeAcquireSpinLockAtDpcLevel(&lock);
        KeReleaseSpinLockFromDpcLevel(&lock);
        return complete(irp, STATUS_SUCCESS);
    case MISUSE_RELEASE_FROM_DPC_LEVEL:
        /* Released without restoring the IRQL: the dispatch routine returns at DISPATCH_LEVEL. */
        KeAcquireSpinLock(&lock, &old);
        KeReleaseSpinLockFromDpcLevel(&lock);
        return complete(irp, STATUS_SUCCESS);
    case MISUSE_COMPLETE_HOLDING_LOCK:
        KeAcquireSpinLock(&lock, &old);
        complete(irp, STATUS_SUCCESS);
        KeReleaseSpinLock(&lock, old);
        return STATUS_SUCCESS;
    default:
        return complete(irp, STATUS_INVALID_DEVICE_REQUEST);
    }
}

static void WINAPI unload(DRIVER_OBJECT *driver)
{
    IoDeleteSymbolicLink(&link_name);
    IoDeleteDevice(driver->DeviceObject);
}

NTSTATUS WINAPI DriverEntry(DRIVER_OBJECT *driver, UNICODE_STRING *registry)
{
    DEVICE_OBJECT *device;
    NTSTATUS status;

    (void)registry;
    KeInitializeSpinLock(&lock);
    status = IoCreateDevice(driver, 0, &device_name, FILE_DEVICE_UNKNOWN, 0, FALSE, &device);
    if (!NT_SUCCESS(status)) return status;
    status = IoCreateSymbolicLink(&link_name, &device_name);
    if (!NT_SUCCESS(status))
    {
        IoDeleteDevice(device);
        return status;
    }
    driver->MajorFunction[IRP_MJ_CREATE] = create_close;
    driver->MajorFunction[IRP_MJ_CLOSE] = create_close;
    driver->MajorFunction[IRP_MJ_DEVICE_CONTROL] = device_control;
    driver->DriverUnload = unload;
    DbgPrint("misuse: DriverEntry\n");
    return STATUS_SUCCESS;
}
