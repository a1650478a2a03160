#!/usr/bin/env bash
# Installs and starts what the test suite needs that this machine may lack.
# Safe to run again: it does only what is missing. PostgreSQL, Redis, NATS and
# MariaDB are started by the machine itself (see DESIGN.md, Test services).
set -euo pipefail

need_apt=()
# Quartz 2.3.2 for the differential cron tests (tests/spec/test_cron_quartz.py).
if ! ls /usr/share/java/quartz*.jar >/dev/null 2>&1; then need_apt+=(libquartz2-java); fi
if ! command -v javac >/dev/null 2>&1; then need_apt+=(default-jdk-headless); fi
# OpenSSH's sshd for the sftp step tests (tests/services/sshd.py starts it per run,
# as root, with a throwaway host key and a dedicated test user it sets up itself).
if [[ ! -x /usr/sbin/sshd ]]; then need_apt+=(openssh-server); fi
# Debian's Chromium for the dashboard's browser tests (tests/dashboard/test_e2e.py drives
# it with the playwright package; playwright's own browser download does not work here).
if ! command -v chromium >/dev/null 2>&1; then need_apt+=(chromium); fi

if ((${#need_apt[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${need_apt[*]} (apt)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "note: ${need_apt[*]} missing and apt-get unavailable as this user;" \
      "the tests that need them skip (they fail under CI=true)" >&2
  fi
fi
