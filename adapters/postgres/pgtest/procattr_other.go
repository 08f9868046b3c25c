//go:build unix && !linux

package pgtest

import "syscall"

// procAttr runs a server process as cred. Without Linux's parent-death
// signal, a server outlives a test process that crashes; Close stops it in
// every other case.
func procAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred}
}
