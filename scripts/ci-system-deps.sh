#!/usr/bin/env bash
# Debian 12 packages CI needs, installed noninteractively (run as root; .ci/run
# calls it, with sudo -n when not root):
#   * the real single-node Slurm of the integration tests: munge, slurmctld,
#     slurmd, slurm-client, slurmdbd, mariadb-server (list owned by
#     scripts/slurm-cluster.sh, which starts them with its own config);
#   * the Python 3.11 toolchain the Makefile uses (python3.11 + venv, make);
#   * git (DVC tests), procps (ps), ca-certificates (pip over HTTPS);
#   * chromium + chromium-driver: the MLflow UI test in headless Chromium
#     (selenium drives Debian's driver; no browser is downloaded).
# The packages' own services are NOT started (policy-rc.d): the tests run
# private instances. Idempotent; fast when everything is present.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "ci-system-deps.sh: must run as root" >&2; exit 1; }

# shellcheck disable=SC2207
PKGS=($(bash scripts/slurm-cluster.sh packages)
      python3.11 python3.11-venv make git procps ca-certificates coreutils util-linux
      chromium chromium-driver fonts-dejavu-core)

missing=()
for p in "${PKGS[@]}"; do
  [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" = "install ok installed" ] || missing+=("$p")
done
if [ ${#missing[@]} = 0 ]; then
  echo "ci-system-deps: all ${#PKGS[@]} packages present"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi
echo "ci-system-deps: installing ${missing[*]}"
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
echo "ci-system-deps: done"
