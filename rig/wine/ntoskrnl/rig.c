/*
 * dpclock's Wine rig: what Windows enforces and Wine 8.0's ntoskrnl.exe does
 * not model. The per-thread IRQL, queued DPCs on per-processor workers, and
 * Driver Verifier's spin-lock and IRQL checks, which fail-stop the driver
 * host through KeBugCheckEx with Verifier's codes.
 *
 * Copyright 2026 the dpclock authors
 *
 * This file is compiled into Wine's ntoskrnl.exe, so it is distributed under
 * the terms Wine is: the GNU Lesser General Public License, version 2.1 or
 * (at your option) any later version. This library is distributed in the hope
 * that it will be useful, but WITHOUT ANY WARRANTY; without even the implied
 * warranty of MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE. See the GNU
 * Lesser General Public License for more details: it comes with Wine's source
 * as COPYING.LIB, and is at https://www.gnu.org/licenses/lgpl-2.1.html
 */

#include <stdarg.h>

#include "ntoskrnl_private.h"
#include "ddk/ntddk.h"
#include "rig.h"
#include "rig_key.h"

#include "wine/debug.h"

#define RIG_PASSIVE_LEVEL  0
#define RIG_DISPATCH_LEVEL 2
#define RIG_HIGH_LEVEL     15

/* Bug check codes and Verifier's first parameters (Bug Check 0xC4 and 0xC9
 * on learn.microsoft.com; docs/linux-flavor.md lists each beside its check). */
#define DRIVER_VERIFIER_DETECTED_VIOLATION   0xc4
#define DRIVER_VERIFIER_IOMANAGER_VIOLATION  0xc9
#define VF_RAISE_TO_LOWER          0x30
#define VF_LOWER_TO_HIGHER         0x31
#define VF_RELEASE_NOT_DISPATCH    0x32
#define VF_ACQUIRE_AT_DPC_BELOW    0x40
#define VF_RELEASE_FROM_DPC_BELOW  0x41
#define VF_ACQUIRE_ABOVE_DISPATCH  0x42
#define VF_IRQL_RETURN             0x2001d  /* the IrqlReturn DDI rule */
#define VF_IO_IRQL_CHANGED         0x05     /* with 0xC9 */
/* SpinLockSafe is a Static Driver Verifier rule with no run-time code of its
 * own: the rig reports it as 0xC4 with this private first parameter. */
#define RIG_SPIN_LOCK_SAFE         0x5350

#define RIG_MAX_PROCESSORS 64

static DWORD irql_slot = TLS_OUT_OF_INDEXES;
static DWORD held_slot = TLS_OUT_OF_INDEXES;

void rig_init(void)
{
    irql_slot = TlsAlloc();
    held_slot = TlsAlloc();
    MESSAGE( "dpclock-rig: ntoskrnl.exe %s loaded (process %04lx): IRQL modelled per thread, "
             "queued DPCs, Verifier spin-lock checks\n", RIG_KEY, GetCurrentProcessId() );
}

/* A fresh thread reads 0 from both slots: PASSIVE_LEVEL, no lock held. */
KIRQL rig_get_irql(void)
{
    return (KIRQL)(ULONG_PTR)TlsGetValue( irql_slot );
}

void rig_set_irql( KIRQL irql )
{
    TlsSetValue( irql_slot, (void *)(ULONG_PTR)irql );
}

static LONG_PTR held_locks(void)
{
    return (LONG_PTR)TlsGetValue( held_slot );
}

static void add_held_locks( LONG_PTR delta )
{
    TlsSetValue( held_slot, (void *)(held_locks() + delta) );
}

static void DECLSPEC_NORETURN bugcheck( ULONG code, ULONG_PTR p1, ULONG_PTR p2, ULONG_PTR p3,
                                        ULONG_PTR p4, const char *why )
{
    MESSAGE( "dpclock-rig: bugcheck 0x%lX (0x%Ix, 0x%Ix, 0x%Ix, 0x%Ix): %s\n",
             code, p1, p2, p3, p4, why );
    KeBugCheckEx( code, p1, p2, p3, p4 );
    for (;;) ExitProcess( code );
}

/***********************************************************************
 *           IRQL
 */
