#!/usr/bin/env bash
# Installs what classify2d needs on a fresh Debian machine: the Vulkan loader and
# Debian's chromium, whose SwiftShader driver runs WebGPU on the CPU where there is no
# GPU; RELION and python3-mrcfile, which test/interop.test.ts runs on the files this
# package writes; then the npm dependencies. Needs root for apt-get; skips it when all
# of them are present.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! [ -e /usr/lib/chromium/vk_swiftshader_icd.json ] ||
  ! ldconfig -p | grep -q 'libvulkan.so.1 ' ||
  ! [ -x /usr/bin/relion_image_handler ] ||
  ! /usr/bin/python3 -c 'import mrcfile' 2>/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q chromium libvulkan1 relion python3-mrcfile
fi
npm ci --no-audit --no-fund
