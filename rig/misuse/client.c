/*
 * Sends one of misuse.c's IOCTLs: `misuse_client N`. For the queued-DPC
 * probe (3) it prints the driver's counts as `name=value` pairs.
 */
#include <windows.h>
#include <winioctl.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    DWORD code, returned;
    LONG counts[8] = {0};
    HANDLE device;
    static const char *names[8] = {"runs", "not_at_dispatch", "wrong_processor", "processors",
                                   "second_insert", "removed", "removed_again", "blocked_ran"};
    int i;

    if (argc != 2) return 2;
    code = CTL_CODE(FILE_DEVICE_UNKNOWN, 0x900 + atoi(argv[1]), METHOD_BUFFERED, FILE_ANY_ACCESS);
    device = CreateFileA("\\\\.\\DpclockMisuse", GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0, NULL);
    if (device == INVALID_HANDLE_VALUE)
    {
        printf("cannot open the device: error %lu\n", GetLastError());
        return 3;
    }
    printf("sending IOCTL %#lx\n", code);
    fflush(stdout);
    if (!DeviceIoControl(device, code, NULL, 0, counts, sizeof(counts), &returned, NULL))
    {
        printf("IOCTL failed: error %lu\n", GetLastError());
        return 1;
    }
    printf("IOCTL succeeded\n");
    if (returned == sizeof(counts))
    {
        for (i = 0; i < 8; i++) printf("%s=%ld ", names[i], counts[i]);
        printf("\n");
    }
    return 0;
}
