package pgtest

import "syscall"

// procAttr runs a server process as cred and kills it if the test process
// dies first, so that no server outlives a crashed test.
func procAttr(cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
}
