#!/bin/sh
# Make systemd see the new or changed unit. The service is neither enabled nor started: it
# needs /etc/rotation-agent/rotation-agent.env filled in first (see docs/deployment.md).
set -e
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
  # An upgrade restarts a running agent; it resumes its work from the journal.
  if systemctl is-active --quiet rotation-agent.service; then
    systemctl try-restart rotation-agent.service || true
  fi
fi
