/*
 * Minimal stand-in for Windows' bcryptprimitives.dll, for running Rust
 * programs under Wine 8 (whose builtin bcryptprimitives.dll lacks
 * ProcessPrng, which the Rust standard library imports for randomness).
 *
 * ProcessPrng is implemented with advapi32's SystemFunction036
 * (a.k.a. RtlGenRandom). Build:
 *   x86_64-w64-mingw32-gcc -O2 -shared -o bcryptprimitives.dll \
 *       bcryptprimitives.c bcryptprimitives.def -ladvapi32
 *
 * Only used by CI (ci/windows-test.sh); never shipped.
 */
#include <windows.h>

/* RtlGenRandom; exported by advapi32 under this name. */
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

/* BOOL WINAPI ProcessPrng(PBYTE pbData, SIZE_T cbData);  always returns TRUE on Windows. */
BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x40000000u ? 0x40000000u : (ULONG)len;
        if (!SystemFunction036(data, chunk)) {
            /* Real ProcessPrng never fails; there is no sane fallback. */
            return FALSE;
        }
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}

BOOL WINAPI DllMain(HINSTANCE inst, DWORD reason, LPVOID reserved)
{
    (void)inst;
    (void)reason;
    (void)reserved;
    return TRUE;
}
