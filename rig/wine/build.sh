#!/bin/sh
# Builds dpclock's rig ntoskrnl.exe: Debian's Wine source package, Debian's
# patches, the rig's hooks (hooks.patch) and files (ntoskrnl/), and only what
# ntoskrnl.exe needs: configure with most features off, the build tools, then
# dlls/ntoskrnl.exe. Run by `cargo xtask` (xtask/src/rig.rs), which downloads
# the sources and caches the result.
#
# usage: build.sh ORIG_TARBALL DEBIAN_TARBALL WORK_DIR OUTPUT KEY
set -eu

orig=$1 debian=$2 work=$3 output=$4 key=$5
rig=$(cd "$(dirname "$0")" && pwd)

rm -rf "$work"
mkdir -p "$work/obj"
tar -xJf "$orig" -C "$work"
src=$(echo "$work"/wine-*)
tar -xJf "$debian" -C "$src"
cd "$src"

# Debian's own patch series, as the installed Wine was built.
grep -v '^#' debian/patches/series | while read -r p; do
    [ -n "$p" ] && patch -p1 -s <"debian/patches/$p"
done

# The files the repacked tarball leaves out and debian/rules generates.
./debian/scripts/generate server/trace.generated make_requests
./debian/scripts/generate server/request.generated make_requests
./tools/make_requests >/dev/null
ln -sf /usr/share/misc/config.sub tools
ln -sf /usr/share/misc/config.guess tools
grep -P '^\tln -sf \.\./\.\./' debian/rules | sed 's/^\t//' | sh
autoreconf -f 2>/dev/null || autoreconf -f
# Generated sources of modules this build never compiles: makedep only
# needs them to exist. The NLS tables are the installed Wine's.
for f in include/wine/vulkan.h include/wine/vulkan_driver.h include/wine/wgl.h \
         include/wine/wgl_driver.h \
         dlls/dwrite/bracket.c dlls/dwrite/direction.c dlls/dwrite/linebreak.c \
         dlls/dwrite/mirror.c dlls/dwrite/scripts.c dlls/dwrite/shapers/arabic_table.c \
         dlls/gdi32/uniscribe/bracket.c dlls/gdi32/uniscribe/direction.c \
         dlls/gdi32/uniscribe/indicsyllable.c dlls/gdi32/uniscribe/linebreak.c \
         dlls/gdi32/uniscribe/mirror.c dlls/gdi32/uniscribe/shaping.c \
         dlls/opengl32/thunks.c dlls/opengl32/unix_thunks.c dlls/wineps.drv/vertical.c \
         dlls/win32u/vertical.c dlls/winevulkan/loader_thunks.c dlls/winevulkan/vulkan_thunks.c; do
    [ -e "$f" ] || : >"$f"
done
cp /usr/share/wine/nls/*.nls nls/
for f in $(grep -oE '[A-Za-z0-9_]+\.nls' nls/Makefile.in); do
    [ -e "nls/$f" ] || : >"nls/$f"
done

# The rig.
cp "$rig/ntoskrnl/rig.c" "$rig/ntoskrnl/rig.h" dlls/ntoskrnl.exe/
printf '#define RIG_KEY "%s"\n' "$key" >dlls/ntoskrnl.exe/rig_key.h
patch -p1 -s <"$rig/hooks.patch"

cd "$work/obj"
"$src/configure" --enable-win64 --disable-tests --without-x --without-alsa --without-capi \
    --without-coreaudio --without-cups --without-dbus --without-fontconfig --without-freetype \
    --without-gettext --without-gphoto --without-gnutls --without-gssapi --without-gstreamer \
    --without-inotify --without-krb5 --without-netapi --without-opencl --without-opengl \
    --without-osmesa --without-oss --without-pcap --without-pulse --without-sane --without-sdl \
    --without-udev --without-unwind --without-usb --without-v4l2 --without-vulkan >configure.log 2>&1 \
    || { tail -30 configure.log; exit 1; }
make -j"$(nproc)" dlls/ntoskrnl.exe/all >make.log 2>&1 || { tail -40 make.log; exit 1; }

# A native module: without the "Wine builtin DLL" marker, the loader takes
# the copy in the prefix's system32 instead of Wine's own.
built=dlls/ntoskrnl.exe/x86_64-windows/ntoskrnl.exe
offset=$(grep -obUa 'Wine builtin DLL' "$built" | head -n 1 | cut -d: -f1)
[ -n "$offset" ] || { echo "no builtin marker in $built"; exit 1; }
cp "$built" "$output.tmp"
dd if=/dev/zero of="$output.tmp" bs=1 seek="$offset" count=16 conv=notrunc status=none
mv "$output.tmp" "$output"
