#!/usr/bin/env bash
# Installs what classify2d needs on a fresh Debian machine: the Vulkan loader and
# Debian's chromium, whose SwiftShader driver runs WebGPU on the CPU where there is no
# GPU; then the npm dependencies. Needs root for apt-get; skips it when both are present.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! [ -e /usr/lib/chromium/vk_swiftshader_icd.json ] || ! ldconfig -p | grep -q 'libvulkan.so.1 '; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q chromium libvulkan1
fi
npm ci --no-audit --no-fund
