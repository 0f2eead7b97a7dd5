#!/bin/sh
# Installs the system packages kiln's build, tests and examples need, each
# only when it is missing (Debian: apt-get; nothing is fetched otherwise).
# Extra package names given as arguments are installed too (make bench).
set -e
PKGS="build-essential libcmocka-dev python3-numpy python3-onnx valgrind llvm-19-dev clang-19 protobuf-c-compiler libprotobuf-c-dev zlib1g-dev python3-sklearn python3-torch python3-torchvision"
missing=""
[ $# -gt 0 ] && PKGS="$*"
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "deps: installing$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q || true
$SUDO apt-get install -y -q --no-install-recommends $missing
