# iOS (arm64 devices) with Xcode's clang, for the client-only library.
# NOT RUN: written without a Mac or the iOS SDK; see docs/client.md.
#   cmake -S . -B build-ios -G Xcode -DCMAKE_TOOLCHAIN_FILE=cmake/toolchains/ios.cmake \
#         -DFEDREC_CLIENT_ONLY=ON -DBUILD_TESTING=OFF -DCMAKE_PREFIX_PATH=/path/to/ios-deps
# libsodium, nng (with mbedTLS) and protobuf-c must be built for iOS first and
# found through CMAKE_PREFIX_PATH (nng's CMake package, pkg-config files).
set(CMAKE_SYSTEM_NAME iOS)
set(CMAKE_OSX_ARCHITECTURES arm64)
set(CMAKE_OSX_DEPLOYMENT_TARGET 13.0)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
# An app embeds a static library (or an xcframework made from it); the
# shared libfedrec is for Linux and Android.
set(BUILD_SHARED_LIBS OFF)
