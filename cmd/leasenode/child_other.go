//go:build unix && !linux

package main

import "syscall"

// childSysProcAttr puts CMD in its own process group. (Only Linux can have
// the kernel kill CMD when run dies; see docs/leasenode.md.)
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
