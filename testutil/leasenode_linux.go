package testutil

import "syscall"

// leasenodeSysProcAttr has the kernel kill an agent if the test binary
// dies, so no agent outlives a crashed or interrupted test.
func leasenodeSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
