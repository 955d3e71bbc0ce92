#!/usr/bin/env bash
# Open MPI's remote-shell agent for "hosts" that are network namespaces on this machine
# (scripts/check-data-parallel.sh, multi-host case): `netns-rsh-agent.sh HOST COMMAND...` runs the
# command line, as ssh would, inside the namespace HOST with HOST as its host name (its own UTS
# namespace), so that MPI sees two machines that talk over TCP.
set -euo pipefail
host=$1
shift
exec ip netns exec "$host" unshare --uts -- sh -c 'hostname "$0" && eval "$1"' "$host" "$*"