KIRQL WINAPI rig_KeGetCurrentIrql(void)
{
    return rig_get_irql();
}

KIRQL WINAPI rig_KfRaiseIrql( KIRQL new )
{
    KIRQL old = rig_get_irql();
    if (new < old)
        bugcheck( DRIVER_VERIFIER_DETECTED_VIOLATION, VF_RAISE_TO_LOWER, old, new, 0,
                  "KeRaiseIrql to a lower IRQL" );
    rig_set_irql( new );
    return old;
}

KIRQL WINAPI rig_KeRaiseIrqlToDpcLevel(void)
{
    return rig_KfRaiseIrql( RIG_DISPATCH_LEVEL );
}

void WINAPI rig_KeLowerIrql( KIRQL new )
{
    KIRQL old = rig_get_irql();
    if (new > old || new > RIG_HIGH_LEVEL)
        bugcheck( DRIVER_VERIFIER_DETECTED_VIOLATION, VF_LOWER_TO_HIGHER, old, new, 0,
                  "KeLowerIrql to a higher IRQL" );
    rig_set_irql( new );
}

/***********************************************************************
 *           Executive spin locks
 *
 * Wine's own routines (sync.c) do the locking; the rig checks the IRQL
 * before, moves it, and counts the locks this thread holds.
 */
static KIRQL raise_for_lock( void *lock )
{
    KIRQL old = rig_get_irql();
    if (old > RIG_DISPATCH_LEVEL)
        bugcheck( DRIVER_VERIFIER_DETECTED_VIOLATION, VF_ACQUIRE_ABOVE_DISPATCH, old,
                  (ULONG_PTR)lock, 0, "KeAcquireSpinLock above DISPATCH_LEVEL" );
    rig_set_irql( RIG_DISPATCH_LEVEL );
    return old;
}

static void check_release_at_dispatch( void *lock, KIRQL new, const char *what )
{
    KIRQL now = rig_get_irql();
    if (now != RIG_DISPATCH_LEVEL)
        bugcheck( DRIVER_VERIFIER_DETECTED_VIOLATION, VF_RELEASE_NOT_DISPATCH, now,
                  (ULONG_PTR)lock, 0, what );
    if (new > RIG_DISPATCH_LEVEL)
        bugcheck( DRIVER_VERIFIER_DETECTED_VIOLATION, VF_LOWER_TO_HIGHER, now, new, 0, what );
}

static void check_at_dispatch( ULONG_PTR code, void *lock, const char *what )
{
    KIRQL now = rig_get_irql();
    if (now < RIG_DISPATCH_LEVEL)
        bugcheck( DRIVER_VERIFIER_DETECTED_VIOLATION, code, now, (ULONG_PTR)lock, 0, what );
}

void WINAPI rig_KeAcquireSpinLockAtDpcLevel( KSPIN_LOCK *lock )
{
    check_at_dispatch( VF_ACQUIRE_AT_DPC_BELOW, lock,
                       "KeAcquireSpinLockAtDpcLevel below DISPATCH_LEVEL" );
    KeAcquireSpinLockAtDpcLevel( lock );
    add_held_locks( 1 );
}

void WINAPI rig_KeReleaseSpinLockFromDpcLevel( KSPIN_LOCK *lock )
{
    check_at_dispatch( VF_RELEASE_FROM_DPC_BELOW, lock,
                       "KeReleaseSpinLockFromDpcLevel below DISPATCH_LEVEL" );
    KeReleaseSpinLockFromDpcLevel( lock );
    add_held_locks( -1 );
}

KIRQL WINAPI rig_KeAcquireSpinLockRaiseToDpc( KSPIN_LOCK *lock )
{
    KIRQL old = raise_for_lock( lock );
    KeAcquireSpinLockAtDpcLevel( lock );
    add_held_locks( 1 );
    return old;
}

void WINAPI rig_KeReleaseSpinLock( KSPIN_LOCK *lock, KIRQL new )
{
    check_release_at_dispatch( lock, new, "KeReleaseSpinLock not at DISPATCH_LEVEL" );
    KeReleaseSpinLockFromDpcLevel( lock );
    add_held_locks( -1 );
    rig_set_irql( new );
}

/***********************************************************************
 *           In-stack queued spin locks
 */
