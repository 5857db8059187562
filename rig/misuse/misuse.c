/*
 * A driver that misuses spin locks on purpose: the negative controls of the
 * rig's Verifier checks (tests/misuse.rs). Each IOCTL commits one misuse;
 * the rig must fail-stop the driver host with Verifier's bugcheck code.
 * One more IOCTL probes the rig's queued DPCs, correctly used.
 * Built with mingw-w64 by xtask at test time; never shipped.
 */
#include <ntddk.h>

#define MISUSE_IOCTL(n) CTL_CODE(FILE_DEVICE_UNKNOWN, 0x900 + (n), METHOD_BUFFERED, FILE_ANY_ACCESS)
#define MISUSE_AT_DPC_LEVEL_AT_PASSIVE     MISUSE_IOCTL(0) /* 0xC4 / 0x40 */
#define MISUSE_RELEASE_FROM_DPC_LEVEL      MISUSE_IOCTL(1) /* 0xC9 / 0x05 */
#define MISUSE_COMPLETE_HOLDING_LOCK       MISUSE_IOCTL(2) /* 0xC4, SpinLockSafe */
#define PROBE_QUEUED_DPCS                  MISUSE_IOCTL(3) /* no misuse: a report */
#define MISUSE_FROM_DPC_LEVEL_AT_PASSIVE   MISUSE_IOCTL(4) /* 0xC4 / 0x41 */
#define MISUSE_RAISE_TO_LOWER              MISUSE_IOCTL(5) /* 0xC4 / 0x30 */
#define MISUSE_LOWER_TO_HIGHER             MISUSE_IOCTL(6) /* 0xC4 / 0x31 */
#define MISUSE_RELEASE_BELOW_DISPATCH      MISUSE_IOCTL(7) /* 0xC4 / 0x32 */
#define MISUSE_ACQUIRE_ABOVE_DISPATCH      MISUSE_IOCTL(8) /* 0xC4 / 0x42 */
#define MISUSE_DPC_RETURNS_RAISED          MISUSE_IOCTL(9) /* 0xC4 / 0x2001D */

#define MAX_CPUS 64

/* What PROBE_QUEUED_DPCS returns: every field is a count. */
struct probe
{
    LONG runs;              /* DPC routines run, one targeted per processor */
    LONG not_at_dispatch;   /* of those, run below or above DISPATCH_LEVEL */
    LONG wrong_processor;   /* of those, run on another processor than targeted */
    LONG processors;
    LONG second_insert;     /* KeInsertQueueDpc of a queued DPC: must be 0 (FALSE) */
    LONG removed;           /* KeRemoveQueueDpc of it: must be 1 */
    LONG removed_again;     /* and again: must be 0 */
    LONG blocked_ran;       /* the removed DPC ran anyway: must be 0 */
};

static KSPIN_LOCK lock;
static UNICODE_STRING device_name = RTL_CONSTANT_STRING(L"\\Device\\DpclockMisuse");
static UNICODE_STRING link_name = RTL_CONSTANT_STRING(L"\\DosDevices\\DpclockMisuse");

static KDPC dpcs[MAX_CPUS], blocker, blocked;
static KEVENT all_ran;
static volatile LONG pending, release_blocker;

static void WINAPI probe_dpc(KDPC *dpc, void *context, void *arg1, void *arg2)
{
    struct probe *probe = context;
    PROCESSOR_NUMBER number;

    (void)dpc; (void)arg2;
    InterlockedIncrement(&probe->runs);
    if (KeGetCurrentIrql() != DISPATCH_LEVEL) InterlockedIncrement(&probe->not_at_dispatch);
    if (KeGetCurrentProcessorNumberEx(&number) != (ULONG)(ULONG_PTR)arg1)
        InterlockedIncrement(&probe->wrong_processor);
    if (!InterlockedDecrement(&pending)) KeSetEvent(&all_ran, IO_NO_INCREMENT, FALSE);
}

/* Holds its processor's worker so that the next DPC there stays queued. */
static void WINAPI blocker_dpc(KDPC *dpc, void *context, void *arg1, void *arg2)
{
    (void)dpc; (void)context; (void)arg1; (void)arg2;
    while (!release_blocker) YieldProcessor();
}

static void WINAPI blocked_dpc(KDPC *dpc, void *context, void *arg1, void *arg2)
{
    struct probe *probe = context;
    (void)dpc; (void)arg1; (void)arg2;
    InterlockedIncrement(&probe->blocked_ran);
}

