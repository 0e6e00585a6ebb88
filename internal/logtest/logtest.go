// Package logtest holds what tests need to read what a component logged.
package logtest

import (
	"bytes"
	"sync"
)

// Buffer is a log sink safe for concurrent writes, to hand to
// slog.NewTextHandler and read back with String.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
