//go:build !linux

package testutil

import "syscall"

func leasenodeSysProcAttr() *syscall.SysProcAttr { return nil }