static void probe_queued_dpcs(struct probe *probe)
{
    PROCESSOR_NUMBER number;
    LARGE_INTEGER timeout;
    ULONG i, count = KeQueryActiveProcessorCountEx(ALL_PROCESSOR_GROUPS);

    RtlZeroMemory(probe, sizeof(*probe));
    if (count > MAX_CPUS) count = MAX_CPUS;
    probe->processors = count;

    KeGetProcessorNumberFromIndex(0, &number);
    release_blocker = 0;
    KeInitializeDpc(&blocker, blocker_dpc, NULL);
    KeSetTargetProcessorDpcEx(&blocker, &number);
    KeInitializeDpc(&blocked, blocked_dpc, probe);
    KeSetTargetProcessorDpcEx(&blocked, &number);
    KeInsertQueueDpc(&blocker, NULL, NULL);
    KeInsertQueueDpc(&blocked, NULL, NULL);
    probe->second_insert = KeInsertQueueDpc(&blocked, NULL, NULL);
    probe->removed = KeRemoveQueueDpc(&blocked);
    probe->removed_again = KeRemoveQueueDpc(&blocked);
    release_blocker = 1;

    KeInitializeEvent(&all_ran, NotificationEvent, FALSE);
    pending = count;
    for (i = 0; i < count; i++)
    {
        KeInitializeDpc(&dpcs[i], probe_dpc, probe);
        KeGetProcessorNumberFromIndex(i, &number);
        KeSetTargetProcessorDpcEx(&dpcs[i], &number);
        KeSetImportanceDpc(&dpcs[i], MediumImportance);
        KeInsertQueueDpc(&dpcs[i], (void *)(ULONG_PTR)i, NULL);
    }
    timeout.QuadPart = -10 * 1000 * 1000 * 10LL; /* 10 s */
    KeWaitForSingleObject(&all_ran, Executive, KernelMode, FALSE, &timeout);
    KeFlushQueuedDpcs();
}

/* Returns at HIGH_LEVEL, not at the DISPATCH_LEVEL it was called at. */
static void WINAPI raising_dpc(KDPC *dpc, void *context, void *arg1, void *arg2)
{
    KIRQL old;
    (void)dpc; (void)context; (void)arg1; (void)arg2;
    KeRaiseIrql(HIGH_LEVEL, &old);
}

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
    case MISUSE_FROM_DPC_LEVEL_AT_PASSIVE:
        /* The release of an AtDpcLevel pair, at PASSIVE_LEVEL. */
        KeReleaseSpinLockFromDpcLevel(&lock);
        return complete(irp, STATUS_SUCCESS);
    case MISUSE_RAISE_TO_LOWER:
    {
        /* x64's wdm.h raises and lowers inline (cr8), unchecked on Windows
         * too; the exported routines are what Verifier checks. */
        UNICODE_STRING name = RTL_CONSTANT_STRING(L"KfRaiseIrql");
        KIRQL (WINAPI *raise)(KIRQL) = MmGetSystemRoutineAddress(&name);
        if (!raise) return complete(irp, STATUS_PROCEDURE_NOT_FOUND);
        KeRaiseIrql(DISPATCH_LEVEL, &old);
        raise(PASSIVE_LEVEL);
        return complete(irp, STATUS_SUCCESS);
    }
    case MISUSE_LOWER_TO_HIGHER:
    {
        UNICODE_STRING name = RTL_CONSTANT_STRING(L"KeLowerIrql");
        void (WINAPI *lower)(KIRQL) = MmGetSystemRoutineAddress(&name);
        if (!lower) return complete(irp, STATUS_PROCEDURE_NOT_FOUND);
        lower(DISPATCH_LEVEL);
        return complete(irp, STATUS_SUCCESS);
    }
    case MISUSE_RELEASE_BELOW_DISPATCH:
        /* The IRQL restored before the release instead of by it. */
        KeAcquireSpinLock(&lock, &old);
        KeLowerIrql(old);
        KeReleaseSpinLock(&lock, old);
        return complete(irp, STATUS_SUCCESS);
    case MISUSE_ACQUIRE_ABOVE_DISPATCH:
        KeRaiseIrql(HIGH_LEVEL, &old);
        KeAcquireSpinLock(&lock, &old);
        return complete(irp, STATUS_SUCCESS);
    case MISUSE_DPC_RETURNS_RAISED:
    {
        LARGE_INTEGER timeout;
        KeInitializeDpc(&blocker, raising_dpc, NULL);
        KeInsertQueueDpc(&blocker, NULL, NULL);
        /* The bugcheck ends the host while this waits. */
        KeInitializeEvent(&all_ran, NotificationEvent, FALSE);
        timeout.QuadPart = -10 * 1000 * 1000 * 10LL; /* 10 s */
        KeWaitForSingleObject(&all_ran, Executive, KernelMode, FALSE, &timeout);
        return complete(irp, STATUS_SUCCESS);
    }
    case PROBE_QUEUED_DPCS:
        if (stack->Parameters.DeviceIoControl.OutputBufferLength < sizeof(struct probe))
            return complete(irp, STATUS_BUFFER_TOO_SMALL);
        probe_queued_dpcs(irp->AssociatedIrp.SystemBuffer);
        irp->IoStatus.Status = STATUS_SUCCESS;
        irp->IoStatus.Information = sizeof(struct probe);
        IoCompleteRequest(irp, IO_NO_INCREMENT);
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
