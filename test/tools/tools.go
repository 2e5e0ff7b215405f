//go:build tools

// Package tools pins the programs the tests and the demo build from this module: the real
// vault binary (server and CLI) comes from github.com/hashicorp/vault's main package, whose
// dependencies this blank import keeps in go.mod. The rotation-agent command the tests build
// (go build from this module) needs its own command-line dependencies here too.
package tools

import (
	_ "github.com/hashicorp/vault/command"
	_ "github.com/schollz/progressbar/v3"
)
