/*
 * dpclock's Wine rig: the hooks Wine's ntoskrnl.exe calls into rig.c.
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

#ifndef __WINE_NTOSKRNL_RIG_H
#define __WINE_NTOSKRNL_RIG_H

/* Called from DllMain: per-thread state, and the marker line xtask checks. */
extern void rig_init(void);

/* cr8 as the per-thread IRQL (instr.c emulates the privileged accesses). */
extern KIRQL rig_get_irql(void);
extern void rig_set_irql( KIRQL irql );

/* Around a call into a driver routine that runs at PASSIVE_LEVEL and must
 * return there: DriverEntry, DriverUnload, AddDevice. */
extern void rig_passive_enter(void);
extern void rig_passive_return( void *routine );

/* Around a dispatch routine (IoCallDriver): the IRQL must not change. */
extern KIRQL rig_dispatch_enter(void);
extern void rig_dispatch_return( DEVICE_OBJECT *device, KIRQL before );

/* Around a DPC routine (timer, generic call): it runs at DISPATCH_LEVEL. */
extern void rig_dpc_enter(void);
extern void rig_dpc_return( void *routine );

/* IoCompleteRequest: no spin lock may be held (SpinLockSafe). */
extern void rig_complete_request( IRP *irp );

#endif  /* __WINE_NTOSKRNL_RIG_H */
