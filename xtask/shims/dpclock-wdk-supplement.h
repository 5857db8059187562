/*
 * dpclock check-windows: declarations that the WDK's wdm.h has and
 * mingw-w64 10's DDK headers lack, for the items the wdk-* crates use.
 * `cargo xtask check-windows` copies this file into the include overlay,
 * and the wdk-sys shim includes it after ntifs.h, ntddk.h and ntstrsafe.h.
 *
 * Each declaration is written from Microsoft's reference page for it:
 *
 * - POOL_FLAGS: "typedef ULONG64 POOL_FLAGS" (wdm.h; "POOL_FLAGS",
 *   learn.microsoft.com/windows-hardware/drivers/kernel/pool_flags).
 * - ExAllocatePool2: wdm.h, NtosKrnl.exe, Windows 10 version 2004
 *   (learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-exallocatepool2).
 *   wdk-alloc 0.4.2 allocates with it.
 * - DRIVER_REGKEY_TYPE and IoOpenDriverRegistryKey: wdm.h, NtosKrnl.exe,
 *   Windows 10 version 1803
 *   (learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-ioopendriverregistrykey,
 *   .../ne-wdm-_driver_regkey_type). DriverEntry reads its Parameters key.
 */
#pragma once

typedef ULONG64 POOL_FLAGS;

NTKERNELAPI
PVOID
NTAPI
ExAllocatePool2(
  POOL_FLAGS Flags,
  SIZE_T NumberOfBytes,
  ULONG Tag);

typedef enum _DRIVER_REGKEY_TYPE {
  DriverRegKeyParameters,
  DriverRegKeyPersistentState,
  DriverRegKeySharedPersistentState
} DRIVER_REGKEY_TYPE, *PDRIVER_REGKEY_TYPE;

NTKERNELAPI
NTSTATUS
NTAPI
IoOpenDriverRegistryKey(
  PDRIVER_OBJECT DriverObject,
  DRIVER_REGKEY_TYPE RegKeyType,
  ACCESS_MASK DesiredAccess,
  ULONG Flags,
  PHANDLE DriverRegKey);
