//go:build !(linux || darwin || freebsd)

package queue

import "errors"

// FreeSpace is unknown here; the queue is then bounded by MaxBytes alone.
func FreeSpace(string) (int64, error) {
	return 0, errors.New("cannot read free disk space on this system")
}
