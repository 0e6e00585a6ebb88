// Package nettest holds the network parts of integration tests and fault
// drills: a loopback TCP proxy that can be cut (a broken uplink, an
// unreachable ClickHouse), a mosquitto broker process on a free loopback
// port, and the one way to pick such ports.
//
// It is for tests and the drills only; production code must never import
// it (TestNoProductionImports checks). Helpers take a TB, which
// *testing.T and *testing.B satisfy, so the package itself does not link
// the testing package into the drills binary.
package nettest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

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

// FreePort returns a loopback port that was free a moment ago, for a
// listener opened later (often by a child process). See PickAddr.
func FreePort(t TB) int {
	t.Helper()
	addr := FreeAddr(t)
	_, p, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(p)
	return port
}

// FreeAddr is FreePort as "127.0.0.1:port".
func FreeAddr(t TB) string {
	t.Helper()
	addr, err := PickAddr()
	if err != nil {
		t.Fatalf("%v", err)
	}
	return addr
}

var picked = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// pickFrom is the lowest port PickAddr draws from: above the fixed ports
// of the demo, ClickHouse and ZooKeeper.
const pickFrom = 20000

// PickAddr returns "127.0.0.1:port" for a port nothing listened on a
// moment ago and that this process has not handed out before.
//
// Two things made the obvious way (listen on ":0", close, return the
// port) fail on a busy machine: the kernel hands the same ephemeral
// port out again to the next ":0" (two simulated devices got one port),
// and a port from the ephemeral range is taken in between by some
// test's outgoing connection ("bind: address already in use"). So the
// port is drawn at random below the kernel's ephemeral range
// (/proc/sys/net/ipv4/ip_local_port_range), where only another random
// pick can meet it, and remembered, so that no two picks of one process
// are the same.
func PickAddr() (string, error) {
	picked.Lock()
	defer picked.Unlock()
	lo := ephemeralLow()
	for i := 0; lo > pickFrom+1000 && i < 500; i++ {
		port := pickFrom + rand.IntN(lo-pickFrom)
		if picked.ports[port] {
			continue
		}
		if free(port) {
			picked.ports[port] = true
			return fmt.Sprintf("127.0.0.1:%d", port), nil
		}
	}
	// No room below the ephemeral range: let the kernel choose, still
	// never twice.
	for range 500 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", fmt.Errorf("cannot find a free loopback port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !picked.ports[port] {
			picked.ports[port] = true
			return fmt.Sprintf("127.0.0.1:%d", port), nil
		}
	}
	return "", fmt.Errorf("cannot find a free loopback port not handed out before (%d so far)", len(picked.ports))
}

// PickAddrs returns n distinct addresses from PickAddr.
func PickAddrs(n int) ([]string, error) {
	out := make([]string, n)
	for i := range out {
		a, err := PickAddr()
		if err != nil {
			return nil, err
		}
		out[i] = a
	}
	return out, nil
}

func free(port int) bool {
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func ephemeralLow() int {
	lo := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil {
				lo = v
			}
		}
	}
	return lo
}
