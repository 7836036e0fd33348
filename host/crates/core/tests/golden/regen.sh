#!/bin/sh
# Regenerates expected.json from cases.json with Go's text/template
# (Debian: apt-get install golang-go). The Rust test does not need Go.
set -e
cd "$(dirname "$0")"
GO111MODULE=off go run render.go
