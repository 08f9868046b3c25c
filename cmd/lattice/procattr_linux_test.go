package main

import "syscall"

// childAttr puts an agent in its own process group, so that cleanup can
// kill it whole, and has the kernel kill it if the test binary dies.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
