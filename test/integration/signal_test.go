package integration

import "syscall"

var interruptSignal = syscall.SIGTERM
