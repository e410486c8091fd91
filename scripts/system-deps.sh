#!/usr/bin/env bash
# Debian packages the tests use: chromium + chromedriver (browser test), redis-server (Redis test),
# orthanc + orthanc-dicomweb (the PACS round trip) and dicom3tools (dciodvfy checks our SEG / SR).
# Installed when missing and apt-get is usable as root; otherwise those tests skip and say why.
set -u
missing=()
command -v chromium >/dev/null || missing+=(chromium chromium-driver)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v Orthanc >/dev/null || missing+=(orthanc)
[ -e /usr/share/orthanc/plugins/libOrthancDicomWeb.so ] || missing+=(orthanc-dicomweb)
command -v dciodvfy >/dev/null || missing+=(dicom3tools)
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null || [ "$(id -u)" != 0 ]; then
    echo "not installed (no root apt-get): ${missing[*]}; the browser / Redis / Orthanc tests will skip"
    exit 0
fi
apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 ||
    { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q "${missing[@]}" >/dev/null 2>&1; } ||
    echo "apt-get could not install ${missing[*]}; the browser / Redis / Orthanc tests will skip"
exit 0
