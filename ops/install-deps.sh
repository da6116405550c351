#!/usr/bin/env bash
# Installs the system packages prismflow needs on Debian/Ubuntu, only those
# that are missing, so `make run` and `make test` work on a fresh machine.
#   ops/install-deps.sh run    what the product needs (C compiler for go-fitz, PostgreSQL server binaries,
#                              Tesseract with Italian, English and orientation data for OCR)
#   ops/install-deps.sh test   plus what the tests talk to (kcat, poppler-utils, dovecot-imapd,
#                              chromium for the console's browser tests)
#   ops/install-deps.sh bench  plus what the benchmarks compare against or load with
#                              (ocrmypdf; wrk for make bench-upload)
set -euo pipefail
mode=${1:-run}

need=()
have_cmd() { command -v "$1" >/dev/null 2>&1; }
have_pg() { have_cmd initdb || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; }

have_cmd gcc || need+=(gcc libc6-dev)
have_cmd make || need+=(make)
have_cmd git || need+=(git)
have_cmd curl || need+=(curl ca-certificates)
have_pg || need+=(postgresql)
have_cmd tesseract || need+=(tesseract-ocr)
have_lang() { have_cmd tesseract && tesseract --list-langs 2>/dev/null | grep -qx "$1"; }
for lang in ita eng osd; do
  have_lang "$lang" || need+=("tesseract-ocr-$lang")
done
if [ "$mode" = test ] || [ "$mode" = bench ]; then
  have_cmd kcat || need+=(kcat)
  have_cmd pdftotext || need+=(poppler-utils)
  have_cmd dovecot || [ -x /usr/sbin/dovecot ] || need+=(dovecot-imapd)
  [ -x /usr/bin/chromium ] || need+=(chromium)
fi
if [ "$mode" = bench ]; then
  have_cmd ocrmypdf || need+=(ocrmypdf)
  have_cmd wrk || need+=(wrk)
fi

if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

if ! have_cmd go && [ ! -x /usr/local/go/bin/go ]; then
  echo "Go is missing: install Go 1.26 or newer (https://go.dev/doc/install); go.mod asks for it and the go command fetches the exact toolchain itself" >&2
  exit 1
fi