void WINAPI rig_KeAcquireInStackQueuedSpinLock( KSPIN_LOCK *lock, KLOCK_QUEUE_HANDLE *queue )
{
    KIRQL old = raise_for_lock( lock );
    KeAcquireInStackQueuedSpinLockAtDpcLevel( lock, queue );
    queue->OldIrql = old;
    add_held_locks( 1 );
}

void WINAPI rig_KeReleaseInStackQueuedSpinLock( KLOCK_QUEUE_HANDLE *queue )
{
    KIRQL new = queue->OldIrql;
    check_release_at_dispatch( queue->LockQueue.Lock, new,
                               "KeReleaseInStackQueuedSpinLock not at DISPATCH_LEVEL" );
    KeReleaseInStackQueuedSpinLockFromDpcLevel( queue );
    add_held_locks( -1 );
    rig_set_irql( new );
}

void FASTCALL rig_KeAcquireInStackQueuedSpinLockAtDpcLevel( KSPIN_LOCK *lock, KLOCK_QUEUE_HANDLE *queue )
{
    check_at_dispatch( VF_ACQUIRE_AT_DPC_BELOW, lock,
                       "KeAcquireInStackQueuedSpinLockAtDpcLevel below DISPATCH_LEVEL" );
    KeAcquireInStackQueuedSpinLockAtDpcLevel( lock, queue );
    add_held_locks( 1 );
}

void FASTCALL rig_KeReleaseInStackQueuedSpinLockFromDpcLevel( KLOCK_QUEUE_HANDLE *queue )
{
    check_at_dispatch( VF_RELEASE_FROM_DPC_BELOW, queue->LockQueue.Lock,
                       "KeReleaseInStackQueuedSpinLockFromDpcLevel below DISPATCH_LEVEL" );
    KeReleaseInStackQueuedSpinLockFromDpcLevel( queue );
    add_held_locks( -1 );
}

/***********************************************************************
 *           Driver routines: the IRQL they run at and return at
 */
void rig_passive_enter(void)
{
    rig_set_irql( RIG_PASSIVE_LEVEL );
}

void rig_passive_return( void *routine )
{
    KIRQL now = rig_get_irql();
    if (now != RIG_PASSIVE_LEVEL)
        bugcheck( DRIVER_VERIFIER_DETECTED_VIOLATION, VF_IRQL_RETURN, now, RIG_PASSIVE_LEVEL,
                  (ULONG_PTR)routine, "a PASSIVE_LEVEL driver routine returned at a raised IRQL" );
}

KIRQL rig_dispatch_enter(void)
{
    return rig_get_irql();
}

void rig_dispatch_return( DEVICE_OBJECT *device, KIRQL before )
{
    KIRQL now = rig_get_irql();
    if (now != before)
        bugcheck( DRIVER_VERIFIER_IOMANAGER_VIOLATION, VF_IO_IRQL_CHANGED, (ULONG_PTR)device,
                  before, now, "the IRQL changed across a dispatch routine" );
}

void rig_dpc_enter(void)
{
    rig_set_irql( RIG_DISPATCH_LEVEL );
}

void rig_dpc_return( void *routine )
{
    KIRQL now = rig_get_irql();
    if (now != RIG_DISPATCH_LEVEL)
        bugcheck( DRIVER_VERIFIER_DETECTED_VIOLATION, VF_IRQL_RETURN, now, RIG_DISPATCH_LEVEL,
                  (ULONG_PTR)routine, "a DPC routine returned at another IRQL" );
    rig_set_irql( RIG_PASSIVE_LEVEL );
}

void rig_complete_request( IRP *irp )
{
    LONG_PTR held = held_locks();
    if (held > 0)
        bugcheck( DRIVER_VERIFIER_DETECTED_VIOLATION, RIG_SPIN_LOCK_SAFE, held, (ULONG_PTR)irp,
                  rig_get_irql(), "IoCompleteRequest with a spin lock held (SpinLockSafe)" );
}

/***********************************************************************
 *           Queued DPCs
 *
 * One worker thread per processor, pinned to it, runs that processor's
 * queue in order, one DPC at a time, at DISPATCH_LEVEL. A queued DPC is
 * linked through its DpcListEntry; its Lock field (DpcData on Windows)
 * points to the queue while it is queued.
 */
