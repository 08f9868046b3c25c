package apitest

import "syscall"

// procAttr kills a server process if the test process dies first, so that
// no server outlives a crashed test.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
