# Cross-compiling for 64-bit ARM Linux with Debian's cross toolchain
# (gcc-aarch64-linux-gnu) against multiarch arm64 -dev packages
# (libsodium-dev:arm64, libnng-dev:arm64, ...), as scripts/arm64.sh does.
# Tests run under qemu-user through CMAKE_CROSSCOMPILING_EMULATOR, so a plain
# `ctest` in the build folder runs them. Use with -DFEDREC_CLIENT_ONLY=ON.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
# Host programs (protoc-c) from the host; libraries and headers for arm64
# from the multiarch folders, never the host's.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)
set(ENV{PKG_CONFIG_PATH} "")
# The arm64 C library of libc6-arm64-cross is under /usr/aarch64-linux-gnu;
# the multiarch libraries are found in /usr/lib/aarch64-linux-gnu.
# Under qemu, the loader and the C library must come from one glibc build.
# The multiarch -dev packages pull in libc6:arm64 (/lib/ld-linux-aarch64.so.1
# and /lib/aarch64-linux-gnu/libc.so.6), usually a newer Debian revision
# than libc6-arm64-cross; with `-L /usr/aarch64-linux-gnu` qemu took the
# cross loader, which then found only the multiarch libc.so.6, and with the
# two revisions mixed every fork()ed child spun forever inside glibc (so the
# crash tests, which fork a writer and SIGKILL it, hung). So: the multiarch
# glibc when it is installed (binaries built against the cross glibc run on
# the same or a newer one), the cross one otherwise.
if(EXISTS /lib/ld-linux-aarch64.so.1 AND EXISTS /lib/aarch64-linux-gnu/libc.so.6)
  set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L /)
else()
  set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L /usr/aarch64-linux-gnu)
endif()
list(APPEND CMAKE_SYSTEM_LIBRARY_PATH /usr/aarch64-linux-gnu/lib)