struct dpc_queue
{
    LIST_ENTRY         pending;
    CONDITION_VARIABLE changed;
    ULONG64            inserted;   /* DPCs ever queued here */
    ULONG64            finished;   /* of those, run or removed */
    HANDLE             worker;
};

static CRITICAL_SECTION dpc_cs;
static CRITICAL_SECTION_DEBUG dpc_cs_debug =
{
    0, 0, &dpc_cs,
    { &dpc_cs_debug.ProcessLocksList, &dpc_cs_debug.ProcessLocksList },
      0, 0, { (DWORD_PTR)(__FILE__ ": dpc_cs") }
};
static CRITICAL_SECTION dpc_cs = { &dpc_cs_debug, -1, 0, 0, 0, 0 };

static struct dpc_queue dpc_queues[RIG_MAX_PROCESSORS];
static ULONG dpc_processors;

#define DPC_TARGETED 0x80  /* in KDPC.Number, beside the processor's index */

static DWORD WINAPI dpc_worker( void *arg )
{
    struct dpc_queue *queue = arg;

    EnterCriticalSection( &dpc_cs );
    for (;;)
    {
        LIST_ENTRY *entry;
        KDPC *dpc;
        PKDEFERRED_ROUTINE routine;
        void *context, *arg1, *arg2;

        while (IsListEmpty( &queue->pending ))
            SleepConditionVariableCS( &queue->changed, &dpc_cs, INFINITE );
        entry = RemoveHeadList( &queue->pending );
        dpc = CONTAINING_RECORD( entry, KDPC, DpcListEntry );
        routine = dpc->DeferredRoutine;
        context = dpc->DeferredContext;
        arg1 = dpc->SystemArgument1;
        arg2 = dpc->SystemArgument2;
        /* Dequeued before it runs, as on Windows: the routine may queue it again. */
        dpc->Lock = NULL;
        LeaveCriticalSection( &dpc_cs );

        rig_dpc_enter();
        routine( dpc, context, arg1, arg2 );
        rig_dpc_return( routine );

        EnterCriticalSection( &dpc_cs );
        queue->finished++;
        WakeAllConditionVariable( &queue->changed );
    }
    return 0;
}

/* Called with dpc_cs held. */
static struct dpc_queue *dpc_queue_for( KDPC *dpc )
{
    ULONG index = (dpc->Number & DPC_TARGETED) ? dpc->Number & ~DPC_TARGETED
                                               : NtGetCurrentProcessorNumber();
    struct dpc_queue *queue;

    if (!dpc_processors)
    {
        ULONG i;
        dpc_processors = min( KeQueryActiveProcessorCountEx( ALL_PROCESSOR_GROUPS ), RIG_MAX_PROCESSORS );
        for (i = 0; i < dpc_processors; i++)
        {
            InitializeListHead( &dpc_queues[i].pending );
            InitializeConditionVariable( &dpc_queues[i].changed );
        }
    }
    if (index >= dpc_processors) index = 0;
    queue = &dpc_queues[index];
    if (!queue->worker)
    {
        queue->worker = CreateThread( NULL, 0, dpc_worker, queue, 0, NULL );
        if (!queue->worker)
            bugcheck( 0xdead, index, GetLastError(), 0, 0, "cannot start a DPC worker thread" );
        SetThreadAffinityMask( queue->worker, (DWORD_PTR)1 << index );
    }
    return queue;
}

void WINAPI rig_KeInitializeDpc( KDPC *dpc, PKDEFERRED_ROUTINE routine, void *context )
{
    memset( dpc, 0, sizeof(*dpc) );
    dpc->Type = 19;  /* DpcObject */
    dpc->Importance = MediumImportance;
    dpc->DeferredRoutine = routine;
    dpc->DeferredContext = context;
}

void WINAPI rig_KeSetImportanceDpc( KDPC *dpc, KDPC_IMPORTANCE importance )
{
    /* One queue per processor and one worker: importance only orders, and
     * the rig keeps every queue in arrival order. */
    dpc->Importance = importance;
}

