/*
 * Sends one of misuse.c's IOCTLs: `misuse_client N`.
 */
#include <windows.h>
#include <winioctl.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    DWORD code, returned;
    HANDLE device;

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
    if (!DeviceIoControl(device, code, NULL, 0, NULL, 0, &returned, NULL))
    {
        printf("IOCTL failed: error %lu\n", GetLastError());
        return 1;
    }
    printf("IOCTL succeeded\n");
    return 0;
}
