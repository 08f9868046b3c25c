//go:build unix && !linux

package apitest

import "syscall"

// procAttr is empty: without Linux's parent-death signal, a server
// outlives a test process that crashes; the cleanup stops it in every
// other case.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{}
}
