// Package nettest holds the network parts of integration tests and fault
// drills: a loopback TCP proxy that can be cut (a broken uplink, an
// unreachable ClickHouse) and a mosquitto broker process on a free loopback
// port.
//
// It is for tests and the drills only; production code must never import
// it (TestNoProductionImports checks). Helpers take a TB, which
// *testing.T and *testing.B satisfy, so the package itself does not link
// the testing package into the drills binary.
package nettest

import "net"

// TB is the part of testing.TB the helpers use.
type TB interface {
	Helper()
	Cleanup(func())
	Fatalf(format string, args ...any)
	Skip(args ...any)
	Logf(format string, args ...any)
	Failed() bool
	TempDir() string
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort(t TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("cannot find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
