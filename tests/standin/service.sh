#!/bin/sh
# Stand-in of a Bitwarden service (web, admin, api, identity, scim) for
# bwguard's tests: it runs until it is stopped.
trap 'exit 0' TERM INT
while :; do
  sleep 1 &
  wait $! || true
done
