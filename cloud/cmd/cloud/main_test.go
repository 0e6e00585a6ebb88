package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/plantroom/plantroom/cloud/app"
	"github.com/plantroom/plantroom/cloud/broker"
	"github.com/plantroom/plantroom/cloud/store"
	"github.com/plantroom/plantroom/config"
	"github.com/plantroom/plantroom/internal/chtest"
)

// processTest starts a test of real bin/cloud processes: skipped when
// PLANTROOM_SKIP_PROCESS_TESTS=1 (they take minutes), else run in
// parallel with the others (each has its own ports and database).
func processTest(t *testing.T) {
	t.Helper()
	if os.Getenv("PLANTROOM_SKIP_PROCESS_TESTS") == "1" {
		t.Skip("PLANTROOM_SKIP_PROCESS_TESTS=1")
	}
	t.Parallel()
}

// buildCloud builds bin/cloud into a temporary directory.
func buildCloud(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "cloud")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// child is a running bin/cloud.
type child struct {
	cmd    *exec.Cmd
	ready  chan struct{}
	exited chan struct{}
	err    error

	mu    sync.Mutex
	lines []string // stderr so far
}

// logged returns the value of key= in the first stderr line containing msg.
func (c *child) logged(msg, key string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range c.lines {
		if !strings.Contains(l, msg) {
			continue
		}
		for _, f := range strings.Fields(l) {
			if v, ok := strings.CutPrefix(f, key+"="); ok {
				return strings.Trim(v, `"`)
			}
		}
	}
	return ""
}

func startChild(t *testing.T, bin string, args ...string) *child {
	t.Helper()
	c := &child{cmd: exec.Command(bin, args...), ready: make(chan struct{}), exited: make(chan struct{})}
	stderr, err := c.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(os.Stderr, "  cloud:", line)
			c.mu.Lock()
			c.lines = append(c.lines, line)
			c.mu.Unlock()
			if strings.Contains(line, "ingest subscribed") {
				once.Do(func() { close(c.ready) })
			}
		}
		io.Copy(io.Discard, stderr)
		c.err = c.cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		c.cmd.Process.Kill()
		<-c.exited
	})
	return c
}

func (c *child) waitReady(t *testing.T) {
	t.Helper()
	select {
	case <-c.ready:
	case <-c.exited:
		t.Fatalf("cloud exited before subscribing: %v", c.err)
	case <-time.After(60 * time.Second):
		t.Fatal("cloud did not subscribe within 60s")
	}
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const ingestPassword = "test-ingest-secret"

// writeConfig writes a cloud.yaml for an ingest-only process using the demo
// organisation, the broker at brokerAddr and the ClickHouse database db
// (through chAddr when not empty).
func writeConfig(t *testing.T, brokerAddr, chAddr, db string) string {
	t.Helper()
	root, err := filepath.Abs("../../../configs")
	if err != nil {
		t.Fatal(err)
	}
	ch := chtest.Addr(t)
	if chAddr == "" {
		chAddr = ch.Addr
	}
	path := filepath.Join(t.TempDir(), "cloud.yaml")
	yaml := fmt.Sprintf(`org: %[1]s/org.yaml
tariffs: %[1]s/tariffs.yaml
templates: %[1]s/templates
rules: %[1]s/rules.yaml
components: [ingest]
log: {level: info}
metrics: {listen: "off"}
broker:
  embedded: false
  external: {url: "tcp://%[2]s", username: plantroom-ingest, password: %[3]s}
ingest:
  client_id: plantroom-ingest-1
  flush_interval: 100ms
  max_unacked_messages: 50
clickhouse: {addr: %[4]q, user: %[5]q, password: %[6]q, database: %[7]s}
`, root, brokerAddr, ingestPassword, chAddr, ch.User, ch.Password, db)
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// demoBroker runs the embedded broker with the demo organisation and a
// service credential for the ingest process.
func demoBroker(t *testing.T) *broker.Broker {
	t.Helper()
	var org config.Org
	if err := config.LoadFile("../../../configs/org.yaml", &org); err != nil {
		t.Fatal(err)
	}
	hash := app.HashToken(ingestPassword)
	b, err := broker.New(broker.Config{Listen: "127.0.0.1:0", Org: &org, MaxPending: 200,
		Services: []broker.Service{{Username: "plantroom-ingest", PasswordHash: hash, Publish: broker.IngestPublish}},
		Logger:   slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Stop)
	return b
}

func count(t *testing.T, db *store.DB, q string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var n uint64
	if err := db.Conn().QueryRow(ctx, q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}
