# CMake toolchain file: cross-compile for Windows x86_64 with Debian's mingw-w64.
#
#   cmake -DCMAKE_TOOLCHAIN_FILE=packaging/windows/mingw-w64-x86_64.cmake \
#         -DAPSYNC_WIN_DEPS=/abs/path/build-win/deps ...
#
# The *-posix compilers are used: their runtime is winpthreads, which the agent
# needs for its pthread_* calls; every library is built with the same compiler
# so that one libgcc/threading model ends up in apsync-agent.exe.

set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)

set(MINGW_TRIPLET x86_64-w64-mingw32)
set(CMAKE_C_COMPILER ${MINGW_TRIPLET}-gcc-posix)
set(CMAKE_RC_COMPILER ${MINGW_TRIPLET}-windres)
set(CMAKE_AR ${MINGW_TRIPLET}-ar CACHE FILEPATH "archiver")
set(CMAKE_RANLIB ${MINGW_TRIPLET}-ranlib CACHE FILEPATH "ranlib")

# Look for headers and libraries only in the mingw-w64 sysroot and in the
# prefix the Windows libraries are installed to, never on the Linux host;
# run build tools (perl, pkg-config...) from the host.
set(CMAKE_FIND_ROOT_PATH /usr/${MINGW_TRIPLET})
if(APSYNC_WIN_DEPS)
  list(APPEND CMAKE_FIND_ROOT_PATH ${APSYNC_WIN_DEPS})
endif()
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
