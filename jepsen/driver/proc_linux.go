package driver

import "syscall"

// sysProcAttr has the kernel kill a child when the driver dies, so that no
// agent or participant outlives an interrupted run.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
