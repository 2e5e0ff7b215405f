#!/bin/sh
# On removal (not on upgrade) stop and disable the service before its files go.
set -e
case "$1" in
  remove | 0)
    if [ -d /run/systemd/system ]; then
      systemctl disable --now rotation-agent.service >/dev/null 2>&1 || true
    fi
    ;;
esac
