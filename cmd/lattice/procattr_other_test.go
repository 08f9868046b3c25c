//go:build !linux

package main

import "syscall"

// childAttr puts an agent in its own process group, so that cleanup can
// kill it whole. Without Pdeathsig, an agent outlives a test binary that is
// killed itself.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
