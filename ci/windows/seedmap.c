/*
 * The seeds' two programs, as a default (UNICODE) Visual Studio build makes
 * them: text in the mapping is wchar_t, UTF-16LE with a two-byte NUL. The
 * CLI's Windows tests run this under Wine against memlink, both ways.
 *
 *   seedmap server NAME SIZE OFFSET TEXT
 *       CreateFileMappingW(INVALID_HANDLE_VALUE, ...) of SIZE bytes (backed
 *       by the paging file), MapViewOfFile at OFFSET (a multiple of the
 *       64 KiB allocation granularity, as MapViewOfFile requires), copies
 *       TEXT and its NUL as wide characters, prints "ready", and holds the
 *       mapping until its standard input ends (or a line is read).
 *   seedmap client NAME OFFSET
 *       OpenFileMappingW(FILE_MAP_READ, ...), MapViewOfFile at OFFSET,
 *       prints the wide string there (converted to UTF-8) on one line.
 *
 * Every failure prints the call and its error code, as the seeds do, and
 * exits 1. TEXT and the printed text are UTF-8 on the command line and the
 * output, so the test can compare them.
 */
#include <fcntl.h>
#include <io.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>
#include <windows.h>

#define VIEW_SIZE 1024

static wchar_t *widen(const char *text)
{
    int n = MultiByteToWideChar(CP_UTF8, 0, text, -1, NULL, 0);
    wchar_t *wide = n > 0 ? calloc((size_t)n, sizeof(wchar_t)) : NULL;
    if (wide == NULL || MultiByteToWideChar(CP_UTF8, 0, text, -1, wide, n) != n) {
        fprintf(stderr, "MultiByteToWideChar failed w/err 0x%08lx\n", GetLastError());
        exit(1);
    }
    return wide;
}

static int server(const char *name, DWORD size, DWORD offset, const char *text)
{
    wchar_t *wide_name = widen(name);
    wchar_t *message = widen(text);
    size_t cb_message = (wcslen(message) + 1) * sizeof(*message);
    HANDLE map = CreateFileMappingW(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE, 0, size, wide_name);
    if (map == NULL) {
        printf("CreateFileMapping failed w/err 0x%08lx\n", GetLastError());
        return 1;
    }
    if (GetLastError() == ERROR_ALREADY_EXISTS) {
        printf("a mapping of that name already exists\n");
        CloseHandle(map);
        return 1;
    }
    void *view = MapViewOfFile(map, FILE_MAP_ALL_ACCESS, 0, offset, VIEW_SIZE);
    if (view == NULL) {
        printf("MapViewOfFile failed w/err 0x%08lx\n", GetLastError());
        CloseHandle(map);
        return 1;
    }
    if (cb_message > VIEW_SIZE) {
        printf("the message does not fit in the view\n");
        return 1;
    }
    memcpy(view, message, cb_message);
    UnmapViewOfFile(view);
    printf("ready\n");
    fflush(stdout);
    /* Hold the handle, as the seeds' process 1 does, until told to stop. */
    char line[16];
    (void)fgets(line, sizeof line, stdin);
    CloseHandle(map);
    return 0;
}

static int client(const char *name, DWORD offset)
{
    wchar_t *wide_name = widen(name);
    HANDLE map = OpenFileMappingW(FILE_MAP_READ, FALSE, wide_name);
    if (map == NULL) {
        printf("OpenFileMapping failed w/err 0x%08lx\n", GetLastError());
        return 1;
    }
    const wchar_t *view = MapViewOfFile(map, FILE_MAP_READ, 0, offset, VIEW_SIZE);
    if (view == NULL) {
        printf("MapViewOfFile failed w/err 0x%08lx\n", GetLastError());
        CloseHandle(map);
        return 1;
    }
    /* The view's wide string, up to its NUL or the view's end. */
    int units = (int)wcsnlen(view, VIEW_SIZE / sizeof(wchar_t));
    char text[4 * VIEW_SIZE];
    int n = WideCharToMultiByte(CP_UTF8, 0, view, units, text, sizeof text, NULL, NULL);
    if (units > 0 && n == 0) {
        printf("WideCharToMultiByte failed w/err 0x%08lx\n", GetLastError());
        return 1;
    }
    fwrite(text, 1, (size_t)n, stdout);
    printf("\n");
    UnmapViewOfFile(view);
    CloseHandle(map);
    return 0;
}

int main(int argc, char **argv)
{
    /* Output as written: \n, not \r\n, for the tests to compare. */
    _setmode(_fileno(stdout), _O_BINARY);
    if (argc == 6 && strcmp(argv[1], "server") == 0)
        return server(argv[2], (DWORD)strtoul(argv[3], NULL, 0), (DWORD)strtoul(argv[4], NULL, 0), argv[5]);
    if (argc == 4 && strcmp(argv[1], "client") == 0)
        return client(argv[2], (DWORD)strtoul(argv[3], NULL, 0));
    fprintf(stderr, "usage: seedmap server NAME SIZE OFFSET TEXT | seedmap client NAME OFFSET\n");
    return 2;
}
