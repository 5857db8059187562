/*
 * dpclock check-windows: the ARM64 section of wdm.h's per-architecture
 * chain, which mingw-w64 10 does not have (its chain ends in
 * "#error Unknown Architecture" for _M_ARM64). `cargo xtask check-windows`
 * adds an `#elif defined(_M_ARM64)` branch that includes this file to a
 * generated copy of mingw-w64's wdm.h, for aarch64 only.
 *
 * Only what the rest of the headers and the wdk-* crates need, written from
 * these sources (docs/windows-fidelity.md, "ARM64", has the details):
 *
 * - IRQL levels: the same numbers as on x64 (PASSIVE 0, APC 1, DISPATCH 2,
 *   ... HIGH 15); ReactOS's xdk/arm64/ke.h, and Microsoft's "Managing
 *   Hardware Priorities".
 * - KeGetCurrentIrql, KfRaiseIrql and KfLowerIrql are exported functions on
 *   ARM64 (declared NTHALAPI; KeLowerIrql and KeRaiseIrql are macros over
 *   them), not the cr8-based inline functions of x64: ReactOS's
 *   xdk/arm64/ke.h ("even in Windows it's like this for arm64"), the public
 *   symbols of ARM64 hal.dll 10.0.17134 (KeGetCurrentIrql, KfLowerIrql,
 *   KfRaiseIrql, KeQueryPerformanceCounter), mingw-w64's ARM32 hal.def, and
 *   microsoft/usersim issue 214 ("When building against arm64 ... KfLowerIrql
 *   is not inlined and is instead expected to be a function").
 * - KeGetCurrentThread: exported by ntoskrnl.exe on x64 and ARM32
 *   (mingw-w64's lib64 and libarm32 ntoskrnl.def) and declared, not
 *   inlined, in ReactOS's xdk/arm64/ke.h; wdm.h's PsGetCurrentThread calls
 *   it. The driver does not use it.
 */

#define PASSIVE_LEVEL           0
#define LOW_LEVEL               0
#define APC_LEVEL               1
#define DISPATCH_LEVEL          2
#define CLOCK_LEVEL             13
#define IPI_LEVEL               14
#define DRS_LEVEL               14
#define POWER_LEVEL             14
#define PROFILE_LEVEL           15
#define HIGH_LEVEL              15

#define PAGE_SIZE               0x1000
#define PAGE_SHIFT              12L

typedef struct _KFLOATING_SAVE {
  ULONG Dummy;
} KFLOATING_SAVE, *PKFLOATING_SAVE;

NTHALAPI
KIRQL
NTAPI
KeGetCurrentIrql(VOID);

NTHALAPI
VOID
NTAPI
KfLowerIrql(
  KIRQL NewIrql);
#define KeLowerIrql(a) KfLowerIrql(a)

NTHALAPI
KIRQL
NTAPI
KfRaiseIrql(
  KIRQL NewIrql);
#define KeRaiseIrql(a,b) *(b) = KfRaiseIrql(a)

NTKERNELAPI
PKTHREAD
NTAPI
KeGetCurrentThread(VOID);