void WINAPI rig_KeSetTargetProcessorDpc( KDPC *dpc, CCHAR number )
{
    dpc->Number = DPC_TARGETED | (UCHAR)number;
}

NTSTATUS WINAPI rig_KeSetTargetProcessorDpcEx( KDPC *dpc, PROCESSOR_NUMBER *number )
{
    if (number->Group != 0 || number->Number >= min( KeQueryActiveProcessorCountEx( ALL_PROCESSOR_GROUPS ),
                                                     RIG_MAX_PROCESSORS ))
        return STATUS_INVALID_PARAMETER;
    dpc->Number = DPC_TARGETED | number->Number;
    return STATUS_SUCCESS;
}

NTSTATUS WINAPI rig_KeGetProcessorNumberFromIndex( ULONG index, PROCESSOR_NUMBER *number )
{
    if (index >= KeQueryActiveProcessorCountEx( ALL_PROCESSOR_GROUPS ))
        return STATUS_INVALID_PARAMETER;
    number->Group = 0;
    number->Number = index;
    number->Reserved = 0;
    return STATUS_SUCCESS;
}

BOOLEAN WINAPI rig_KeInsertQueueDpc( KDPC *dpc, void *arg1, void *arg2 )
{
    struct dpc_queue *queue;

    EnterCriticalSection( &dpc_cs );
    if (dpc->Lock)
    {
        LeaveCriticalSection( &dpc_cs );
        return FALSE;
    }
    queue = dpc_queue_for( dpc );
    dpc->SystemArgument1 = arg1;
    dpc->SystemArgument2 = arg2;
    dpc->Lock = (ULONG_PTR *)queue;
    InsertTailList( &queue->pending, &dpc->DpcListEntry );
    queue->inserted++;
    WakeAllConditionVariable( &queue->changed );
    LeaveCriticalSection( &dpc_cs );
    return TRUE;
}

BOOLEAN WINAPI rig_KeRemoveQueueDpc( KDPC *dpc )
{
    struct dpc_queue *queue;

    EnterCriticalSection( &dpc_cs );
    queue = (struct dpc_queue *)dpc->Lock;
    if (!queue)
    {
        LeaveCriticalSection( &dpc_cs );
        return FALSE;
    }
    RemoveEntryList( &dpc->DpcListEntry );
    dpc->Lock = NULL;
    queue->finished++;
    WakeAllConditionVariable( &queue->changed );
    LeaveCriticalSection( &dpc_cs );
    return TRUE;
}

void WINAPI rig_KeFlushQueuedDpcs(void)
{
    ULONG64 target[RIG_MAX_PROCESSORS];
    ULONG i;

    EnterCriticalSection( &dpc_cs );
    for (i = 0; i < dpc_processors; i++) target[i] = dpc_queues[i].inserted;
    for (i = 0; i < dpc_processors; i++)
        while (dpc_queues[i].finished < target[i])
            SleepConditionVariableCS( &dpc_queues[i].changed, &dpc_cs, INFINITE );
    LeaveCriticalSection( &dpc_cs );
}

/***********************************************************************
 *           IoOpenDriverRegistryKey (absent from Wine 8.0)
 */
NTSTATUS WINAPI rig_IoOpenDriverRegistryKey( DRIVER_OBJECT *driver, ULONG type, ACCESS_MASK access,
                                             ULONG flags, HANDLE *key )
{
    static const WCHAR parametersW[] = L"Parameters";
    OBJECT_ATTRIBUTES attr;
    UNICODE_STRING name;
    HANDLE service;
    NTSTATUS status;

    if (type != 0 /* DriverRegKeyParameters */ || flags) return STATUS_INVALID_PARAMETER;
    InitializeObjectAttributes( &attr, &driver->DriverExtension->ServiceKeyName,
                                OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE, NULL, NULL );
    if ((status = NtOpenKey( &service, KEY_CREATE_SUB_KEY, &attr ))) return status;
    RtlInitUnicodeString( &name, parametersW );
    InitializeObjectAttributes( &attr, &name, OBJ_CASE_INSENSITIVE | OBJ_KERNEL_HANDLE, service, NULL );
    status = NtCreateKey( key, access, &attr, 0, NULL, REG_OPTION_NON_VOLATILE, NULL );
    NtClose( service );
    return status;
}
