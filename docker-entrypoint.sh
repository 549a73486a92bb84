#!/bin/sh
# Initialise (idempotent: migrations, keys, CA) then serve; arguments go to `serve`.
set -e
authority init
exec authority serve "$@"
