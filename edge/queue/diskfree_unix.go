//go:build linux || darwin || freebsd

package queue

import (
	"fmt"
	"syscall"
)

// FreeSpace returns the bytes an unprivileged process may still write on
// the filesystem holding dir.
func FreeSpace(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("cannot read free space of %q: %w", dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
